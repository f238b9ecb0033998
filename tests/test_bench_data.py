"""The data-pipeline section of the benchmark suite (``posezoo bench --data``)."""

from __future__ import annotations

import json
import statistics

import pytest

from posecommon.app.bench.data import DATA_PIPELINES, DataBenchSettings, data_pipeline_benchmark
from posecommon.app.cli import main
from posecommon.data import generate_synthetic_coco


@pytest.fixture(scope="module")
def small_coco(tmp_path_factory):
    made = generate_synthetic_coco(tmp_path_factory.mktemp("coco"), 3, image_size=(120, 160), max_people=2, seed=2)
    return str(made.ann_file), str(made.image_dir)


def test_bench_data_command_reports_every_pipeline_and_no_model(small_coco, tmp_path, capsys):
    ann, images = small_coco
    args = ["bench", "--data", "--data-ann", ann, "--data-images", images, "--data-samples", "2", "--data-rounds", "3"]
    assert main([*args, "--quick", "--clock", "cpu", "--out-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["models"] == {} and "attention" not in report and "gradient" not in report
    data = report["data"]
    assert data["source"] == ann and data["threads"] == 1 and data["clock"] == "cpu"
    assert [row["pipeline"] for row in data["rows"]] == list(DATA_PIPELINES)
    for row in data["rows"]:
        assert len(row["round_samples_per_s"]) == 3
        assert row["samples_per_s"] == pytest.approx(statistics.median(row["round_samples_per_s"]))
        target = DATA_PIPELINES[row["pipeline"]][2]
        assert row["target"] == target
        assert row["met"] == (None if target is None else row["cpu_samples_per_s"] >= target)
    text = capsys.readouterr().out
    assert "| multiperson 960 mosaic |" in text and "met (cpu clock)" in text and "| model |" not in text


def test_data_bench_rejects_bad_settings(small_coco):
    with pytest.raises(ValueError, match="unknown data pipelines"):
        data_pipeline_benchmark(DataBenchSettings(pipelines=("nope",)))
    with pytest.raises(ValueError, match="both"):
        data_pipeline_benchmark(DataBenchSettings(ann_file=small_coco[0]))
