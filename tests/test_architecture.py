"""The floor plan, read from the code's own imports: no import circle, and layers that only look down.

Every ``import`` of every module of ``posecommon``, ``drsinet`` and ``vttranspose`` counts, wherever it stands: at
the top, inside a function (lazy imports) or under ``if TYPE_CHECKING:``. The rules (docs/design/posecommon.md):

- no circle among modules;
- posecommon's library never imports its application layer (``posecommon.app``) or a model package;
- the application layer reaches the model families only through the registry (it imports no model package);
- a model package never imports another one;
- inside posecommon's library each subpackage (or top-level module) belongs to a layer of :data:`LAYERS` and imports
  only from its own layer or the ones below;
- posecommon keeps at most 12 modules at its top level.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("posecommon", "drsinet", "vttranspose")
FAMILIES = ("drsinet", "vttranspose")
APP = "posecommon.app"

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "extras", "keypoints", "config"}),
    frozenset({"registry", "preprocess", "ops", "media", "layers", "measure", "losses", "codecs", "visualize"}),
    frozenset({"structures", "hub", "data", "train"}),
    frozenset({"predict"}),
    frozenset({"model"}),
    frozenset({"evaluation", "export"}),
)
"""posecommon's library, bottom to top: a part may import its own layer and the layers below."""

Graph = dict[str, set[str]]


def module_files(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module of ``packages`` (a package is its ``__init__``)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(source: str, module: str, is_package: bool, known: Iterable[str]) -> set[str]:
    """The modules of ``known`` that ``source`` (the text of ``module``) imports, lazy and type-only ones included.

    ``from a import b`` counts as importing ``a.b`` when that is a module, else ``a``.
    """
    known = set(known)
    base = module.split(".") if is_package else module.split(".")[:-1]
    targets = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parent = base[: len(base) - node.level + 1] if node.level else []
            prefix = ".".join(parent + ([node.module] if node.module else []))
            names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in known and name != module:
                targets.add(name)
    return targets


def import_graph(files: Mapping[str, Path]) -> Graph:
    """``{module: modules it imports}`` for the given modules."""
    return {
        module: imports_of(path.read_text(), module, path.name == "__init__.py", files)
        for module, path in files.items()
    }


def import_circles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def _part(module: str) -> str | None:
    """The posecommon library part (first name below ``posecommon``) a module belongs to; None for others."""
    parts = module.split(".")
    if parts[0] != "posecommon" or len(parts) < 2 or module == APP or module.startswith(APP + "."):
        return None
    return parts[1]


def _layer(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def rule_violations(graph: Graph) -> list[str]:
    """Every import that breaks a rule of the module docstring (other than circles), as ``"a -> b: why"``."""
    problems = []
    for module, targets in sorted(graph.items()):
        family = module.split(".")[0] if module.split(".")[0] in FAMILIES else None
        in_app = module == APP or module.startswith(APP + ".")
        part = _part(module)
        for target in sorted(targets):
            top = target.split(".")[0]
            target_part = _part(target)
            if family is not None and top in FAMILIES and top != family:
                problems.append(f"{module} -> {target}: a model package imports another")
            elif (family is not None or part is not None) and (target == APP or target.startswith(APP + ".")):
                problems.append(f"{module} -> {target}: the library imports the application layer")
            elif (part is not None or in_app) and top in FAMILIES:
                problems.append(f"{module} -> {target}: posecommon imports a model package (use the registry)")
            elif part is not None and target_part is not None and _layer(target_part) > _layer(part):
                problems.append(
                    f"{module} -> {target}: layer {_layer(part)} ({part}) looks up to layer "
                    f"{_layer(target_part)} ({target_part})"
                )
    return problems


def test_every_library_part_has_a_layer():
    parts = {_part(module) for module in module_files(packages=("posecommon",))} - {None}
    unplaced = sorted(part for part in parts if not any(part in layer for layer in LAYERS))
    assert not unplaced, f"add these parts to a layer of LAYERS and of docs/design/posecommon.md: {unplaced}"


def test_no_import_circle_anywhere():
    assert import_circles(import_graph(module_files())) == []


def test_layers_only_look_down_and_families_stay_apart():
    assert rule_violations(import_graph(module_files())) == []


def test_posecommon_keeps_at_most_twelve_top_level_modules():
    top = sorted(p.stem for p in (ROOT / "posecommon").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= 12, top


def _with_extra_import(graph: Graph, files: Mapping[str, Path], module: str, line: str) -> Graph:
    """``graph`` with ``module``'s source extended by ``line`` (parsed like any other import)."""
    path = files[module]
    extended = dict(graph)
    extended[module] = imports_of(path.read_text() + "\n" + line + "\n", module, path.name == "__init__.py", files)
    return extended


def test_the_checks_catch_an_upward_lazy_import_and_the_circle_it_makes():
    """A deliberately added upward import, lazy and type-only as they hide in real code, fails both checks."""
    files = module_files()
    graph = import_graph(files)
    upward = "def _later():\n    from ..predict.run import run_predict\n    return run_predict"
    broken = _with_extra_import(graph, files, "posecommon.ops.nms", upward)
    assert "posecommon.predict.run" in broken["posecommon.ops.nms"]
    assert any(p.startswith("posecommon.ops.nms -> posecommon.predict.run: layer 1") for p in rule_violations(broken))
    circular = _with_extra_import(
        graph, files, "posecommon.structures", "if TYPE_CHECKING:\n    from .predict.kernel import PredictKernel"
    )
    assert any({"posecommon.structures", "posecommon.predict.kernel"} <= set(c) for c in import_circles(circular))
    family = _with_extra_import(graph, files, "posecommon.export", "import drsinet.decode")
    assert "posecommon.export -> drsinet.decode: posecommon imports a model package (use the registry)" in (
        rule_violations(family)
    )
    crossing = _with_extra_import(graph, files, "drsinet.model", "from vttranspose.blocks import TwinAttention")
    assert "drsinet.model -> vttranspose.blocks: a model package imports another" in rule_violations(crossing)
