"""Docs that must not drift from the code (issue 26, item 4): the extras table generated from pyproject.toml, the
input table of ``posecommon.predict.sources`` as it renders, and the "coming from ultralytics / mmpose" page's
names of ``PoseResult``."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def _extension():
    spec = importlib.util.spec_from_file_location("extras_table_ext", DOCS / "extras_table_ext.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("extras_table_ext", module)
    spec.loader.exec_module(module)
    return module


def test_extras_table_is_generated_from_pyproject_with_every_extra_described():
    ext = _extension()
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(ext.PURPOSES) == set(declared)  # every extra described, no description of a removed one
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2] for line in ext.extras_table().splitlines()[2:]}
    assert set(rows) == set(declared)
    for name, specs in declared.items():
        packages = [re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0] for spec in specs]
        assert [p.strip() for p in rows[name].split(",")] == packages
    assert "matplotlib" in rows["docs"] and {"onnxruntime", "onnxscript"} <= set(rows["test"].replace(",", " ").split())


def test_installation_page_includes_the_generated_table_instead_of_a_written_one():
    page = (DOCS / "installation.md").read_text()
    assert "```{include} _generated/extras_table.inc.md" in page
    assert "| extra |" not in page
    assert "extras_table_ext" in (DOCS / "conf.py").read_text()


def test_sources_input_table_renders_as_a_table_of_nine_inputs():
    import docutils.core as docutils_core  # the test extra installs docutils
    from docutils.parsers.rst import roles

    import posecommon.predict.sources as sources

    def literal(name, rawtext, text, lineno, inliner, options=None, content=None):
        from docutils import nodes

        return [nodes.literal(rawtext, text)], []

    for role in ("mod", "class", "func", "meth", "attr", "data", "exc"):
        roles.register_local_role(role, literal)
    doc = sources.__doc__.split("\n", 1)[1]
    overrides = {"report_level": 5, "halt_level": 5}
    html = docutils_core.publish_parts(doc, writer="html", settings_overrides=overrides)["body"]
    (table,) = re.findall(r"<table.*?</table>", html, re.S)
    rows = re.findall(r"<tr.*?</tr>", table, re.S)
    assert len(rows) == 10  # the header and nine inputs
    assert all(len(re.findall(r"<t[hd]\b", row)) == 3 for row in rows)
    kinds = [re.sub(r"<.*?>", "", re.findall(r"<td.*?</td>", row, re.S)[1]).strip() for row in rows[1:]]
    assert kinds == ["single"] * 3 + ["list"] * 4 + ["stream"] * 2
    assert "System Message" not in html


def test_coming_from_page_names_only_attributes_that_exist():
    from posecommon import PoseResult

    page = (DOCS / "coming_from.md").read_text()
    section = page.split("## Results")[1].split("## Command line")[0]
    posezoo_column = [line.rsplit("|", 2)[1] for line in section.splitlines() if line.startswith("| ")]
    names = {name for cell in posezoo_column for name in re.findall(r"`r\.(\w+)", cell)}
    assert {"empty", "boxes_xywhn", "keypoints_xyn", "speed", "summary", "to_df", "show", "numpy"} <= names
    missing = sorted(name for name in names if not hasattr(PoseResult, name) and name not in PoseResult.__annotations__)
    assert not missing
