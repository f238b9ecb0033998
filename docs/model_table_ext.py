"""Sphinx extension: regenerate the model table from the registry at every build."""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx


def _write_model_table(app: Sphinx) -> None:
    from posecommon.app.model_table import format_size_table, measure_sizes

    out = Path(app.srcdir) / "_generated"
    out.mkdir(exist_ok=True)
    (out / "model_table.inc.md").write_text(format_size_table(measure_sizes()) + "\n")


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("builder-inited", _write_model_table)
    return {"parallel_read_safe": True}
