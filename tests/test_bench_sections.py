"""The bf16 and batch-scaling sections of the benchmark suite: numbers come from the measurements."""

import json

import pytest

from posecommon.app.cli import main


@pytest.mark.slow
def test_bf16_and_batch_scaling_sections(tmp_path, capsys):
    args = ["bench", "--quick", "--models", "vttranspose_h_s", "--modes", "channels_last", "bf16", "--no-claims"]
    options = ["--batch", "0", "--train-batch", "0", "--repeats", "2", "--warmup", "1", "--scaling-batch", "3"]
    assert main([*args, *options, "--threads", "1", "--out-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    modes = report["models"]["vttranspose_h_s"]["modes"]
    (bf16,) = report["bf16"]
    assert bf16["fp32_ms"] == modes["channels_last"]["b1"]["ms"] and bf16["bf16_ms"] == modes["bf16"]["b1"]["ms"]
    assert bf16["ratio"] == pytest.approx(bf16["bf16_ms"] / bf16["fp32_ms"])
    (row,) = report["batch_scaling"]
    assert row["batch"] == 3 and row["input_size"] == [64, 48] and row["mode"] == "fused, channels-last"
    assert row["calls"] == "1 x 3"  # 64x48 crops fit the CPU pixel budget many times over: one call
    assert row["b1_ms"] > 0 and row["bN_ms_per_image"] > 0
    assert row["ratio"] == pytest.approx(row["bN_ms_per_image"] / row["b1_ms"])  # wall clock, the default
    assert len(row["round_ratios"]) == 2 and min(row["round_ratios"]) <= max(row["round_ratios"])
    text = capsys.readouterr().out
    assert "bf16 (CPU autocast) beside float32" in text and "one batch of 3 / of the same 3 images one by one" in text
    assert f"| {bf16['ratio']:.2f}x |" in text and f"| {row['ratio']:.2f}x |" in text


def test_batch_scaling_reports_how_the_module_splits_the_batch():
    from torch import nn

    from posecommon.app.bench.batch import _calls
    from posecommon.predict.inference import CPU_CHUNK_PIXELS, ChannelsLastInput

    assert _calls(ChannelsLastInput(nn.Identity()), 8, (512, 512)) == "8 x 1"  # one 512x512 image per call
    assert _calls(ChannelsLastInput(nn.Identity()), 8, (256, 192)) == "1 x 8"  # 8 x 49152 pixels fit the budget
    assert _calls(ChannelsLastInput(nn.Identity(), CPU_CHUNK_PIXELS // 2), 8, (256, 192)) == "2 x 4"
    assert _calls(ChannelsLastInput(nn.Identity(), None), 8, (512, 512)) == "1 x 8"
    assert _calls(nn.Identity(), 8, (512, 512)) == "1 x 8"  # not channels-last (CUDA): one call
