"""The training-step benchmark (``posezoo bench --train``) on tiny settings, without the official code."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from drsinet.targets import to_yolo_pose_targets
from posecommon.app.bench.train import TrainBenchSettings, format_train_markdown, run_train_bench
from posecommon.app.bench.train_worker import yolo_pose_layout
from posecommon.app.cli import main
from posecommon.errors import InvalidInputError


def test_cli_measures_each_arm_and_compares_variants(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["bench", "--train", "--models", "drsi_net_s", "--size", "drsinet=128x128", "--warmup", "0"]
    argv += ["--repeats", "2", "--threads", "1", "--train-variants", "eager", "grad_checkpointing"]
    assert main([*argv, "--out-dir", str(out)]) == 0
    report = json.loads((out / "bench_train.json").read_text())
    arms = report["arms"]
    assert list(arms) == ["drsi_net_s", "drsi_net_s [grad_checkpointing]"]
    for row in arms.values():
        assert row["input_size"] == [128, 128] and row["threads"] == 1 and row["rounds"] == 2
        assert row["params_m"] == pytest.approx(15.43, abs=0.01)
        assert row["tensor_peak_mb"] > 0 and all(v >= 0 for v in row["times"].values())
        assert row["times"]["total_s"] >= row["times"]["forward_loss_s"] > 0
        if Path("/proc/self/clear_refs").exists():
            assert row["rss_growth_mb"] > 0
    (ratio,) = report["ratios"]
    eager, checkpointed = arms["drsi_net_s"], arms["drsi_net_s [grad_checkpointing]"]
    assert ratio["reference"] == "drsi_net_s"
    assert ratio["tensor_peak"] == pytest.approx(checkpointed["tensor_peak_mb"] / eager["tensor_peak_mb"])
    assert ratio["step"] == pytest.approx(checkpointed["times"]["total_s"] / eager["times"]["total_s"])
    assert ratio["tensor_peak"] < 1.0  # checkpointing keeps less
    text = (out / "bench_train.md").read_text()
    assert text == format_train_markdown(report) and "| drsi_net_s [grad_checkpointing] / drsi_net_s |" in text
    assert text in capsys.readouterr().out


def test_settings_are_checked_before_anything_runs(tmp_path):
    with pytest.raises(InvalidInputError, match="unknown training variants"):
        TrainBenchSettings(variants=("fast",))
    with pytest.raises(InvalidInputError, match=r"--official-yolopose .* is not a directory"):
        TrainBenchSettings(official_yolopose=str(tmp_path / "missing"))


def test_a_failing_official_worker_is_reported_with_its_log(tmp_path):
    settings = TrainBenchSettings(
        models=["yolo_pose_s6"], sizes={"drsinet": (64, 64)}, official_yolopose=str(tmp_path), timeout_s=300
    )
    with pytest.raises(RuntimeError, match=r"official yolov5s6_kpts: .*(ModuleNotFoundError|No module named)"):
        run_train_bench(settings)


def test_official_target_layout_is_drsinets():
    torch.manual_seed(0)
    boxes = torch.rand(5, 2) * 300
    targets = torch.cat(
        (
            torch.tensor([[0.0], [0.0], [1.0], [1.0], [2.0]]),
            boxes,
            boxes + 20 + torch.rand(5, 2) * 200,
            torch.cat((torch.rand(5, 17, 2) * 500, torch.randint(0, 3, (5, 17, 1)).float()), dim=2).flatten(1),
        ),
        dim=1,
    )
    torch.testing.assert_close(yolo_pose_layout(targets, 512, 640), to_yolo_pose_targets(targets, (512, 640)))


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("POSEZOO_OFFICIAL_YOLOPOSE"), reason="POSEZOO_OFFICIAL_YOLOPOSE not set")
def test_official_yolopose_runs_side_by_side():
    settings = TrainBenchSettings(
        models=["yolo_pose_s6"],
        sizes={"drsinet": (128, 128)},
        warmup=0,
        repeats=1,
        official_yolopose=os.environ["POSEZOO_OFFICIAL_YOLOPOSE"],
        official_python=os.environ.get("POSEZOO_OFFICIAL_PYTHON"),
    )
    report = run_train_bench(settings)
    official, ours = report["arms"]["official yolov5s6_kpts"], report["arms"]["yolo_pose_s6"]
    assert official["params_m"] == pytest.approx(ours["params_m"], rel=1e-3)
    assert report["ratios"][0]["reference"] == "official yolov5s6_kpts"


ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_scripts_run_on_tiny_settings(tmp_path):
    script = str(ROOT / "benchmarks" / "train_memory_profile.py")
    profile = subprocess.run(
        [sys.executable, script, "drsi_net_s", "--size", "128", "--by", "block", "--data", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert "saved for backward" in profile.stdout and "| C3DR |" in profile.stdout
    argv = [sys.executable, str(ROOT / "benchmarks" / "train_step.py"), "--models", "yolo_pose_s6", "--size", "128"]
    argv += ["--warmup", "0", "--repeats", "1", "--threads", "1", "--out", str(tmp_path / "out")]
    subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True)
    assert "| yolo_pose_s6 | 128x128 |" in (tmp_path / "out" / "train_step.md").read_text()
