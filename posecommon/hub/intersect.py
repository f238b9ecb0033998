"""Initialise a model from a checkpoint of another layout: load what matches by name and shape, report the rest.

This is how YOLO-Pose starts its published runs from a person-detector checkpoint (``--weights``; edgeai-yolov5
branch ``yolo-pose``, ``train.py:83-93``): the checkpoint's state dict is intersected with the new model's
(``intersect_dicts``, ``utils/torch_utils.py:139-141``: same key, same shape), loaded with ``strict=False``, and
``Transferred N/M items`` is logged, M being the model's state-dict entries. :func:`load_intersecting` does the same
on safetensors files (nothing is unpickled; an official ``.pt`` file is first converted with ``posezoo convert``)
and says, beside the count, which entries were skipped and why. YOLO-Pose also leaves out ``anchor`` buffers
(``train.py:89``); posezoo models keep their anchors in the config, not in the state dict, so there is nothing to
leave out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..errors import IncompatibleWeightsError, WeightsNotFoundError
from .files import WEIGHTS_NAME, read_safetensors, sha256_file

__all__ = ["InitReport", "init_weights_file", "load_intersecting"]

logger = logging.getLogger(__name__)

_LISTED = 5
"""Skipped entries named per reason in :meth:`InitReport.format`."""


@dataclass(frozen=True)
class InitReport:
    """What :func:`load_intersecting` loaded.

    Args:
        source: The file that was read.
        sha256: Its digest.
        model_entries: Entries of the model's state dict (YOLO-Pose's denominator M).
        loaded: Model entries loaded from the file (name and shape equal).
        not_in_model: File entries whose name the model does not have.
        shape_mismatch: ``(name, file shape, model shape)`` of entries whose shapes differ.
        not_in_file: Model entries the file does not have (they keep their fresh initialisation).
    """

    source: str
    sha256: str
    model_entries: int
    loaded: tuple[str, ...]
    not_in_model: tuple[str, ...]
    shape_mismatch: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]
    not_in_file: tuple[str, ...]

    def format(self) -> str:
        """The report ``posezoo train`` prints: the official ``Transferred N/M`` line, then the skipped entries."""
        lines = [
            f"init weights: transferred {len(self.loaded)}/{self.model_entries} items from {self.source} "
            f"(sha256 {self.sha256[:12]})"
        ]
        fresh = len(self.shape_mismatch) + len(self.not_in_file)
        if fresh:
            lines.append(f"  {fresh} model entries keep their fresh initialisation:")
        if self.shape_mismatch:
            shown = ", ".join(f"{n} (file {tuple(a)} vs model {tuple(b)})" for n, a, b in self.shape_mismatch[:_LISTED])
            lines.append(
                f"    {len(self.shape_mismatch)} with another shape in the file: {shown}" + _more(self.shape_mismatch)
            )
        if self.not_in_file:
            lines.append(
                f"    {len(self.not_in_file)} not in the file: {', '.join(self.not_in_file[:_LISTED])}"
                + _more(self.not_in_file)
            )
        if self.not_in_model:
            lines.append(
                f"  {len(self.not_in_model)} file entries the model does not have (ignored): "
                f"{', '.join(self.not_in_model[:_LISTED])}" + _more(self.not_in_model)
            )
        return "\n".join(lines)

    def summary(self) -> dict[str, object]:
        """JSON-able counts (and the source) for a run's ``summary.json``."""
        return {
            "source": self.source,
            "sha256": self.sha256,
            "transferred": len(self.loaded),
            "model_entries": self.model_entries,
            "shape_mismatch": len(self.shape_mismatch),
            "not_in_file": len(self.not_in_file),
            "not_in_model": len(self.not_in_model),
        }


def _more(items: tuple[object, ...]) -> str:
    return f", ... ({len(items) - _LISTED} more)" if len(items) > _LISTED else ""


def init_weights_file(source: str | Path) -> Path:
    """The safetensors file an ``--init-weights`` argument names.

    Accepted: a ``.safetensors`` file, a ``save_pretrained`` directory (``model.safetensors`` inside, e.g. written by
    ``posezoo convert``), or a training run directory (its ``final/model.safetensors``).

    Raises:
        WeightsNotFoundError: nothing of the kind exists at ``source``.
    """
    path = Path(source)
    if path.is_file():
        return path
    for candidate in (path / WEIGHTS_NAME, path / "final" / WEIGHTS_NAME):
        if candidate.is_file():
            return candidate
    what = "directory without model.safetensors or final/model.safetensors" if path.is_dir() else "no such file"
    raise WeightsNotFoundError(
        f"--init-weights {source}: {what}. Pass a safetensors file, a save_pretrained directory or a training run "
        "directory; convert an official checkpoint first with `posezoo convert`."
    )


def load_intersecting(model: nn.Module, source: str | Path) -> InitReport:
    """Load into ``model`` every tensor of ``source`` whose name and shape the model has (YOLO-Pose's ``--weights``).

    The other model entries keep their current values. Tensors are cast to the model's dtypes by
    ``load_state_dict`` (YOLO-Pose casts its float16 checkpoints to float32, ``train.py:90``).

    Args:
        model: The model to initialise (modified in place).
        source: See :func:`init_weights_file`.

    Returns:
        The report (also logged at INFO).

    Raises:
        WeightsNotFoundError: ``source`` names no weights.
        UnsafeWeightsError: the file is a pickle (never read here).
        IncompatibleWeightsError: no tensor of the file fits the model (almost certainly the wrong file).
    """
    path = init_weights_file(source)
    tensors = read_safetensors(path)
    expected = model.state_dict()
    loadable = {k: v for k, v in tensors.items() if k in expected and tuple(v.shape) == tuple(expected[k].shape)}
    report = InitReport(
        source=str(path),
        sha256=sha256_file(path),
        model_entries=len(expected),
        loaded=tuple(loadable),
        not_in_model=tuple(k for k in tensors if k not in expected),
        shape_mismatch=tuple(
            (k, tuple(v.shape), tuple(expected[k].shape))
            for k, v in tensors.items()
            if k in expected and tuple(v.shape) != tuple(expected[k].shape)
        ),
        not_in_file=tuple(k for k in expected if k not in tensors),
    )
    if not loadable:
        raise IncompatibleWeightsError(
            f"{path}: none of its {len(tensors)} tensors matches a {type(model).__name__} entry by name and shape "
            f"(first file keys: {list(tensors)[:3]}, first model keys: {list(expected)[:3]}); is it weights for "
            "another model family?"
        )
    model.load_state_dict(loadable, strict=False)
    logger.info("%s", report.format())
    return report
