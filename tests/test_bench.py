"""The benchmark suite: report structure, and ratios and targets computed from the measured numbers."""

import json

import pytest

from posecommon.app.bench.suite import PAIRS, BenchSettings, format_markdown, run_suite, write_report
from posecommon.app.cli import main

MODELS = [name for pair in PAIRS for name in pair]


@pytest.fixture(scope="module")
def report():
    settings = BenchSettings.quick(
        modes=("eager", "fused"),
        batch=2,
        warmup=0,
        repeats=1,
        train_batch=1,
        attention_grids=((8, 6), (16, 12)),
        gradient_orders=(2,),
        gradient_depth=4,
    )
    return run_suite(settings)


@pytest.mark.slow
def test_report_structure(report, tmp_path):
    assert set(report["models"]) == set(MODELS)
    assert report["environment"]["threads"] >= 1
    for row in report["models"].values():
        assert row["params_m"] > 0 and row["macs_g"] > 0 and row["train_peak_mb"] > 0
        assert set(row["modes"]) == {"eager", "fused"}
        for entry in row["modes"].values():
            assert entry["b1"]["ms"] > 0 and entry["b2"]["images_per_s"] > 0 and entry["peak_mb_b1"] > 0
            assert entry["b1"]["gflops"] == pytest.approx(2 * row["macs_g"] / entry["b1"]["ms"] * 1e3)
    json_path, md_path = write_report(report, tmp_path)
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(report))
    text = md_path.read_text()
    assert text == format_markdown(report)
    for name in MODELS:
        assert f"| {name} | " in text
    assert "vttranspose_h_s / transpose_h_s" in text and "drsi_net_s / yolo_pose_s6" in text
    assert "Twin vs full attention" in text and "| resgnconv | 2 |" in text


@pytest.mark.slow
def test_ratios_and_targets_come_from_measurements(report):
    models = report["models"]
    pairs = {(p["model"], p["mode"]): p for p in report["pairs"]}
    for base, name in PAIRS:
        for mode in ("eager", "fused"):
            p = pairs[(name, mode)]
            b, m = models[base]["modes"][mode], models[name]["modes"][mode]
            assert p["latency_b1"] == pytest.approx(m["b1"]["ms"] / b["b1"]["ms"])
            assert p["throughput_b2"] == pytest.approx(m["b2"]["images_per_s"] / b["b2"]["images_per_s"])
            assert p["peak_mb_b1"] == pytest.approx(m["peak_mb_b1"] / b["peak_mb_b1"])
            assert p["params"] == pytest.approx(models[name]["params_m"] / models[base]["params_m"])
    targets = {t["target"]: t for t in report["targets"]}
    vtt = targets["vttranspose_h_s fused / transpose_h_s eager latency"]
    expected = (
        models["vttranspose_h_s"]["modes"]["fused"]["b1"]["ms"] / models["transpose_h_s"]["modes"]["eager"]["b1"]["ms"]
    )
    assert vtt["value"] == pytest.approx(expected) and vtt["met"] == (expected <= 0.5)
    drsi = targets["drsi_net_s fused / yolo_pose_s6 fused latency"]
    assert drsi["limit"] == 1.15 and drsi["met"] == (drsi["value"] <= 1.15)


@pytest.mark.slow
def test_claims_show_the_expected_growth(report):
    att = report["attention"]
    assert [r["tokens"] for r in att["rows"]] == [48, 192]
    assert att["exponents"]["twin_elements"] == pytest.approx(1.5)
    assert att["exponents"]["full_elements"] == pytest.approx(2.0)
    for row in att["rows"]:
        assert row["memory_ratio"] == pytest.approx(row["twin_peak_mb"] / row["full_peak_mb"])
    kinds = {(g["kind"], g["order"]) for g in report["gradient"]}
    assert kinds == {("gnconv", 2), ("resgnconv", 2)}
    assert all(g["finite"] and len(g["input_grad_ratio_per_block"]) == 4 for g in report["gradient"])


@pytest.mark.slow
def test_bench_command_with_onnxruntime(tmp_path, capsys):
    args = ["bench", "--quick", "--models", "vttranspose_h_s", "--modes", "eager", "onnxruntime", "--no-claims"]
    options = ["--repeats", "1", "--batch-repeats", "2", "--batch", "2", "--train-batch", "0"]
    status = main([*args, *options, "--out-dir", str(tmp_path)])
    assert status == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["environment"]["batch_repeats"] == 2
    for mode in ("eager", "onnxruntime"):
        entry = data["models"]["vttranspose_h_s"]["modes"][mode]
        assert entry["b1"]["rounds"] == 1 and entry["b2"]["rounds"] == 2
    ort = data["models"]["vttranspose_h_s"]["modes"]["onnxruntime"]
    assert ort["b1"]["ms"] > 0 and ort["peak_mb_b1"] is None
    out = capsys.readouterr().out
    assert "onnxruntime / eager latency" in out and "median of 1 (b2: of 2)" in out
