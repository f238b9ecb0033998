import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from posecommon.errors import CheckpointError, InvalidInputError, RunMismatchError
from posecommon.train import (
    CheckpointStore,
    ModelEMA,
    StepBatchSampler,
    TrainConfig,
    Trainer,
    TrainSchedule,
    cosine_lr,
    default_num_workers,
    load_checkpoint,
    save_checkpoint,
)
from posecommon.train.metrics_log import MetricsLog
from tests.train_fixtures import CrashError, CrashingTask, NoisyRegression, RegressionTask, logged_losses, tiny_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    """The tensors here are tiny: extra intra-op threads only add synchronisation (and stall on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(total_steps: int, **overrides) -> TrainConfig:
    base = dict(
        total_steps=total_steps,
        batch_size=4,
        optimizer="sgd",
        lr=0.05,
        lr_final=0.005,
        momentum=0.9,
        weight_decay=1e-4,
        warmup_steps=2,
        grad_clip=1.0,
        ema_decay=0.99,
        checkpoint_every=3,
    )
    return TrainConfig(**{**base, **overrides})


def _trainer(run_dir: Path, config: TrainConfig, task=None, model=None, **kwargs) -> Trainer:
    model = model if model is not None else tiny_model(dropout=0.2, batch_norm=True)
    return Trainer(model, NoisyRegression(), task or RegressionTask(), config, run_dir, device="cpu", **kwargs)


def _assert_same_state(a: Trainer, b: Trainer) -> None:
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    for x, y in zip(a.ema.module.state_dict().values(), b.ema.module.state_dict().values(), strict=True):
        assert torch.equal(x, y)


def test_cosine_schedule_end_points():
    assert cosine_lr(0, 100, 1.0, 0.1, warmup_steps=4) == pytest.approx(0.25)
    assert cosine_lr(4, 100, 1.0, 0.1, warmup_steps=4) == pytest.approx(1.0)
    assert cosine_lr(52, 100, 1.0, 0.1, warmup_steps=4) == pytest.approx(0.55)
    assert cosine_lr(100, 100, 1.0, 0.1) == pytest.approx(0.1)


def test_sampler_covers_each_epoch_once_and_splits_ranks():
    full = list(StepBatchSampler(12, 4, total_steps=3, seed=5))
    indices = [i for batch in full for _, i in batch]
    assert sorted(indices) == list(range(12))
    rank0 = list(StepBatchSampler(12, 4, total_steps=3, seed=5, rank=0, world_size=2))
    rank1 = list(StepBatchSampler(12, 4, total_steps=3, seed=5, rank=1, world_size=2))
    for whole, a, b in zip(full, rank0, rank1, strict=True):
        assert sorted(a + b) == sorted(whole)
    resumed = list(StepBatchSampler(12, 4, total_steps=3, start_step=1, seed=5))
    assert resumed == full[1:]
    with pytest.raises(ValueError, match="fewer than one batch"):
        StepBatchSampler(3, 4, total_steps=1)


def test_training_reduces_the_loss_and_writes_the_run(tmp_path, monkeypatch):
    from posecommon.measure import Progress

    postfixes = []

    class RecordingProgress(Progress):
        def set_postfix(self, **values):
            postfixes.append(values)
            super().set_postfix(**values)

    monkeypatch.setattr("posecommon.train.trainer.Progress", RecordingProgress)
    trainer = Trainer(tiny_model(), NoisyRegression(), RegressionTask(), _config(30), tmp_path, device="cpu")
    result = trainer.fit()
    assert result.step == 30
    assert sum(result.losses[-5:]) < 0.5 * sum(result.losses[:5])
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 31))
    assert {"loss", "mse", "lr", "images_per_s", "data_wait_s", "step_s"} <= set(lines[0])
    assert all(0 <= r["data_wait_s"] <= r["step_s"] for r in lines)
    assert len(postfixes) == 30 and all(p["data"].endswith("%") for p in postfixes)  # share of time waiting for data
    pointer = json.loads((tmp_path / "checkpoints" / "latest.json").read_text())
    assert pointer == {"checkpoint": "step-000000030", "step": 30}
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert kept == ["step-000000024", "step-000000027", "step-000000030"]  # keep_checkpoints=3
    assert load_checkpoint(tmp_path / "checkpoints" / "step-000000030")["step"] == 30


ACCUMULATING = dict(schedule="epoch_cosine", nominal_batch_size=12, warmup_steps=4, checkpoint_every=4)


@pytest.mark.parametrize(
    ("overrides", "crash_step"), [({}, 14), (ACCUMULATING, 10)], ids=["cosine", "epoch_cosine_accumulating"]
)
def test_resume_is_exact_on_the_loss_sequence_after_a_stop_and_a_crash(tmp_path, overrides, crash_step):
    config = _config(20, **overrides)
    straight = _trainer(tmp_path / "straight", config)
    straight.fit()
    expected = logged_losses(tmp_path / "straight")
    assert sorted(expected) == list(range(1, 21))

    run = tmp_path / "resumed"
    _trainer(run, config).fit(stop_step=7)  # a clean stop (checkpoint at 7)
    with pytest.raises(CrashError):  # dies in step crash_step, after the checkpoint of last_checkpoint
        _trainer(run, config, task=CrashingTask(crash_at=crash_step - 7)).fit()
    assert max(logged_losses(run)) == crash_step - 1  # the log ran ahead of the last checkpoint
    last_checkpoint = (crash_step - 1) // config.checkpoint_every * config.checkpoint_every
    if overrides:  # the checkpoint lies inside an accumulation whose gradients are used: they are saved
        plans = [straight.schedule.plan(s) for s in range(20)]
        assert not plans[last_checkpoint - 1].optimizer_step and not plans[last_checkpoint].clear_gradients
        assert any(p.optimizer_step for p in plans[last_checkpoint : last_checkpoint + 3])
        files = json.loads((run / "checkpoints" / f"step-{last_checkpoint:09d}" / "manifest.json").read_text())
        assert "grads.safetensors" in files["files"]

    resumed = _trainer(run, config)
    assert resumed.resume()
    assert resumed.step == last_checkpoint
    result = resumed.fit()
    assert result.losses == [expected[s] for s in range(last_checkpoint + 1, 21)]
    assert logged_losses(run) == expected  # trimmed on resume: every step once, equal to the straight run
    _assert_same_state(straight, resumed)
    assert resumed.ema.updates == straight.ema.updates


def test_checkpoint_files_are_verified(tmp_path):
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 6)).sum().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "ckpt", step=1, model=model, optimizer=optimizer)
    state = load_checkpoint(path)
    assert state["step"] == 1
    assert torch.equal(
        state["optimizer"]["state"][0]["momentum_buffer"], optimizer.state_dict()["state"][0]["momentum_buffer"]
    )
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(path)
    (path / "state.json").write_text('{"step": 1, "optim')  # truncated
    (path / "model.safetensors").write_bytes(bytes(data[:-1]))
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)
    assert not (tmp_path / "ckpt.tmp").exists()


def test_resume_falls_back_past_a_damaged_checkpoint_with_a_warning(tmp_path, caplog):
    config = _config(12)
    straight = _trainer(tmp_path / "straight", config)
    straight.fit()
    run = tmp_path / "run"
    _trainer(run, config).fit(stop_step=9)
    state = run / "checkpoints" / "step-000000009" / "state.json"
    state.write_text(state.read_text()[:20])  # truncated, same manifest
    with caplog.at_level(logging.WARNING, logger="posecommon.train.checkpoint"):
        resumed = _trainer(run, config)
        resumed.fit()
    assert "1 newer one(s) unusable" in caplog.text and "step-000000009/state.json is damaged" in caplog.text
    assert logged_losses(run) == logged_losses(tmp_path / "straight")
    _assert_same_state(straight, resumed)


def test_a_run_directory_whose_checkpoints_are_all_damaged_never_restarts_silently(tmp_path):
    run = tmp_path / "run"
    _trainer(run, _config(6)).fit(stop_step=6)
    for manifest in (run / "checkpoints").glob("step-*/manifest.json"):
        manifest.write_text("")
    with pytest.raises(CheckpointError, match="no loadable checkpoint"):
        _trainer(run, _config(6)).fit()
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 6  # log untouched


class _PowerCutError(Exception):
    pass


def test_every_crash_point_of_a_save_leaves_a_loadable_latest_checkpoint(tmp_path, monkeypatch):
    """Crash at each file-system call of ``CheckpointStore.save`` in turn: the store still loads step 2 or 3."""
    import posecommon.train.checkpoint as checkpoint_module
    import posecommon.train.durable as durable_module

    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    calls = {"n": 0, "crash_at": -1}

    def counted(function):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == calls["crash_at"]:
                raise _PowerCutError
            return function(*args, **kwargs)

        return wrapper

    for module in (checkpoint_module, durable_module):
        for name in ("write_synced", "fsync_directory", "atomic_write_bytes", "remove_tree"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, counted(getattr(module, name)))
    monkeypatch.setattr(checkpoint_module.os, "replace", counted(checkpoint_module.os.replace))
    crash_points = 0
    for crash_at in range(1, 100):
        root = tmp_path / f"crash{crash_at}"
        store = CheckpointStore(root, keep=2)
        calls["crash_at"] = -1
        for step in (1, 2):
            store.save(step, model=model, optimizer=optimizer)
        calls.update(n=0, crash_at=crash_at)
        try:
            store.save(3, model=model, optimizer=optimizer)
        except _PowerCutError:
            crash_points += 1
        else:
            break
        finally:
            calls["crash_at"] = -1
        state, _ = CheckpointStore(root, keep=2).load_latest()
        assert state["step"] in (2, 3), crash_at
    assert crash_points >= 10  # every write, sync, rename and delete of a save was a crash point


def test_metrics_trim_is_atomic_and_drops_torn_lines(tmp_path, monkeypatch):
    import posecommon.train.durable as durable_module

    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "loss": s / 10}) for s in range(1, 6)] + [json.dumps({"step": 3, "eval": {}})]
    original = "\n".join(lines) + '\n{"step": 6, "lo'  # the last line was cut by a kill
    path.write_text(original)

    def crash(*args):
        raise _PowerCutError

    monkeypatch.setattr(durable_module.os, "replace", crash)
    with pytest.raises(_PowerCutError):
        MetricsLog(path).trim(3)
    assert path.read_text() == original  # a kill during the trim loses nothing
    monkeypatch.undo()
    assert MetricsLog(path).trim(3) == 3
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3, 3]


def test_resume_refuses_changed_settings_unless_asked(tmp_path):
    run = tmp_path / "run"
    _trainer(run, _config(8), run_info={"data": "a"}).fit(stop_step=3)
    with pytest.raises(RunMismatchError) as caught:
        _trainer(run, _config(8, batch_size=8, lr=0.1), run_info={"data": "b"}).fit()
    assert caught.value.differences == ['data: "a" -> "b"', "train.batch_size: 4 -> 8", "train.lr: 0.05 -> 0.1"]
    assert "--resume-anyway" in str(caught.value)
    assert json.loads((run / "train_config.json").read_text())["batch_size"] == 4  # not overwritten
    _trainer(run, _config(8, checkpoint_every=1, num_workers=0), run_info={"data": "a"}).fit(stop_step=4)  # fine

    changed = _trainer(run, _config(8, lr=0.1), run_info={"data": "a"})
    changed.fit(resume_anyway=True)
    assert changed.step == 8 and min(logged_losses(run)) == 1
    assert json.loads((run / "train_config.json").read_text())["lr"] == 0.1
    assert json.loads((run / "train_config.before-step-4.json").read_text())["train"]["lr"] == 0.05


def test_another_model_in_the_same_run_directory_is_a_typed_error(tmp_path):
    run = tmp_path / "run"
    _trainer(run, _config(4)).fit(stop_step=2)
    wider = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    with pytest.raises(RunMismatchError, match="another shape"):
        _trainer(run, _config(4), model=wider).fit(resume_anyway=True)
    other = tiny_model(dropout=0.2, batch_norm=True)
    other.model_name = "other_net"
    with pytest.raises(RunMismatchError, match="another model"):
        _trainer(run, _config(4), model=other).fit(resume_anyway=True)


def test_fresh_start_over_checkpoints_is_refused(tmp_path):
    _trainer(tmp_path / "run", _config(4)).fit(stop_step=3)
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        _trainer(tmp_path / "run", _config(4)).fit(resume=False)


def _official_warmup(ni: int, nw: int, nbs: int, batch: int, lr0: float, lrf: float, epochs: int, nb: int):
    """YOLO-Pose train.py:285-293 and :139, written from the formulas (np.interp, one_cycle)."""
    import math

    epoch = ni // nb
    lf = ((1 - math.cos(epoch * math.pi / epochs)) / 2) * (lrf - 1) + 1
    xi = [0, nw]
    accumulate = max(1, np.interp(ni, xi, [1, nbs / batch]).round())
    lrs = [np.interp(ni, xi, [0.1 if j == 2 else 0.0, lr0 * lf]) for j in range(3)]
    momentum = np.interp(ni, xi, [0.8, 0.937])
    return lrs, momentum, int(accumulate)


def test_epoch_cosine_warmup_and_accumulation_follow_yolo_pose():
    nb, batch, epochs = 50, 16, 300
    nw = max(round(3.0 * nb), 1000)  # train.py:238
    schedule = TrainSchedule(
        "epoch_cosine", epochs * nb, nb, 3e-3, 3e-3 * 0.2, 0.937, nw, batch, 64, warmup_bias_lr=0.1, warmup_momentum=0.8
    )
    accumulate, steps = 1, []
    for ni in range(nw + 120):
        plan = schedule.plan(ni)
        if ni <= nw:
            lrs, momentum, accumulate = _official_warmup(ni, nw, 64, batch, 3e-3, 0.2, epochs, nb)
            assert plan.lrs == pytest.approx(lrs, rel=1e-12, abs=1e-15), ni
            assert plan.momentum == pytest.approx(momentum, rel=1e-12), ni
        else:
            lf = ((1 - np.cos((ni // nb) * np.pi / epochs)) / 2) * (0.2 - 1) + 1
            assert plan.lrs == pytest.approx([3e-3 * lf] * 3, rel=1e-12), ni
            assert plan.momentum == 0.937
        assert plan.accumulate == accumulate, ni  # after warm-up the last value stays (= round(64 / 16))
        if plan.optimizer_step:
            steps.append(ni)
        assert plan.clear_gradients == (ni % nb == 0)
    assert steps == [ni for ni in range(nw + 120) if ni % schedule.plan(ni).accumulate == 0]
    assert accumulate == 4 and schedule.weight_decay_scale() == 1.0
    assert schedule.plan(0).accumulate == 1 and schedule.plan(nw // 2).accumulate == round(1 + 3 * 0.5)
    # with batch 36 (DRSI-Net-s): accumulate 2 after warm-up, weight decay x 36 * 2 / 64
    assert TrainSchedule("epoch_cosine", 10, 5, 1.0, 0.2, 0.9, 0, 36, 64).weight_decay_scale() == 36 * 2 / 64


def test_trainer_steps_the_optimiser_as_scheduled_with_yolov5_groups(tmp_path):
    config = _config(14, schedule="epoch_cosine", nominal_batch_size=10, warmup_steps=9, weight_decay=5e-4)
    trainer = _trainer(tmp_path, config)
    groups = trainer.optimizer.param_groups
    bn = trainer.model[1]
    assert [len(g["params"]) for g in groups] == [1, 2, 3]
    assert groups[0]["params"][0] is bn.weight and any(p is bn.bias for p in groups[2]["params"])
    assert groups[1]["weight_decay"] == pytest.approx(5e-4 * 4 * 2 / 10) and groups[0]["weight_decay"] == 0.0
    seen = []
    original = trainer.optimizer.step

    def spy(*args, **kwargs):
        seen.append((trainer.step, [g["lr"] for g in groups], groups[0]["momentum"]))
        return original(*args, **kwargs)

    trainer.optimizer.step = spy
    trainer.fit()
    planned = [(s, trainer.schedule.plan(s)) for s in range(14) if trainer.schedule.plan(s).optimizer_step]
    assert [s for s, _ in planned] == [s for s, _, _ in seen]
    for (_, plan), (_, lrs, momentum) in zip(planned, seen, strict=True):
        assert lrs == list(plan.lrs) and momentum == plan.momentum
    assert trainer.ema.updates == len(planned)
    assert len(planned) < 14  # accumulation happened


def test_worker_processes_do_not_change_the_batches(tmp_path):
    config = _config(6, ema_decay=None)
    inline = _trainer(tmp_path / "inline", config).fit()
    workers = _trainer(tmp_path / "workers", TrainConfig(**{**config.__dict__, "num_workers": 2})).fit()
    assert workers.losses == inline.losses


class _WorkerSettings(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[bool, int]:
        import signal

        import cv2

        return signal.getsignal(signal.SIGINT) is signal.SIG_IGN, cv2.getNumThreads()


def test_loader_workers_persist_prefetch_ignore_ctrl_c_and_run_opencv_sequentially():
    import cv2

    from posecommon.train.loader import build_loader

    loader = build_loader(
        _WorkerSettings(), list, batch_size=2, start_step=0, stop_step=2, seed=0, rank=0, world_size=1,
        num_workers=1, prefetch_factor=3, pin_memory=False,
    )  # fmt: skip
    assert loader.persistent_workers and loader.prefetch_factor == 3
    previous = cv2.getNumThreads()
    cv2.setNumThreads(4)  # what the workers would inherit
    try:
        settings = [settings for batch in loader for settings in batch]
    finally:
        cv2.setNumThreads(previous)
        del loader  # shuts the persistent worker down, also when an assertion below fails
    # SIGINT reaches only the training process; OpenCV's pool is off in the workers (it then reports 1 thread)
    assert settings == [(True, 1)] * 4


def test_default_workers_follow_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    assert default_num_workers(1) == 8
    assert default_num_workers(4) == 3
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    assert default_num_workers(1) == 1
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    assert default_num_workers(1) == 0


class _DtypeRecordingTask(RegressionTask):
    def __init__(self) -> None:
        self.dtypes: list[torch.dtype] = []

    def loss(self, model, batch):
        x, y = batch
        prediction = model(x)
        self.dtypes.append(prediction.dtype)
        mse = torch.nn.functional.mse_loss(prediction.float(), y)
        return mse, {"mse": mse}


def test_bf16_autocast_on_cpu_trains_and_fp16_needs_cuda(tmp_path):
    task = _DtypeRecordingTask()
    model = tiny_model()
    result = Trainer(model, NoisyRegression(), task, _config(30, amp="bf16"), tmp_path / "bf16", device="cpu").fit()
    assert set(task.dtypes) == {torch.bfloat16}
    assert next(model.parameters()).dtype == torch.float32  # the weights stay float32
    assert sum(result.losses[-5:]) < 0.5 * sum(result.losses[:5])
    with pytest.raises(InvalidInputError, match="needs a CUDA device"):
        Trainer(tiny_model(), NoisyRegression(), task, _config(2, amp="fp16"), tmp_path / "fp16", device="cpu")


def test_ema_follows_the_model():
    model = tiny_model()
    ema = ModelEMA(model, decay=0.5, ramp=1e-9)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    for p_ema, p in zip(ema.module.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(p_ema, p - 0.5)


@pytest.mark.slow
def test_ddp_two_processes_match_single_process(tmp_path):
    steps = 5
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path), str(steps),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rank0 = load_file(str(tmp_path / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "rank1.safetensors"))
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key

    config = TrainConfig(total_steps=steps, batch_size=8, optimizer="sgd", lr=0.05, lr_final=0.01, momentum=0.9)
    single = Trainer(tiny_model(), NoisyRegression(), RegressionTask(), config, tmp_path / "single", device="cpu")
    single.fit(resume=False)
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(rank0[key], value, atol=1e-6, rtol=1e-5)


class _CheckpointedMLP(torch.nn.Module):
    """The tiny model with one gradient-checkpointing segment, as a PoseModel family provides them."""

    def __init__(self) -> None:
        super().__init__()
        self.body = tiny_model(dropout=0.2, batch_norm=True)
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from posecommon.layers import checkpoint_module, recomputation_applies

        if self.grad_checkpointing and recomputation_applies(self):
            return checkpoint_module(self.body, x)
        return self.body(x)


def test_gradient_checkpointing_trains_exactly_as_without(tmp_path):
    runs = []
    for flag in (False, True):
        model = _CheckpointedMLP()
        trainer = Trainer(
            model, NoisyRegression(), RegressionTask(), _config(8, grad_checkpointing=flag), tmp_path / str(flag)
        )
        runs.append((trainer.fit(), trainer))
        assert model.grad_checkpointing is flag
    (plain, a), (checkpointed, b) = runs
    assert checkpointed.losses == plain.losses  # same dropout masks, BatchNorm statistics updated once
    _assert_same_state(a, b)


def test_grad_checkpointing_needs_a_model_that_supports_it_and_channels_last_converts_weights(tmp_path):
    with pytest.raises(InvalidInputError, match="cannot checkpoint gradients"):
        _trainer(tmp_path / "a", _config(2, grad_checkpointing=True))
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    trainer = Trainer(conv, NoisyRegression(), RegressionTask(), _config(2, channels_last=True), tmp_path / "b")
    assert trainer.model[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_checkpointing_layout_and_compile_may_change_on_resume(tmp_path):
    _trainer(tmp_path, _config(3)).fit(stop_step=2)
    changed = _config(3, channels_last=True, grad_checkpointing=False, compile=False)
    assert _trainer(tmp_path, changed).resume()  # no RunMismatchError: operational settings


class _SavableSequential(torch.nn.Sequential):
    """The tiny model with a ``save_pretrained`` (what the trainer exports as ``final/``)."""

    def save_pretrained(self, directory: Path) -> None:
        from safetensors.torch import save_file

        Path(directory).mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(Path(directory) / "model.safetensors"))


class _ScriptedAP:
    """An evaluation callback that returns a scripted AP per step and records the weights it evaluated."""

    def __init__(self, values: dict[int, float]) -> None:
        self.values = values
        self.trainer: Trainer | None = None
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        step = self.trainer.step
        self.weights[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return {"AP": self.values[step]}


def _best_trainer(run_dir: Path, config: TrainConfig, values: dict[int, float]) -> tuple[Trainer, _ScriptedAP]:
    evaluate = _ScriptedAP(values)
    model = _SavableSequential(*tiny_model(dropout=0.2, batch_norm=True))
    trainer = _trainer(run_dir, config, model=model, evaluate=evaluate)
    evaluate.trainer = trainer
    return trainer, evaluate


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "final" / "model.safetensors"))


def _assert_weights_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_keep_best_exports_the_best_ap_and_keeps_it_across_an_exact_resume(tmp_path):
    # TransPose keeps model_best.pth when AP >= the best so far (tools/train.py:215-231): the best here is step 6
    # (AP 0.9); the later, worse evaluations must not replace it, neither in a straight run nor after a resume
    # whose first evaluation (step 9) would become the best if the resumed run forgot step 6's record.
    values = {3: 0.5, 6: 0.9, 9: 0.4, 12: 0.3}
    config = _config(12, eval_every=3, keep_best=True)
    straight, seen = _best_trainer(tmp_path / "straight", config, values)
    result = straight.fit()
    assert result.best == {"step": 6, "metric": "AP", "value": 0.9}
    _assert_weights_equal(_final_weights(tmp_path / "straight"), seen.weights[6])  # the EMA weights evaluated
    names = sorted(p.name for p in (tmp_path / "straight" / "checkpoints").iterdir())
    assert names == ["best-000000006", "best.json", "latest.json", "step-000000006", "step-000000009",
                     "step-000000012"]  # fmt: skip
    assert load_checkpoint(tmp_path / "straight" / "checkpoints" / "step-000000012")["step"] == 12

    run = tmp_path / "resumed"
    first, _ = _best_trainer(run, config, values)
    first.fit(stop_step=7)
    resumed, _ = _best_trainer(run, config, values)
    assert resumed.fit().best == {"step": 6, "metric": "AP", "value": 0.9}
    _assert_same_state(straight, resumed)  # the latest checkpoint still carries the exact run
    _assert_weights_equal(_final_weights(run), _final_weights(tmp_path / "straight"))

    plain, plain_seen = _best_trainer(tmp_path / "plain", _config(12, eval_every=3), values)
    assert plain.fit().best is None  # without keep_best: final/ = the last step's weights
    _assert_weights_equal(_final_weights(tmp_path / "plain"), plain_seen.weights[12])
    assert not torch.equal(plain_seen.weights[12]["0.weight"], seen.weights[6]["0.weight"])


def test_keep_best_prefers_the_later_of_equal_aps_and_a_fresh_start_forgets_an_old_best(tmp_path):
    trainer, seen = _best_trainer(tmp_path / "run", _config(6, eval_every=3, keep_best=True), {3: 0.5, 6: 0.5})
    assert trainer.fit().best["step"] == 6  # TransPose's `perf_indicator >= best_perf`
    _assert_weights_equal(_final_weights(tmp_path / "run"), seen.weights[6])
    store = CheckpointStore(tmp_path / "run" / "checkpoints")
    state, record = store.load_best()
    assert record["step"] == 6 and state.keys() == seen.weights[6].keys()
    (tmp_path / "run" / "checkpoints" / "best-000000006" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="best-000000006"):
        store.load_best()
    store.clear_best()
    assert store.best_record() is None and not list((tmp_path / "run" / "checkpoints").glob("best*"))
