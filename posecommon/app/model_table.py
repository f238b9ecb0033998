"""The model table: measured parameters and MACs of every registered model beside the paper's figures.

Used by ``posezoo models`` (through the cache of :mod:`posecommon.app.size_cache`) and by the docs, so the table is
always generated from code. Importing this module does not import torch; measuring does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..registry import PaperFigures, create_model, get_model_info, list_models

if TYPE_CHECKING:
    import torch

__all__ = ["SizeRow", "format_size_table", "measure_sizes"]


@dataclass(frozen=True)
class SizeRow:
    """One line of the model table: a model at one input size, measured and as reported by the paper."""

    name: str
    family: str
    input_size: tuple[int, int]
    params_m: float
    macs_g: float
    paper: PaperFigures | None
    weights: tuple[str, ...]

    @staticmethod
    def _delta(ours: float, theirs: float | None) -> float | None:
        return None if theirs is None else 100.0 * (ours - theirs) / theirs

    @property
    def params_delta_pct(self) -> float | None:
        """Relative difference of our parameter count to the paper's, in percent."""
        return self._delta(self.params_m, self.paper.params_m if self.paper else None)

    @property
    def macs_delta_pct(self) -> float | None:
        """Relative difference of our MACs to the paper's, in percent."""
        return self._delta(self.macs_g, self.paper.macs_g if self.paper else None)


def _build(name: str) -> torch.nn.Module:
    import torch

    with torch.device("meta"):
        return create_model(name)


def measure_sizes(names: list[str] | None = None) -> list[SizeRow]:
    """Measure parameters and MACs of ``names`` (default: all registered models) at every size the paper reports.

    Models are built on the ``meta`` device, so no memory is allocated and no arithmetic is done.
    """
    from ..measure.flops import count_macs, count_params

    rows = []
    for name in names if names is not None else list_models():
        info = get_model_info(name)
        model = _build(name)
        params = count_params(model) / 1e6
        figures = [f for f in (info.paper, *info.extra_figures) if f is not None]
        sizes = [f.input_size for f in figures] or [tuple(model.preprocess.input_size)]
        for figure_or_none, size in zip(figures or [None], sizes, strict=True):
            macs = count_macs(model, size, device="meta").giga
            tags = tuple(w.tag for w in info.weights)
            rows.append(SizeRow(name, info.family, size, params, macs, figure_or_none, tags))
    return rows


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, spec) + suffix


def format_size_table(rows: list[SizeRow]) -> str:
    """Markdown table of ``rows`` (also readable as plain text)."""
    header = (
        "| model | input (HxW) | params (M) | paper params (M) | Δ params | MACs (G) | paper MACs (G) | Δ MACs "
        "| paper AP | weights |"
    )
    lines = [header, "|" + "---|" * 10]
    for r in rows:
        p = r.paper
        lines.append(
            f"| {r.name} | {r.input_size[0]}x{r.input_size[1]} | {r.params_m:.2f} | {_fmt(p and p.params_m, '.1f')} "
            f"| {_fmt(r.params_delta_pct, '+.1f', '%')} | {r.macs_g:.2f} "
            f"| {_fmt(p and p.macs_g, '.1f')} | {_fmt(r.macs_delta_pct, '+.1f', '%')} "
            f"| {_fmt(p and p.ap, '.1f')} | {', '.join(r.weights) or 'none published'} |"
        )
    return "\n".join(lines)
