"""A model family's published training recipe as one frozen, documented, JSON-able object.

Each family declares its recipe beside its architecture (``PoseModel.train_recipe``); ``posezoo train`` prints it
at the start of a run, saves it as ``recipe.json`` in the run directory and turns it into a
:class:`~posecommon.TrainConfig` (flags override single values). ``sources`` cites, per field, the paper section
or the file and line of the official code the value comes from.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainRecipe"]


@dataclass(frozen=True)
class TrainRecipe:
    """Every value of a training recipe.

    Args:
        name: What the recipe reproduces.
        epochs: Passes over the training set (unless ``steps`` is set).
        batch_size: Samples per batch over all processes.
        optimizer: ``"sgd"`` (Nesterov), ``"adam"`` or ``"adamw"``.
        lr: Initial (peak) learning rate.
        lr_final: Learning rate at the end of the cosine (YOLOv5's ``lr0 * lrf``).
        momentum: SGD momentum, or Adam's beta1.
        weight_decay: Weight decay of the weights of rank >= 2 (before the nominal-batch scaling).
        schedule: ``"epoch_cosine"`` (rate set once per epoch, optional YOLOv5 warm-up) or ``"cosine"`` (per step);
            see :mod:`posecommon.train.schedule`.
        nominal_batch_size: Samples per optimiser step reached by gradient accumulation (None: no accumulation).
        warmup_epochs: Warm-up length in epochs ...
        warmup_min_steps: ... and at least this many iterations: ``max(round(warmup_epochs * steps_per_epoch),
            warmup_min_steps)``.
        warmup_bias_lr: Initial learning rate of the biases during warm-up.
        warmup_momentum: Initial momentum during warm-up.
        ema_decay: Final decay of the weight EMA (None: no EMA).
        ema_ramp: EMA updates over which the decay ramps up, ``decay * (1 - exp(-updates / ramp))``.
        grad_clip: Maximum gradient norm (None: no clipping).
        amp: Mixed precision of the run (:mod:`posecommon.train.precision`): ``"auto"`` (float16 on CUDA) where the
            official code trained with autocast, ``"none"`` (float32) where it did not.
        keep_best: Export the checkpoint with the best validation AP as ``final/`` instead of the last one, as the
            official code's published weights were chosen (on COCO-format data; see ``posezoo train --keep-best``).
        initialisation: How the official run initialised the weights, in words. ``posezoo train`` prints how its
            run starts instead where that differs (from scratch on synthetic data, ``--backbone-weights``,
            ``--init-weights``), followed by these words.
        augmentation: Keyword arguments of the family's ``training_dataset`` (name, value) pairs.
        steps: Batches of the run instead of ``epochs`` (a short run, ``posezoo train --steps``); None: ``epochs``
            decide.
        sources: (field, citation) pairs.
    """

    name: str
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    lr_final: float
    momentum: float
    weight_decay: float
    schedule: str
    nominal_batch_size: int | None = None
    warmup_epochs: float = 0.0
    warmup_min_steps: int = 0
    warmup_bias_lr: float = 0.0
    warmup_momentum: float = 0.0
    ema_decay: float | None = None
    ema_ramp: float = 2000.0
    grad_clip: float | None = None
    amp: str = "auto"
    keep_best: bool = False
    initialisation: str = "from scratch"
    augmentation: tuple[tuple[str, Any], ...] = ()
    steps: int | None = None
    sources: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def augmentation_kwargs(self) -> dict[str, Any]:
        """The augmentation as keyword arguments of ``training_dataset``."""
        return dict(self.augmentation)

    def total_steps(self, steps_per_epoch: int) -> int:
        """Batches of the run: ``steps`` when set, else ``epochs * steps_per_epoch``."""
        return self.steps if self.steps is not None else self.epochs * steps_per_epoch

    def warmup_steps(self, steps_per_epoch: int) -> int:
        """Warm-up iterations: ``max(round(warmup_epochs * steps_per_epoch), warmup_min_steps)``."""
        return max(round(self.warmup_epochs * steps_per_epoch), self.warmup_min_steps)

    def replace(self, **changes: Any) -> TrainRecipe:
        """A copy with some fields changed (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able ``dict`` (augmentation and sources as objects)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["augmentation"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.augmentation}
        data["sources"] = dict(self.sources)
        return data

    def format(self) -> str:
        """One line per value, with its source: what ``posezoo train`` prints at the start of a run (and
        ``posezoo train MODEL --help``). With ``steps`` set, ``epochs`` is shown as replaced by it."""
        sources = dict(self.sources)
        lines = [f"recipe: {self.name}"]
        for key, value in self.to_dict().items():
            if key in ("name", "sources") or (key == "steps" and value is None):
                continue
            shown = json.dumps(value) if isinstance(value, dict) else str(value)
            if key == "epochs" and self.steps is not None:
                shown = f"{value} (not used: the run is {self.steps} steps)"
            lines.append(f"  {key:<19} {shown}" + (f"  [{sources[key]}]" if key in sources else ""))
        return "\n".join(lines)
