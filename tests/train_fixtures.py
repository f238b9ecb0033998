"""Tiny model, dataset and task for the trainer tests (also run by the DDP and crash worker scripts)."""

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset


class NoisyRegression(Dataset):
    """Fixed inputs with a random augmentation (additive noise drawn from torch's global RNG)."""

    def __init__(self, size: int = 24, features: int = 6) -> None:
        generator = torch.Generator().manual_seed(123)
        self.x = torch.randn(size, features, generator=generator)
        self.y = self.x @ torch.randn(features, 1, generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index] + 0.05 * torch.randn(self.x.shape[1]), self.y[index]


def tiny_model(dropout: float = 0.0, batch_norm: bool = False) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(6, 16)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 1)]
    return nn.Sequential(*layers)


class RegressionTask:
    def collate(self, samples: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = zip(*samples, strict=True)
        return torch.stack(xs), torch.stack(ys)

    def to_device(self, batch: Any, device: torch.device) -> Any:
        return tuple(t.to(device) for t in batch)

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch
        mse = nn.functional.mse_loss(model(x), y)
        return mse, {"mse": mse}


class CrashError(Exception):
    """Stands for the process dying (nothing after it runs: no checkpoint, no clean-up)."""


class CrashingTask(RegressionTask):
    """Raises :class:`CrashError` instead of computing the ``crash_at``-th loss of this task (1-based)."""

    def __init__(self, crash_at: int) -> None:
        self.crash_at = crash_at
        self.calls = 0

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.calls += 1
        if self.calls == self.crash_at:
            raise CrashError(f"crash in loss call {self.calls}")
        return super().loss(model, batch)


def logged_losses(run_dir: Path) -> dict[int, float]:
    """``{step: loss}`` from a run's metrics.jsonl (fails on a repeated step)."""
    losses: dict[int, float] = {}
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            assert record["step"] not in losses, f"step {record['step']} logged twice"
            losses[record["step"]] = record["loss"]
    return losses
