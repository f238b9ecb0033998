"""Process-level faults: a failing data worker must not hang the process; locks of killed processes are recovered;
stop signals say what is saved, in every phase of a run.

The signal cases run the trainer in this process (signals are delivered to the main thread, which pytest runs the
test in) with a tiny regression model, or ``posezoo train`` with a tiny VTTransPose; the hang and the locks need
real processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from posecommon.errors import TrainingInterrupted
from posecommon.train import TrainConfig, Trainer

from ..train_fixtures import NoisyRegression, RegressionTask, tiny_model

ROOT = Path(__file__).resolve().parents[2]
LOCK_NAME = ".posezoo.lock"


def stop_message(stop: TrainingInterrupted) -> str:
    from posecommon.app.checks import stop_message as message

    return message(stop)
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_DISABLE_PROGRESS_BARS": "1", "OMP_NUM_THREADS": "1"}


def _coco_root(root: Path, corrupt: bytes) -> None:
    from .test_datasets import coco_split

    for split in ("train2017", "val2017"):
        dataset = coco_split(root, split)
        (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(dataset))
    (root / "train2017" / "002.jpg").write_bytes(corrupt)


@pytest.mark.slow
def test_a_corrupt_image_with_two_workers_ends_at_once_with_one_line(tmp_path):
    """main: about 55 lines with a worker traceback, then the process never exits (a worker ignoring SIGTERM)."""
    _coco_root(tmp_path / "data", b"\xff\xd8\xff not a jpeg")
    command = [sys.executable, "-m", "posecommon.app.cli", "train", "vttranspose_h_s", "--data", str(tmp_path / "data")]
    command += ["--out", str(tmp_path / "run"), "--steps", "8", "--batch-size", "1", "--input-size", "32", "24"]
    command += ["--workers", "2", "--backbone-weights", "none", "--checkpoint-every", "100"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=300)  # model build and import included, on a loaded host
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"posezoo train did not exit within 300 s (hang); stderr: {err[-2000:]}")
    assert process.returncode == 2, err[-3000:]
    assert err.splitlines() == [line for line in err.splitlines() if line.startswith("posezoo train: error:")]
    assert len(err.splitlines()) == 1 and "002.jpg" in err and "Traceback" not in err + out


def _hold_lock(run: Path, fork_child: bool = False) -> subprocess.Popen:
    script = (
        "import os, sys, time\n"
        "from posecommon.train.run_lock import RunLock\n"
        "RunLock(sys.argv[1]).acquire()\n"
        f"if {fork_child} and os.fork() == 0:\n"
        "    time.sleep(120); os._exit(0)\n"
        "print('held', flush=True)\n"
        "time.sleep(300)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script, str(run)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    from posecommon.train.run_lock import RunLock

    run = tmp_path / "run"
    holder = _hold_lock(run)
    record = json.loads((run / LOCK_NAME).read_text())
    assert record["pid"] == holder.pid and record["host"] and record["started"]
    holder.kill()  # SIGKILL: no clean-up ran
    holder.wait(30)
    with RunLock(run):
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_a_forked_child_of_a_killed_trainer_does_not_keep_its_lock(tmp_path):
    """DataLoader workers are forked children: one that outlives its killed trainer must not hold the run."""
    from posecommon.train.run_lock import RunLock

    run = tmp_path / "run"
    holder = _hold_lock(run, fork_child=True)
    holder.kill()
    holder.wait(30)
    with RunLock(run):  # the child still sleeps, with no copy of the lock
        pass


def test_the_refusal_names_the_holder_and_writes_nothing(tmp_path):
    from posecommon.errors import RunInUseError
    from posecommon.train.run_lock import RunLock

    run = tmp_path / "run"
    holder = _hold_lock(run)
    try:
        with pytest.raises(RunInUseError) as refused:
            RunLock(run).acquire()
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and os.uname().nodename in message and "\n" not in message
        assert refused.value.holder["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait(30)


# --- stop signals, in each phase -------------------------------------------------------------------------------


def _config(**changes: Any) -> TrainConfig:
    return TrainConfig(**{"total_steps": 6, "batch_size": 4, "optimizer": "sgd", "checkpoint_every": 1, **changes})


def test_the_first_ctrl_c_is_answered_at_once(tmp_path):
    """main printed nothing until the running step ended."""
    notices: list[tuple[int, str]] = []

    class SlowTask(RegressionTask):
        def loss(self, model: Any, batch: Any) -> Any:
            if trainer.step == 2 and not notices:
                os.kill(os.getpid(), signal.SIGINT)
                notices.append((trainer.step, "the step goes on after the notice"))
            return super().loss(model, batch)

    def report(line: str) -> None:
        notices.append((trainer.step, line))

    trainer = Trainer(tiny_model(), NoisyRegression(), SlowTask(), _config(), tmp_path, device="cpu", report=report)
    with pytest.raises(TrainingInterrupted) as stopped:
        trainer.fit()
    assert notices[0] == (2, "Ctrl-C: finishing step 3, saving a checkpoint, then stopping (Ctrl-C again stops at "
                             "once, losing the steps since the last checkpoint)")  # fmt: skip
    assert stopped.value.step == 3 and stopped.value.checkpoint.endswith("step-000000003")
    assert stop_message(stopped.value).startswith("interrupted at step 3 (checkpoint ")


def test_a_second_ctrl_c_during_a_save_waits_for_it_and_leaves_no_tmp(tmp_path, monkeypatch):
    """main: the second Ctrl-C raised inside the save, left step-<n>.tmp and said 'before training started'."""
    from posecommon.train import checkpoint

    real = checkpoint.write_synced
    sent: list[int] = []

    def write_synced(path: Any, data: bytes) -> None:
        if "step-000000002.tmp" in str(path) and not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)  # the first: stop after this step
            os.kill(os.getpid(), signal.SIGINT)  # the second: stop at once (after the save)
        real(path, data)

    monkeypatch.setattr(checkpoint, "write_synced", write_synced)
    trainer = Trainer(tiny_model(), NoisyRegression(), RegressionTask(), _config(), tmp_path, device="cpu")
    with pytest.raises(TrainingInterrupted) as stopped:
        trainer.fit()
    assert stopped.value.at_once and stopped.value.step == 2 and stopped.value.checkpoint_step == 2
    assert list((tmp_path / "checkpoints").glob("*.tmp")) == []
    assert json.loads((tmp_path / "checkpoints" / "latest.json").read_text())["step"] == 2
    assert stop_message(stopped.value).startswith("interrupted at step 2 (checkpoint ")


def test_a_second_ctrl_c_during_a_step_says_what_is_lost(tmp_path):
    fired: list[int] = []

    class Task(RegressionTask):
        def loss(self, model: Any, batch: Any) -> Any:
            if trainer.step == 3 and not fired:
                fired.append(1)
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)
            return super().loss(model, batch)

    trainer = Trainer(tiny_model(), NoisyRegression(), Task(), _config(checkpoint_every=2), tmp_path, device="cpu")
    with pytest.raises(TrainingInterrupted) as stopped:
        trainer.fit()
    message = stop_message(stopped.value)
    assert stopped.value.at_once and stopped.value.checkpoint_step == 2
    assert "at once (second signal) during step 4; the last checkpoint is step 2" in message
    assert "the 1 step(s) after it are lost" in message


def test_ctrl_c_during_the_final_evaluation_says_so_and_a_rerun_finishes(tmp_path):
    """main: 'interrupted before training started (nothing to save)'."""
    evaluations: list[int] = []

    def evaluate(model: Any) -> dict[str, float]:
        evaluations.append(1)
        if len(evaluations) == 1:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(60)  # a long evaluation: the signal ends it at once
        return {"AP": 0.5}

    trainer = Trainer(tiny_model(), NoisyRegression(), RegressionTask(), _config(), tmp_path, evaluate=evaluate)
    started = time.monotonic()
    with pytest.raises(TrainingInterrupted) as stopped:
        trainer.fit()
    assert time.monotonic() - started < 50
    assert stopped.value.phase == "evaluation" and stopped.value.checkpoint.endswith("step-000000006")
    assert stop_message(stopped.value).startswith("interrupted during the evaluation after step 6 (not recorded;")
    again = Trainer(tiny_model(), NoisyRegression(), RegressionTask(), _config(), tmp_path, evaluate=evaluate)
    assert again.fit().evaluations == [{"step": 6, "AP": 0.5}]


def test_ctrl_c_during_a_periodic_evaluation_saves_that_step(tmp_path):
    calls: list[int] = []

    def evaluate(model: Any) -> dict[str, float]:
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(60)
        return {"AP": 0.1}

    config = _config(checkpoint_every=0, eval_every=2)
    trainer = Trainer(tiny_model(), NoisyRegression(), RegressionTask(), config, tmp_path, evaluate=evaluate)
    with pytest.raises(TrainingInterrupted) as stopped:
        trainer.fit()
    assert stopped.value.phase == "evaluation" and stopped.value.step == 2
    assert stopped.value.checkpoint.endswith("step-000000002")  # saved although checkpoint_every=0


@pytest.mark.slow
def test_posezoo_train_interrupted_in_its_last_phase_says_what_is_done(tmp_path, monkeypatch):
    """Ctrl-C while the predictions are written, after training: the message names the final weights."""
    from posecommon.app import train_run

    from ._harness import run_cli
    from .test_training import train_argv

    real = train_run.write_predictions

    def write_predictions(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_run, "write_predictions", write_predictions)
    outcome = run_cli(train_argv(tmp_path / "run"))
    assert outcome.code == 130
    assert outcome.err_lines == [
        f"posezoo train: interrupted after training finished at step 2 (checkpoint "
        f"{tmp_path / 'run' / 'checkpoints' / 'step-000000002'}); "
        "run the same command to write the final weights, predictions and summary"
    ]
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / "summary.json").exists()
