"""Training faults: broken runs, changed settings, damaged checkpoints, a diverging loss, a full disk.

A tiny finished run (:func:`finished_run`, trained once per module) is copied for every case that resumes; each case
checks the exit status, the one-line message and that nothing of the run was lost; a refused resume also checks
that nothing on disk changed at all.
"""

from __future__ import annotations

import errno
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from ._harness import Snapshot, Workspace, check_fault, fault_case, run_cli

TINY = [
    *("--batch-size", "1", "--input-size", "32", "24", "--synthetic-train", "2", "--synthetic-val", "1"),
    *("--synthetic-image-size", "64", "64", "--checkpoint-every", "1", "--max-eval-images", "1", "--workers", "0"),
]


def train_argv(out: Path, *extra: str, steps: int = 2) -> list[str]:
    return ["train", "vttranspose_h_s", "--out", str(out), "--steps", str(steps), *TINY, *extra]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic run of 2 steps, checkpoints at steps 1 and 2, evaluated and exported."""
    run = tmp_path_factory.mktemp("finished") / "run"
    outcome = run_cli(train_argv(run))
    assert outcome.code == 0, outcome.err
    return run


def _resume(*extra: str, edit: Callable[[Path], None] | None = None, steps: int = 2) -> Callable:
    def setup(ws: Workspace) -> list[str]:
        shutil.rmtree(ws.out)
        shutil.copytree(ws.extra["run"], ws.out)
        if edit is not None:
            edit(ws.out)
        return train_argv(ws.out, *extra, steps=steps)

    return setup


def _every_manifest(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        for manifest in (run / "checkpoints").glob("step-*/manifest.json"):
            data = json.loads(manifest.read_text())
            replaced = change(data)
            manifest.write_text(replaced if isinstance(replaced, str) else json.dumps(data))

    return edit


def _entry(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["files"]["model.safetensors"][field] = value

    return change


def _outside_file(data: dict[str, Any]) -> None:
    data["files"]["../../../etc/hostname"] = data["files"].pop("model.safetensors")


def _state_step(run: Path) -> None:
    """state.json says step 7, and the manifest's digest was updated to match: the edit is only caught by reading."""
    import hashlib

    for directory in (run / "checkpoints").glob("step-*"):
        state = json.loads((directory / "state.json").read_text())
        state["step"] = 7
        data = json.dumps(state).encode()
        (directory / "state.json").write_bytes(data)
        manifest = json.loads((directory / "manifest.json").read_text())
        manifest["files"]["state.json"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        (directory / "manifest.json").write_text(json.dumps(manifest))


def _state_extra_text(run: Path) -> None:
    import hashlib

    for directory in (run / "checkpoints").glob("step-*"):
        state = json.loads((directory / "state.json").read_text())
        state["extra"] = "hand-edited"
        data = json.dumps(state).encode()
        (directory / "state.json").write_bytes(data)
        manifest = json.loads((directory / "manifest.json").read_text())
        manifest["files"]["state.json"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        (directory / "manifest.json").write_text(json.dumps(manifest))


def _fresh(*extra: str, steps: int = 2) -> Callable:
    def setup(ws: Workspace) -> list[str]:
        return train_argv(ws.out, *extra, steps=steps)

    return setup


def _other_model(ws: Workspace) -> list[str]:
    argv = _resume()(ws)
    argv[1] = "transpose_h_s_twin"
    return argv


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


NO_CHECKPOINT = "no loadable checkpoint"

RESUME_CASES = [
    fault_case("resume-more-steps", _resume(steps=3), 2, "train.total_steps: 2 -> 3", unchanged=True),
    fault_case("resume-other-lr", _resume("--lr", "0.5"), 2, "train.lr", unchanged=True),
    fault_case("resume-other-seed", _resume("--seed", "3"), 2, "seed", unchanged=True),
    fault_case("resume-other-synthetic-data", _resume("--synthetic-train", "3"), 2, "synthetic", unchanged=True),
    fault_case("resume-other-augmentation", _resume("--augment", "rotation=5"), 2, "augmentation", unchanged=True),
    fault_case(
        "resume-other-input-size", _resume("--input-size", "64", "48"), 2, "input_size: [32, 24] -> [64, 48]",
        unchanged=True,
    ),
    fault_case("resume-other-model", _other_model, 2, "another model", unchanged=True),
    fault_case("manifest-bytes-text", _resume(edit=_every_manifest(_entry("bytes", "abc"))), 2, NO_CHECKPOINT),
    fault_case("manifest-sha-short", _resume(edit=_every_manifest(_entry("sha256", "abc"))), 2, NO_CHECKPOINT),
    fault_case("manifest-entry-list", _resume(edit=_every_manifest(_entry("bytes", [1]))), 2, NO_CHECKPOINT),
    fault_case("manifest-outside-file", _resume(edit=_every_manifest(_outside_file)), 2, "not a file of"),
    fault_case("manifest-step-negative", _resume(edit=_every_manifest(lambda d: d.update(step=-1))), 2, NO_CHECKPOINT),
    fault_case("manifest-files-list", _resume(edit=_every_manifest(lambda d: d.update(files=[]))), 2, NO_CHECKPOINT),
    fault_case("manifest-not-json", _resume(edit=_every_manifest(lambda d: "{")), 2, NO_CHECKPOINT),
    fault_case("manifest-nested", _resume(edit=_every_manifest(lambda d: _deep(100000))), 2, "nested too deeply"),
    fault_case("state-step-edited", _resume(edit=_state_step), 2, "malformed"),
    fault_case("state-extra-text", _resume(edit=_state_extra_text), 2, "malformed"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("setup", "code", "message", "lines", "unchanged"), RESUME_CASES)
def test_resume_fault(setup, code, message, lines, unchanged, workspace, finished_run):
    workspace.extra["run"] = finished_run
    argv = setup(workspace)
    snapshot = Snapshot(workspace.root)
    outcome = run_cli(argv)
    check_fault(outcome, snapshot, code=code, message=message, command="train", lines=lines, unchanged=unchanged)


FRESH_CASES = [
    fault_case("batch-larger-than-data", _fresh("--batch-size", "8"), 2, "fewer than one batch"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("setup", "code", "message", "lines", "unchanged"), FRESH_CASES)
def test_fresh_run_fault(setup, code, message, lines, unchanged, workspace):
    argv = setup(workspace)
    snapshot = Snapshot(workspace.root)
    outcome = run_cli(argv)
    check_fault(outcome, snapshot, code=code, message=message, command="train", lines=lines, unchanged=unchanged)
    assert not (workspace.out / "checkpoints").exists()


@pytest.mark.slow
def test_a_nan_loss_is_one_line_and_keeps_the_checkpoints(workspace, monkeypatch):
    from posecommon.train.topdown_task import TopDownTask

    real = TopDownTask.loss
    calls = []

    def loss(self: Any, model: Any, batch: Any) -> Any:
        calls.append(1)
        value, terms = real(self, model, batch)
        return (value * float("nan"), terms) if len(calls) == 2 else (value, terms)

    monkeypatch.setattr(TopDownTask, "loss", loss)
    snapshot = Snapshot(workspace.root)
    outcome = run_cli(train_argv(workspace.out, steps=3))
    check_fault(outcome, snapshot, code=2, message="the loss is nan at step 2", command="train")
    assert "checkpoint step 1" in outcome.err and "step-000000001" in outcome.err
    assert json.loads((workspace.out / "checkpoints" / "latest.json").read_text())["step"] == 1


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(workspace, monkeypatch):
    from posecommon.train import checkpoint

    real = checkpoint.write_synced
    writes = []

    def write_synced(path: Any, data: bytes) -> None:
        writes.append(path)
        if "step-000000002" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(checkpoint, "write_synced", write_synced)
    snapshot = Snapshot(workspace.root)
    outcome = run_cli(train_argv(workspace.out))
    check_fault(outcome, snapshot, code=2, message="No space left on device", command="train")
    assert json.loads((workspace.out / "checkpoints" / "latest.json").read_text())["step"] == 1
    from posecommon.train.checkpoint import load_checkpoint

    assert load_checkpoint(workspace.out / "checkpoints" / "step-000000001")["step"] == 1


@pytest.mark.slow
def test_a_run_directory_in_use_is_refused_naming_the_holder(workspace, tmp_path):
    import os
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from posecommon.train.run_lock import RunLock; "
         "lock = RunLock(sys.argv[1]); lock.acquire(); print('held', flush=True); time.sleep(300)", str(workspace.out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        snapshot = Snapshot(workspace.root)
        outcome = run_cli(train_argv(workspace.out))
        check_fault(outcome, snapshot, code=2, message=f"is in use by posezoo train (process pid {holder.pid}",
                    command="train", unchanged=True)  # fmt: skip
        assert os.uname().nodename in outcome.err
    finally:
        holder.kill()
        holder.wait(30)


@pytest.mark.slow
def test_rerunning_a_finished_run_keeps_its_evaluations_and_says_it_resumes(workspace, finished_run):
    shutil.rmtree(workspace.out)
    shutil.copytree(finished_run, workspace.out)
    before = json.loads((workspace.out / "summary.json").read_text())
    assert [e["step"] for e in before["evaluations"]] == [2]
    outcome = run_cli(train_argv(workspace.out))
    assert outcome.code == 0, outcome.err
    assert f"resuming from step 2 (checkpoint {workspace.out / 'checkpoints' / 'step-000000002'})" in outcome.out
    after = json.loads((workspace.out / "summary.json").read_text())
    assert after["evaluations"] == before["evaluations"] and after["after"] == before["after"]  # main: []
    evaluations = [line for line in (workspace.out / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert len(evaluations) == 1  # the finished run was not evaluated a second time


@pytest.mark.slow
def test_a_corrupt_training_image_without_workers_is_one_line(workspace):
    from .test_datasets import coco_split

    root = workspace.path("data")
    for split in ("train2017", "val2017"):
        dataset = coco_split(root, split)
        (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(dataset))
    (root / "train2017" / "002.jpg").write_bytes(b"\xff\xd8\xff corrupt")
    snapshot = Snapshot(workspace.root)
    argv = ["train", "vttranspose_h_s", "--data", root, "--out", workspace.out, "--steps", "4", "--batch-size", "1",
            "--input-size", "32", "24", "--workers", "0", "--backbone-weights", "none"]  # fmt: skip
    outcome = run_cli(argv)
    check_fault(outcome, snapshot, code=2, message="002.jpg", command="train")


def test_training_settings_are_checked_before_the_data_is_generated(workspace):
    outcome = run_cli(train_argv(workspace.out, "--input-size", "63", "47"))
    assert outcome.code == 2 and "multiples of 4" in outcome.err
    assert sorted(p.name for p in workspace.out.iterdir()) == ["keep.txt"]  # main: data/ generated, then a traceback


@pytest.mark.parametrize("kind", ["manifest", "state"])
def test_damaged_checkpoint_files_are_checkpoint_errors(tmp_path, kind):
    from posecommon.errors import CheckpointError
    from posecommon.train.checkpoint import save_checkpoint, verify_checkpoint

    from ..train_fixtures import tiny_model

    model = tiny_model()
    directory = save_checkpoint(tmp_path / "c", step=1, model=model, optimizer=torch.optim.SGD(model.parameters()))
    manifest = json.loads((directory / "manifest.json").read_text())
    if kind == "manifest":
        manifest["files"]["model.safetensors"]["bytes"] = "many"
    else:
        manifest["files"]["model.safetensors"] = None
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="malformed"):
        verify_checkpoint(directory)
