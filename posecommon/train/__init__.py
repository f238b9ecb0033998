"""Training: the shared loop, crash-safe checkpoints, EMA, schedules, recipes and deterministic data order."""

from .checkpoint import CheckpointStore, load_checkpoint, save_checkpoint
from .config import TrainConfig, TrainTask
from .ema import ModelEMA
from .loader import default_num_workers
from .precision import Precision, resolve_precision
from .recipe import TrainRecipe
from .sampling import SeededSamples, StepBatchSampler, derive_seed
from .schedule import StepPlan, TrainSchedule, cosine_lr, one_cycle
from .topdown_task import TopDownTask
from .trainer import Trainer, TrainResult

__all__ = [
    "CheckpointStore",
    "ModelEMA",
    "Precision",
    "SeededSamples",
    "StepBatchSampler",
    "StepPlan",
    "TopDownTask",
    "TrainConfig",
    "TrainRecipe",
    "TrainResult",
    "TrainSchedule",
    "TrainTask",
    "Trainer",
    "cosine_lr",
    "default_num_workers",
    "derive_seed",
    "load_checkpoint",
    "one_cycle",
    "resolve_precision",
    "save_checkpoint",
]
