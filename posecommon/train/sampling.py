"""Deterministic, resumable data order and per-sample seeding.

The data order is a pure function of ``(seed, step)``: epoch ``e`` visits ``randperm(len(dataset))`` drawn from a
generator seeded with ``seed + e``, cut into global batches; under DDP each rank takes every ``world_size``-th
index of the global batch. Random augmentations are seeded per sample from ``(seed, step, index)``. Training
``N`` steps straight therefore equals training ``N/2``, stopping, and resuming for ``N/2``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

__all__ = ["SeededSamples", "StepBatchSampler", "derive_seed"]


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixing integer ``parts`` (splitmix64), stable across processes and platforms."""
    state = 0x9E3779B97F4A7C15
    for part in parts:
        state = (state ^ (int(part) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 31
    return state & 0x7FFFFFFFFFFFFFFF


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields, for each step in ``[start_step, total_steps)``, this rank's ``(step, dataset_index)`` pairs.

    Args:
        dataset_size: Number of samples.
        global_batch_size: Samples per optimiser step over all ranks (must be divisible by ``world_size``).
        total_steps: Last step (exclusive).
        start_step: First step (to resume).
        seed: Base seed of the permutations.
        rank: This process's rank.
        world_size: Number of processes.

    Raises:
        ValueError: the batch does not fit the dataset or does not split evenly over ranks.
    """

    def __init__(
        self,
        dataset_size: int,
        global_batch_size: int,
        total_steps: int,
        start_step: int = 0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if global_batch_size % world_size:
            raise ValueError(f"batch size {global_batch_size} is not divisible by world size {world_size}")
        if dataset_size < global_batch_size:
            raise ValueError(f"the dataset has {dataset_size} samples, fewer than one batch of {global_batch_size}")
        self.dataset_size = dataset_size
        self.global_batch_size = global_batch_size
        self.steps_per_epoch = dataset_size // global_batch_size
        self.total_steps = total_steps
        self.start_step = start_step
        self.seed = seed
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch_cached, perm = -1, torch.empty(0, dtype=torch.long)
        for step in range(self.start_step, self.total_steps):
            epoch, position = divmod(step, self.steps_per_epoch)
            if epoch != epoch_cached:
                generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
                perm = torch.randperm(self.dataset_size, generator=generator)
                epoch_cached = epoch
            batch = perm[position * self.global_batch_size : (position + 1) * self.global_batch_size]
            yield [(step, int(i)) for i in batch[self.rank :: self.world_size]]


class SeededSamples(Dataset):
    """Wraps a dataset so that ``self[(step, index)]`` loads ``dataset[index]`` under RNGs seeded by
    ``(seed, step, index)``; the caller's Python, numpy and torch RNG states are restored afterwards.

    Args:
        dataset: Any map-style dataset whose augmentations draw from ``random``, ``numpy.random`` or ``torch``.
        seed: Base seed.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        step, index = key
        seed = derive_seed(self.seed, step, index)
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            random.seed(seed)
            np.random.seed(seed % (2**32))
            torch.manual_seed(seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
