"""Typed exceptions raised by posezoo.

Every error a user can provoke with bad input derives from :class:`PosezooError`, so callers can catch the
library's errors in one place while still telling them apart. Each subclass also derives from the closest
built-in exception (``KeyError``, ``ValueError``, ``FileNotFoundError``, ...) so generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "BadImageError",
    "CheckpointError",
    "ChecksumError",
    "DatasetError",
    "HubUnavailableError",
    "IncompatibleWeightsError",
    "InvalidInputError",
    "MissingDependencyError",
    "PosezooError",
    "RunMismatchError",
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


class MissingDependencyError(PosezooError, ImportError):
    """An optional dependency (an extra such as ``video``) is not installed; the message gives the pip command."""


class DatasetError(PosezooError, ValueError):
    """A COCO-format dataset is malformed or references a missing image; the message names file and record."""


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


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT (Ctrl-C) after writing a checkpoint; running it again resumes there.

    Derives from :class:`KeyboardInterrupt` (not :class:`PosezooError`): code that does not handle it stops as on
    any Ctrl-C, but with the checkpoint written.

    Attributes:
        step: Steps done (the checkpoint's step).
        checkpoint: The checkpoint directory, or None when nothing could be saved (before the first step).
        rank: The process's rank under ``torch.distributed`` (0 otherwise).
    """

    def __init__(self, step: int, checkpoint: str | None, rank: int = 0) -> None:
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint"
        super().__init__(f"interrupted at step {step} ({where})")
        self.step = step
        self.checkpoint = checkpoint
        self.rank = rank
