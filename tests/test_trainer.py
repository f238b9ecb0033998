import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from posecommon.errors import IncompatibleWeightsError
from posecommon.train import (
    ModelEMA,
    StepBatchSampler,
    TrainConfig,
    Trainer,
    cosine_lr,
    load_checkpoint,
    save_checkpoint,
)
from tests.train_fixtures import NoisyRegression, RegressionTask, tiny_model

ROOT = Path(__file__).resolve().parents[1]


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


def test_training_reduces_the_loss_and_writes_the_run(tmp_path):
    trainer = Trainer(tiny_model(), NoisyRegression(), RegressionTask(), _config(30), tmp_path, device="cpu")
    result = trainer.fit()
    assert result.step == 30
    assert sum(result.losses[-5:]) < 0.5 * sum(result.losses[:5])
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 31))
    assert {"loss", "mse", "lr", "images_per_s"} <= set(lines[0])
    assert (tmp_path / "checkpoints" / "last" / "state.json").is_file()


def test_resume_is_exact(tmp_path):
    def make(run_dir: Path, steps: int) -> Trainer:
        model = tiny_model(dropout=0.2, batch_norm=True)
        return Trainer(model, NoisyRegression(), RegressionTask(), _config(steps), run_dir, device="cpu")

    straight = make(tmp_path / "straight", 12)
    straight.fit()

    stopped = make(tmp_path / "resumed", 12)
    stopped.fit(stop_step=6)
    assert stopped.step == 6

    resumed = make(tmp_path / "resumed", 12)
    assert resumed.resume()
    assert resumed.step == 6
    resumed.fit()
    assert resumed.step == 12
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for a, b in zip(straight.ema.module.state_dict().values(), resumed.ema.module.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_detects_corruption(tmp_path):
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
    with pytest.raises(IncompatibleWeightsError, match="corrupted"):
        load_checkpoint(path)
    assert not (tmp_path / "ckpt.tmp").exists()


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
