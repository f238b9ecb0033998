"""Threads: concurrent ``predict`` calls, run locks across threads, downloads in parallel, training off the main
thread."""

from __future__ import annotations

import importlib
import threading
import time

import numpy as np
import pytest
import torch

from posecommon.errors import BadImageError

IMAGE = np.full((40, 48, 3), 120, dtype=np.uint8)


@pytest.fixture(scope="module")
def detector():
    from drsinet import drsi_net_s

    torch.manual_seed(0)
    return drsi_net_s(input_size=(64, 64), width_multiple=0.125, depth_multiple=0.1)


def _modes(model: torch.nn.Module) -> list[bool]:
    return [module.training for module in model.modules()]


def test_overlapping_predict_calls_leave_a_training_model_in_training_mode(detector):
    """Call 1 enters (model -> eval), call 2 enters (saw eval), call 1 leaves, call 2 leaves last: main restored
    call 2's 'eval', leaving a model that was training in eval mode."""
    detector.train()
    next(m for m in detector.modules() if isinstance(m, torch.nn.BatchNorm2d)).eval()  # a frozen norm stays frozen
    before = _modes(detector)
    inside, both = threading.Event(), threading.Barrier(2, timeout=120)

    def hook(module: torch.nn.Module, args: object) -> None:
        if threading.current_thread().name in ("first", "second"):
            inside.set()
            both.wait()
            if threading.current_thread().name == "second":
                time.sleep(0.5)  # leaves last

    handle = detector.register_forward_pre_hook(hook)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            detector.predict(IMAGE, fuse=False, channels_last=False)
        except BaseException as err:
            errors.append(err)

    try:
        first = threading.Thread(target=run, name="first")
        first.start()
        assert inside.wait(120)
        second = threading.Thread(target=run, name="second")
        second.start()
        first.join(120)
        second.join(120)
    finally:
        handle.remove()
    assert errors == []
    assert _modes(detector) == before  # training, with the frozen norm still in eval


def test_many_concurrent_predict_calls_on_the_fused_copy_never_touch_the_model(detector):
    detector.train()
    before = _modes(detector)
    seen: list[bool] = []

    def run() -> None:
        for _ in range(3):
            detector.predict(IMAGE)
            seen.append(detector.training)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert len(seen) == 12 and all(seen) and _modes(detector) == before


def test_a_run_directory_is_one_thread_s_at_a_time(tmp_path):
    from posecommon.errors import RunInUseError
    from posecommon.train.run_lock import RunLock

    outcome: list[BaseException | None] = []
    with RunLock(tmp_path / "run"), RunLock(tmp_path / "run"):  # re-entrant in one thread (run_training + fit)

        def other() -> None:
            try:
                with RunLock(tmp_path / "run"):
                    outcome.append(None)
            except RunInUseError as err:
                outcome.append(err)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(60)
    assert isinstance(outcome[0], RunInUseError) and "another thread of this process" in str(outcome[0])
    with RunLock(tmp_path / "run"):  # released by the outermost holder
        pass


def test_parallel_downloads_keep_their_own_deadlines(server):
    downloads = importlib.import_module("posecommon.media.download")
    results: dict[str, float] = {}

    def fetch(route: str, timeout: float) -> None:
        started = time.monotonic()
        with pytest.raises(BadImageError, match="took longer"):
            downloads.download(server.url(route), timeout=timeout)
        results[route] = time.monotonic() - started

    threads = [
        threading.Thread(target=fetch, args=("/drip-headers", 1.0)),
        threading.Thread(target=fetch, args=("/drip-body", 3.0)),
        threading.Thread(target=fetch, args=("/stall", 2.0)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results["/drip-headers"] < 1.0 + 5 and results["/stall"] < 2.0 + 5 and results["/drip-body"] < 3.0 + 5
    assert results["/drip-body"] > 2.5  # each transfer its own deadline, not the first one's


def test_training_off_the_main_thread_runs_without_signal_handlers(tmp_path):
    from posecommon.train import TrainConfig, Trainer

    from ..train_fixtures import NoisyRegression, RegressionTask, tiny_model

    result: list[object] = []

    def train() -> None:
        config = TrainConfig(total_steps=3, batch_size=4, optimizer="sgd", checkpoint_every=1)
        result.append(Trainer(tiny_model(), NoisyRegression(), RegressionTask(), config, tmp_path, device="cpu").fit())

    thread = threading.Thread(target=train)
    thread.start()
    thread.join(300)
    assert result and result[0].step == 3
