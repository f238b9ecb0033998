"""Suite-wide settings: under pytest-xdist each worker runs torch on one thread.

``pyproject.toml`` runs the suite on two xdist workers (``-n 2``): most of its time is single-threaded Python
(ONNX tracing, ``torch.compile``, data loading), which two workers overlap. Two workers with two torch threads each
would oversubscribe a 2-core machine, so each worker keeps one; a run without xdist (``-p no:xdist`` or ``-n 0``)
keeps torch's default.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
