"""Typed exceptions raised by posezoo.

Every error a user can provoke with bad input derives from :class:`PosezooError`, so callers can catch the
library's errors in one place while still telling them apart. Each subclass also derives from the closest
built-in exception (``KeyError``, ``ValueError``, ``FileNotFoundError``, ...) so generic handlers keep working.
"""

from __future__ import annotations

import signal

__all__ = [
    "BadImageError",
    "CheckpointError",
    "ChecksumError",
    "ConfigError",
    "DatasetError",
    "HubUnavailableError",
    "IncompatibleWeightsError",
    "InvalidInputError",
    "MissingDependencyError",
    "PosezooError",
    "RunInUseError",
    "RunMismatchError",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "UnknownModelError",
    "UnsafeWeightsError",
    "WeightsNotFoundError",
]


class PosezooError(Exception):
    """Base class of every error raised on purpose by posezoo."""


class UnknownModelError(PosezooError, KeyError):
    """A model name is not in the registry. The message lists the registered names."""

    def __str__(self) -> str:  # KeyError would otherwise print the repr of the message
        return str(self.args[0]) if self.args else ""


class WeightsNotFoundError(PosezooError, FileNotFoundError):
    """No weights are published for the requested model/tag, or a local weight file does not exist."""


class HubUnavailableError(PosezooError, ConnectionError):
    """The Hugging Face Hub could not be reached (or offline mode is on) and the file is not cached."""


class ChecksumError(PosezooError, ValueError):
    """A downloaded or local weight file does not match the sha256 recorded in the registry."""


class IncompatibleWeightsError(PosezooError, ValueError):
    """A weight file is corrupted, or its keys/shapes do not match the model it is loaded into."""


class UnsafeWeightsError(PosezooError, ValueError):
    """A weight file is not safetensors (for example a pickle); posezoo refuses to unpickle it."""


class BadImageError(PosezooError, ValueError):
    """An image could not be read or has an unsupported mode, dtype or shape."""


class InvalidInputError(PosezooError, ValueError):
    """An argument other than an image is malformed (boxes with NaN, wrong tensor shape, ...)."""


class DatasetError(PosezooError, ValueError):
    """A COCO-format dataset is malformed or references a missing image; the message names file and record."""


class ConfigError(PosezooError, ValueError, TypeError):
    """A model config (keyword arguments, ``config.json``) has an unknown field, a wrongly typed or invalid value.

    The message names the field and, where one exists, the nearest valid value or the field meant ("did you
    mean"). It derives from both ``ValueError`` (invalid values) and ``TypeError`` (unknown fields, wrong types),
    the built-in errors these cases raised before it existed.

    Args:
        message: What is wrong and what to do.
        field: Name of the offending field (``None`` when the problem is not one field).
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MissingDependencyError(PosezooError, ImportError):
    """An optional dependency (an extra such as ``onnx`` or ``video``) is not installed; the message gives the pip
    commands."""

    @classmethod
    def for_extra(cls, extra: str, modules: list[str] | tuple[str, ...], purpose: str) -> MissingDependencyError:
        """The error for missing ``modules`` of the ``posezoo[extra]`` extra.

        Args:
            extra: Name of the extra in ``pyproject.toml`` (e.g. ``"onnx"``).
            modules: The modules that are not importable.
            purpose: What needs them, e.g. ``"ONNX export"``.
        """
        return cls(
            f"{purpose} needs {', '.join(modules)}, which {'is' if len(modules) == 1 else 'are'} not installed. "
            f'Install the extra: pip install "posezoo[{extra}]" (from a wheel or PyPI), or pip install -e ".[{extra}]" '
            "(from a source checkout)"
        )


class CheckpointError(PosezooError, RuntimeError):
    """A training checkpoint is incomplete or damaged, or a run directory holds checkpoints none of which loads."""


class RunMismatchError(PosezooError, ValueError):
    """A run directory belongs to another model, or was trained with other settings than the resumed run.

    Attributes:
        differences: One ``"name: saved -> now"`` line per differing setting.
    """

    def __init__(self, message: str, differences: list[str] | None = None) -> None:
        super().__init__(message)
        self.differences = differences or []


class RunInUseError(PosezooError, RuntimeError):
    """Another process holds the run directory's lock (:mod:`posecommon.train.run_lock`); the message names it.

    Attributes:
        holder: What the lock file records about the holder (``pid``, ``host``, ``started``), possibly empty.
    """

    def __init__(self, message: str, holder: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}


class TrainingDivergedError(PosezooError, FloatingPointError):
    """The training loss became NaN or infinite; the checkpoints written before it are kept.

    Derives from :class:`FloatingPointError`, which the trainer raised for this before.
    """


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT (Ctrl-C) or SIGTERM; running it again resumes from the newest checkpoint.

    Derives from :class:`KeyboardInterrupt` (not :class:`PosezooError`): code that does not handle it stops as on
    any Ctrl-C, but with what was done saved.

    Attributes:
        step: Training steps done when it stopped.
        checkpoint: The newest checkpoint directory, or None when there is none yet.
        rank: The process's rank under ``torch.distributed`` (0 otherwise).
        signal_number: The signal that stopped it (``signal.SIGINT`` or ``signal.SIGTERM``); a command-line
            program exits with ``128 + signal_number`` (130 or 143).
        phase: What was running: ``"training"`` (the running step finished and was saved, unless ``at_once``),
            ``"evaluation"`` (an evaluation was abandoned; the steps before it are saved) or ``"finishing"``
            (training is complete and saved; the final weights, predictions or summary were being written).
        at_once: A second signal stopped it without finishing the running step (the steps after
            ``checkpoint_step`` are lost).
        checkpoint_step: The step of ``checkpoint`` (None without a checkpoint).
    """

    def __init__(
        self,
        step: int,
        checkpoint: str | None,
        rank: int = 0,
        signal_number: int = signal.SIGINT,
        *,
        phase: str = "training",
        at_once: bool = False,
        checkpoint_step: int | None = None,
    ) -> None:
        if checkpoint_step is None and checkpoint is not None and not at_once:
            checkpoint_step = step
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint"
        name = signal.Signals(signal_number).name
        how = "at once " if at_once else ""
        super().__init__(f"stopped {how}by {name} at step {step} during {phase} ({where})")
        self.step = step
        self.checkpoint = checkpoint
        self.rank = rank
        self.signal_number = int(signal_number)
        self.phase = phase
        self.at_once = at_once
        self.checkpoint_step = checkpoint_step
