"""Sphinx extension: write the table of pip extras (installation page) from pyproject.toml at every build.

The packages of each extra are read from ``[project.optional-dependencies]``; what each extra is for is
:data:`PURPOSES`, which ``tests/test_docs_generated.py`` keeps in step with pyproject.toml (every extra described,
no description without an extra).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

if TYPE_CHECKING:
    from sphinx.application import Sphinx

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

PURPOSES = {
    "test": "running the test suite (two xdist workers by default), including the ONNX, video and `to_df` tests",
    "docs": "building this documentation (matplotlib draws its figures)",
    "onnx": "ONNX export and its onnxruntime check (`posezoo export`)",
    "video": "videos in `predict` and `posezoo predict` (PyAV, FFmpeg's Python binding)",
    "pandas": "`PoseResult.to_df()`",
}
"""What each extra is for (the third column)."""


def extras(pyproject: Path = PYPROJECT) -> dict[str, list[str]]:
    """``{extra: [distribution names]}`` of ``pyproject``'s optional dependencies, version specifiers removed."""
    data = tomllib.loads(pyproject.read_text())
    table = data["project"]["optional-dependencies"]
    return {name: [re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0] for spec in specs] for name, specs in table.items()}


def extras_table(pyproject: Path = PYPROJECT) -> str:
    """The Markdown table: extra, the packages it installs, what it is for."""
    lines = ["| extra | installs | for |", "|---|---|---|"]
    for name, packages in extras(pyproject).items():
        lines.append(f"| `{name}` | {', '.join(packages)} | {PURPOSES.get(name, '')} |")
    return "\n".join(lines) + "\n"


def _write_extras_table(app: Sphinx) -> None:
    out = Path(app.srcdir) / "_generated"
    out.mkdir(exist_ok=True)
    (out / "extras_table.inc.md").write_text(extras_table())


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("builder-inited", _write_extras_table)
    return {"parallel_read_safe": True}
