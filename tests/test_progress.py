"""Progress output (issue 26, item 3): units that name what is counted, a training rate without the evaluations,
plain lines without cursor escapes when the output is not a terminal, and progress for synthetic data generation,
evaluation and ``posezoo predict`` (on the photos in tests/data)."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
import torch

from posecommon.app.predict_run import PredictOptions, build_kernel, run_predictions
from posecommon.data import generate_synthetic_coco
from posecommon.measure import Progress, format_rate, is_terminal, track
from posecommon.train import TrainConfig, Trainer
from tests.train_fixtures import NoisyRegression, RegressionTask, tiny_model

DATA = Path(__file__).parent / "data"
PHOTOS = sorted(p for p in DATA.iterdir() if p.suffix in (".jpg", ".png"))
ESCAPES = re.compile(r"[\r\x1b]")


class FakeClock:
    """Stands for ``time`` in :mod:`posecommon.measure.progress`: ``perf_counter`` returns ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _seconds_per_unit(line: str, unit: str) -> float:
    """The rate of a progress line as seconds per ``unit`` (``"2.5 s/step"`` or ``"40 steps/s"``)."""
    match = re.search(rf"([\d.e+-]+) s/{unit}\b", line)
    if match:
        return float(match.group(1))
    return 1.0 / float(re.search(rf"([\d.e+-]+) {unit}s/s\b", line).group(1))


def test_rates_name_the_unit():
    assert format_rate(10.0, 4, "step") == "2.5 s/step"
    assert format_rate(1.0, 40, "image") == "40 images/s"
    assert format_rate(0.0, 0, "image") == ""


def test_lines_without_cursor_escapes_when_the_output_is_not_a_terminal(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr("posecommon.measure.progress.time", clock)
    log = io.StringIO()
    assert not is_terminal(log)
    progress = Progress(20, "evaluate", "image", file=log, delay=5.0)
    for _ in range(20):
        clock.now += 1.0
        progress.update()
    progress.close()
    lines = log.getvalue().splitlines()
    assert not ESCAPES.search(log.getvalue())
    # nothing in the first 5 s, then one line per tenth done, then the final line
    assert lines[0] == "evaluate: 5/20 images (25 %), 1 s/image, 5 s so far"
    assert [int(line.split()[1].split("/")[0]) for line in lines] == [5, 6, 8, 10, 12, 14, 16, 18, 20]
    assert len(lines) == 9 and lines[-1] == "evaluate: 20/20 images (100 %), 1 s/image, 20 s in all"


def test_a_short_job_writes_its_final_line_only():
    log = io.StringIO()
    for _ in track(range(3), "generate", "image", file=log):
        pass
    assert log.getvalue().count("\n") == 1 and log.getvalue().startswith("generate: 3/3 images (100 %)")


def test_a_terminal_gets_a_bar_with_the_unit():
    screen = Terminal()
    with Progress(4, "train", "step", file=screen) as progress:
        progress.update(4)
    assert "4/4" in screen.getvalue() and "step" in screen.getvalue()


def test_paused_time_is_left_out_of_the_rate(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr("posecommon.measure.progress.time", clock)
    log = io.StringIO()
    progress = Progress(4, "train", "step", file=log)
    for _ in range(4):
        clock.now += 2.5  # a step
        progress.update()
        with progress.paused():
            clock.now += 20.0  # an evaluation
    progress.close()
    assert progress.rate() == "2.5 s/step"
    assert log.getvalue().endswith("train: 4/4 steps (100 %), 2.5 s/step, 10 s in all\n")


def test_the_training_rate_leaves_out_the_evaluations(tmp_path, capsys):
    def slow_evaluation(model: torch.nn.Module) -> dict[str, float]:
        time.sleep(0.5)
        return {"AP": 0.0}

    config = TrainConfig(
        total_steps=4, batch_size=4, optimizer="sgd", lr=0.01, lr_final=0.001, warmup_steps=0, eval_every=1
    )
    trainer = Trainer(tiny_model(), NoisyRegression(), RegressionTask(), config, tmp_path, slow_evaluation, "cpu")
    result = trainer.fit()
    assert len(result.evaluations) == 4  # 2 s of evaluations, 0.5 s per step if they were counted
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("train: ")]
    assert line.startswith("train: 4/4 steps (100 %)") and not ESCAPES.search(line)
    assert _seconds_per_unit(line, "step") < 0.25


def test_synthetic_generation_reports_images(tmp_path, capsys):
    generate_synthetic_coco(tmp_path, 3, image_size=(64, 64), split="val", progress=True)
    captured = capsys.readouterr()  # not a terminal: lines on stdout, stderr left to warnings and errors
    assert re.search(r"^generate synthetic val data: 3/3 images \(100 %\)", captured.out, re.M)
    assert captured.err == ""
    generate_synthetic_coco(tmp_path / "quiet", 2, image_size=(64, 64), split="val")
    assert capsys.readouterr().out == ""


def test_evaluation_reports_images(tmp_path, capsys):
    from posecommon.evaluation import evaluate_model
    from vttranspose import vttranspose_h_s

    split = generate_synthetic_coco(tmp_path, 2, image_size=(64, 64), split="val")
    torch.manual_seed(0)
    evaluate_model(vttranspose_h_s(input_size=(64, 48)), split.ann_file, split.image_dir)
    out = capsys.readouterr().out
    assert re.search(r"^evaluate: 2/2 images \(100 %\)", out, re.M) and not ESCAPES.search(out)


@pytest.mark.parametrize("report", [False, True], ids=["progress", "lines"])
def test_predict_counts_photos_as_images(tmp_path, capsys, report):
    from drsinet import drsi_net_s

    torch.manual_seed(0)
    model = drsi_net_s(input_size=(128, 128), width_multiple=0.25, depth_multiple=0.2)
    options = PredictOptions()
    lines: list[str] = []
    summary = run_predictions(
        build_kernel(model, None, options), [str(DATA)], tmp_path, options, report=lines.append if report else None
    )
    out = capsys.readouterr().out
    assert summary.images == len(PHOTOS)
    if report:  # the per-image lines replace the progress display
        assert [line.split(":")[0] for line in lines] == [f"image {i}/3 {p.name}" for i, p in enumerate(PHOTOS, 1)]
        assert "predict:" not in out
    else:
        assert re.search(r"^predict: 3/3 images \(100 %\)", out, re.M) and "frame" not in out
