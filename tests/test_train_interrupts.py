"""Training processes killed (SIGKILL) or interrupted (SIGINT) for real, then resumed.

The SIGKILL tests fork their training processes from the test process (which has imported torch already), so each of
the many killed processes costs milliseconds to start, not the seconds of a fresh interpreter; each is a separate
OS process that writes its own checkpoints and dies without any clean-up. The random kills land while computing or
saving; a metrics line is written with one ``write`` call and is too short ever to be cut by them, so the torn-line
test holds its process inside a line (half written and flushed) and kills it there.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from posecommon.errors import TrainingInterrupted
from posecommon.train import CheckpointStore, TrainConfig, Trainer
from posecommon.train.metrics_log import MetricsLog
from tests.train_fixtures import NoisyRegression, RegressionTask, logged_losses, tiny_model

ROOT = Path(__file__).resolve().parents[1]
KILLS = 32
CONFIG = TrainConfig(
    total_steps=60,
    batch_size=4,
    optimizer="sgd",
    lr=0.05,
    lr_final=0.005,
    momentum=0.9,
    weight_decay=1e-4,
    schedule="epoch_cosine",
    warmup_steps=5,
    nominal_batch_size=12,  # accumulation: many checkpoints hold pending gradients
    grad_clip=1.0,
    ema_decay=0.99,
    checkpoint_every=1,
    keep_checkpoints=2,
)


def _train(run_dir: Path, config: dict) -> None:
    model = tiny_model(dropout=0.2, batch_norm=True)
    Trainer(model, NoisyRegression(), RegressionTask(), TrainConfig(**config), run_dir, device="cpu").fit()


def _train_in_child(run_dir: Path, config: dict) -> None:
    sys.stderr = open(os.devnull, "w")  # progress bar and warnings  # noqa: SIM115
    torch.set_num_threads(1)
    _train(run_dir, config)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _last_logged_step(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    steps = [0]
    if path.is_file():
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError, KeyError):  # the line a kill cut short
                steps.append(json.loads(line)["step"])
    return max(steps)


def _checkpoint_step(run_dir: Path) -> int:
    found = CheckpointStore(run_dir / "checkpoints").load_latest()
    return 0 if found is None else found[0]["step"]


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_at_most_one_checkpoint_and_ends_like_an_uninterrupted_run(
    tmp_path, one_thread
):
    config = asdict(CONFIG)
    _train(tmp_path / "straight", {**config, "checkpoint_every": 0})  # here, so that the forks start warm
    fork = multiprocessing.get_context("fork")

    run = tmp_path / "killed"
    rng = random.Random(1234)
    kills, resumed_from, lost, step_time = 0, [], [], 0.05
    while kills < KILLS:
        start = _checkpoint_step(run)
        resumed_from.append(start)
        target = start + rng.randint(0, 2)  # kill while resuming, or in the first, second or third step ...
        child = fork.Process(target=_train_in_child, args=(run, config))
        child.start()
        seen, seen_at = start, None
        while seen < target and child.is_alive():
            time.sleep(0.002)
            logged = _last_logged_step(run)
            if logged > seen:
                now = time.monotonic()
                if seen_at is not None:  # the time of a whole step, checkpoint included
                    step_time = 0.5 * step_time + 0.5 * (now - seen_at) / (logged - seen)
                seen, seen_at = logged, now
        time.sleep(rng.uniform(0.0, step_time))  # ... at a random moment of it: computing or saving
        if not child.is_alive():
            break
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        kills += 1
        logged, saved = _last_logged_step(run), _checkpoint_step(run)  # every kill leaves a loadable checkpoint
        assert saved >= logged - CONFIG.checkpoint_every, f"kill {kills}: logged step {logged}, checkpoint {saved}"
        lost.append(logged - saved)
    assert kills == KILLS, f"the run finished after {kills} kills; lengthen it"
    # the kills hit many moments: many different steps, inside a checkpoint write (the logged step is not saved
    # yet) and outside one
    assert len(set(resumed_from)) > KILLS // 4
    assert lost.count(0) >= 3 and lost.count(1) >= 3, lost
    child = fork.Process(target=_train_in_child, args=(run, config))
    child.start()
    child.join(120)
    assert child.exitcode == 0

    assert logged_losses(run) == logged_losses(tmp_path / "straight")  # every step once, exactly the same losses
    final, _ = CheckpointStore(run / "checkpoints").load_latest()
    reference, _ = CheckpointStore(tmp_path / "straight" / "checkpoints").load_latest()
    assert final["step"] == reference["step"] == CONFIG.total_steps
    for part in ("model", "ema"):
        for key, value in reference[part].items():
            assert torch.equal(final[part][key], value), (part, key)
    assert final["ema_updates"] == reference["ema_updates"]


TORN_STEP = 7


def _train_until_torn_write(run_dir: Path, config: dict, ready: Path) -> None:
    """Train; the record of step ``TORN_STEP`` is written half, flushed, and the process waits there to be killed."""
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    torch.set_num_threads(1)
    whole_line = MetricsLog.append

    def append(self: MetricsLog, record: dict) -> None:
        if record.get("step") != TORN_STEP or "loss" not in record:
            whole_line(self, record)
            return
        line = json.dumps(record) + "\n"
        if self._handle is None:
            self._handle = self.path.open("a")
        self._handle.write(line[: len(line) // 2])
        self._handle.flush()
        ready.write_text("half of the line is in the file")
        while True:
            time.sleep(1)

    MetricsLog.append = append  # in this forked process only
    _train(run_dir, config)


@pytest.mark.slow
def test_sigkill_in_the_middle_of_a_log_line_is_trimmed_on_resume(tmp_path, one_thread):
    config = {**asdict(CONFIG), "total_steps": 12}
    _train(tmp_path / "straight", {**config, "checkpoint_every": 0})
    fork = multiprocessing.get_context("fork")
    run, ready = tmp_path / "killed", tmp_path / "ready"
    child = fork.Process(target=_train_until_torn_write, args=(run, config, ready))
    child.start()
    deadline = time.monotonic() + 120
    while not ready.exists() and child.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ready.exists(), "the child never reached the torn write"
    os.kill(child.pid, signal.SIGKILL)  # provably mid-line: the child is parked between the two halves
    child.join()
    raw = (run / "metrics.jsonl").read_bytes()
    torn = raw.splitlines()[-1]
    assert not raw.endswith(b"\n") and torn.startswith(b'{"step": %d' % TORN_STEP)
    with pytest.raises(json.JSONDecodeError):
        json.loads(torn)
    assert _checkpoint_step(run) == TORN_STEP - 1  # the step's checkpoint comes after its log line
    child = fork.Process(target=_train_in_child, args=(run, config))
    child.start()
    child.join(120)
    assert child.exitcode == 0
    # Every line parses, every step is logged once, with exactly the losses of an uninterrupted run.
    assert logged_losses(run) == logged_losses(tmp_path / "straight")
    assert _checkpoint_step(run) == config["total_steps"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signal_number", "status", "how"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "stopped by SIGTERM")],
    ids=["ctrl-c", "sigterm"],
)
def test_stop_signal_saves_a_checkpoint_and_exits_with_one_line(tmp_path, signal_number, status, how):
    """Ctrl-C in a terminal, or a scheduler's SIGTERM: sent to the whole process group (the DataLoader worker gets
    it too), the running step finishes, a checkpoint is written, one line is printed, the status is 128 + signal."""
    run = tmp_path / "run"
    command = [sys.executable, "-m", "posecommon.app.cli", "train", "vttranspose_h_s", "--out", str(run)]
    command += ["--steps", "100000", "--batch-size", "2", "--input-size", "64", "48", "--synthetic-train", "8"]
    command += ["--synthetic-val", "2", "--synthetic-image-size", "96", "96", "--workers", "1"]
    command += ["--checkpoint-every", "100000"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_DISABLE_PROGRESS_BARS": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    deadline = time.monotonic() + 180
    while _last_logged_step(run) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, signal_number)
    out, err = process.communicate(timeout=120)
    assert process.returncode == status, out[-2000:] + err[-3000:]
    step = _checkpoint_step(run)
    assert step >= 2 and step == _last_logged_step(run)  # the step that was running finished and was saved
    checkpoint = run / "checkpoints" / f"step-{step:09d}"
    expected = f"posezoo train: {how} at step {step} (checkpoint {checkpoint}); run the same command to resume"
    assert err.splitlines() == [expected]
    assert "recipe: VTTransPose" in out  # the recipe was printed at the start


class _SlowRegression(NoisyRegression):
    """Loading is the bottleneck: the training process spends most of its time waiting for the worker."""

    def __getitem__(self, index: int):
        time.sleep(0.05)
        return super().__getitem__(index)


def _train_until_interrupted(run_dir: Path) -> None:
    os.setsid()  # its own process group, as a command started from a terminal
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    torch.set_num_threads(1)
    config = TrainConfig(total_steps=10_000, batch_size=4, optimizer="sgd", num_workers=1, prefetch_factor=1)
    trainer = Trainer(tiny_model(), _SlowRegression(), RegressionTask(), config, run_dir, device="cpu")
    try:
        trainer.fit()
    except TrainingInterrupted as stop:
        os._exit(130 if stop.checkpoint else 3)
    except BaseException:
        os._exit(4)
    os._exit(0)


@pytest.mark.slow
def test_ctrl_c_while_waiting_for_data_workers_finish_the_batch(tmp_path, one_thread):
    _train(tmp_path / "warm-up", {**asdict(CONFIG), "total_steps": 1})  # import everything before forking
    child = multiprocessing.get_context("fork").Process(target=_train_until_interrupted, args=(tmp_path / "run",))
    child.start()
    deadline = time.monotonic() + 60
    while _last_logged_step(tmp_path / "run") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(child.pid, signal.SIGINT)  # the training process and its DataLoader worker, as Ctrl-C does
    child.join(60)
    assert child.exitcode == 130  # not a dead worker's RuntimeError
    assert _checkpoint_step(tmp_path / "run") == _last_logged_step(tmp_path / "run") >= 2
