"""Sphinx configuration of the posezoo documentation (builds offline, warnings are errors in CI)."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))

project = "posezoo"
author = "posezoo developers"
copyright = "2026, posezoo developers"
release = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
    "model_table_ext",
    "extras_table_ext",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated/*.inc.md"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = [("Shape", "params_style")]
napoleon_use_ivar = True  # "Attributes:" as fields, so :undoc-members: does not describe them twice
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autosummary_generate = False

html_theme = "furo"
html_title = "posezoo"
html_static_path: list[str] = []
