"""Training: the shared loop, checkpoints, EMA, schedules and deterministic data order."""

from .checkpoint import load_checkpoint, save_checkpoint
from .ema import ModelEMA
from .sampling import SeededSamples, StepBatchSampler, derive_seed
from .schedule import cosine_lr
from .topdown_task import TopDownTask
from .trainer import TrainConfig, Trainer, TrainResult, TrainTask

__all__ = [
    "ModelEMA",
    "SeededSamples",
    "StepBatchSampler",
    "TopDownTask",
    "TrainConfig",
    "TrainResult",
    "TrainTask",
    "Trainer",
    "cosine_lr",
    "derive_seed",
    "load_checkpoint",
    "save_checkpoint",
]
