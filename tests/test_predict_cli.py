"""``posezoo predict`` on real photos, a generated video and bad inputs; output directory rules; flag plumbing."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from drsinet import drsi_net_s
from posecommon import COCO17, PoseResult
from posecommon.app import cli
from posecommon.media.video import read_video_frames
from posecommon.predict import PredictKernel
from vttranspose import vttranspose_h_s

from .test_sources import write_video

DATA = Path(__file__).parent / "data"
PHOTOS = sorted(p for p in DATA.iterdir() if p.suffix in (".jpg", ".png"))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    detector = drsi_net_s(input_size=(128, 128), width_multiple=0.25, depth_multiple=0.2)
    pose = vttranspose_h_s(input_size=(64, 48))
    return {"detector": str(detector.save_pretrained(root / "det")), "pose": str(pose.save_pretrained(root / "pose"))}


def _two_stage(saved: dict[str, str], *extra: str) -> list[str]:
    return ["--weights", saved["pose"], "--detector", "drsi_net_s", "--detector-weights", saved["detector"], *extra]


def test_photos_a_video_and_bad_inputs(tmp_path, saved, capsys, caplog):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    video = write_video(tmp_path / "clip.mp4", [(200, 30, 30), (30, 200, 30), (30, 30, 200)], size=(96, 80))
    out = tmp_path / "out"
    sources = [str(DATA), str(corrupt), str(tmp_path / "missing.png"), str(video)]
    args = ["predict", *sources, "--out", str(out), "--score-threshold", "0", "--max-people", "2", "--no-flip"]
    with caplog.at_level(logging.WARNING):
        code = cli.main([*args, *_two_stage(saved)])
    captured = capsys.readouterr()
    assert code == 1, captured.err  # some inputs failed, the others were written
    assert "2 input(s) failed" in captured.err
    assert f"{corrupt}: cannot read image" in captured.err and "missing.png: no such file" in captured.err
    assert sum("skipped" in r.message for r in caplog.records) == 2
    assert "wrote 3 annotated image(s), 1 video(s) (3 frames)" in captured.out
    for photo in PHOTOS:
        assert Image.open(out / f"{photo.stem}.png").size == Image.open(photo).size
        record = json.loads((out / f"{photo.stem}.json").read_text())
        assert record["image"]["path"] == str(photo) and record["keypoint_names"] == list(COCO17.names)
        assert len(record["people"]) == 2  # --max-people reaches the detector
    coco = json.loads((out / "predictions.json").read_text())
    assert sorted({r["image_id"] for r in coco}) == [p.name for p in PHOTOS] and len(coco) == 6
    frames = list(read_video_frames(out / "clip.mp4"))
    assert len(frames) == 3 and frames[0].shape == (3, 96, 80)
    lines = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    assert [line["image"]["frame_index"] for line in lines] == [0, 1, 2]
    assert all(len(line["people"]) == 2 for line in lines)


def test_score_threshold_is_honoured_in_two_stage_mode(tmp_path, saved, capsys):
    """The untrained detector scores nobody above 0.99: people found at 0 and none at 0.99 prove the flag arrives.

    (Not the default 0.25: with YOLO-Pose's head wiring, anchors 1 and 2 start without the objectness prior, their
    scores near sigmoid(0)^2, as the official model's do.)"""
    out = tmp_path / "out"
    args = ["predict", str(PHOTOS[0]), "--out", str(out), "--score-threshold", "0", "--max-people", "1"]
    assert cli.main([*args, *_two_stage(saved)]) == 0
    assert len(json.loads((out / "predictions.json").read_text())) == 1
    high = ["predict", str(PHOTOS[0]), "--out", str(tmp_path / "high"), "--score-threshold", "0.99"]
    assert cli.main([*high, *_two_stage(saved)]) == 0
    assert json.loads((tmp_path / "high" / "predictions.json").read_text()) == []


def test_output_directory_is_checked_before_the_model_loads(tmp_path, saved, capsys):
    photo = str(PHOTOS[0])
    used = tmp_path / "used"
    used.mkdir()
    (used / "old.txt").write_text("from an earlier run")
    missing_weights = ["--weights", str(tmp_path / "no-such-weights")]  # would fail if the model were loaded
    assert cli.main(["predict", photo, "--out", str(used), *missing_weights]) == 2
    assert "is not empty; pass --exist-ok" in capsys.readouterr().err
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert cli.main(["predict", photo, "--out", str(a_file), *missing_weights]) == 2
    assert "is a file" in capsys.readouterr().err
    assert cli.main(["predict", photo, "--out", str(a_file / "sub"), *missing_weights]) == 2
    assert "cannot write to output directory" in capsys.readouterr().err
    (used / f"{PHOTOS[0].stem}.png").write_text("stale")
    assert cli.main(["predict", photo, "--out", str(used), "--exist-ok", "--weights", saved["detector"]]) == 0
    assert Image.open(used / f"{PHOTOS[0].stem}.png").size == Image.open(photo).size  # overwritten
    assert (used / "old.txt").read_text() == "from an earlier run"  # other files kept


def test_annotation_file_gives_coco_image_ids(tmp_path, saved, capsys):
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [{"id": 17, "file_name": "val/astronaut.jpg"}], "annotations": []}))
    out = tmp_path / "out"
    args = ["predict", str(PHOTOS[0]), str(PHOTOS[2]), "--out", str(out), "--ann", str(ann), "--score-threshold", "0"]
    assert cli.main([*args, "--weights", saved["detector"], "--max-people", "1"]) == 1
    assert "grace_hopper.jpg is not listed in the annotation file" in capsys.readouterr().err
    assert [r["image_id"] for r in json.loads((out / "predictions.json").read_text())] == [17]


class _RecordingKernel(PredictKernel):
    """Empty results, and a record of the run options of each call."""

    def __init__(self, calls: list) -> None:
        super().__init__(COCO17, ())
        self.calls = calls

    def __call__(self, images, inputs, run):
        self.calls.append({"run": (run.device, run.half, run.batch_size), "inputs": [sorted(i) for i in inputs]})
        return [PoseResult.empty(17) for _ in images]


class _Recorder:
    """A stand-in model that records its prediction options and what its kernel is called with."""

    keypoint_spec = COCO17

    def __init__(self, name: str, resize: str) -> None:
        self.model_name = name
        self.preprocess = SimpleNamespace(resize=resize)
        self.options: list[dict] = []
        self.calls: list[dict] = []

    def predict_kernel(self, **options):
        self.options.append(options)
        return _RecordingKernel(self.calls)


@pytest.mark.parametrize("mode", ["single_stage", "top_down", "two_stage"])
def test_every_flag_reaches_the_models(tmp_path, monkeypatch, mode):
    models = {
        "single_stage": _Recorder("drsi_net_s", "letterbox"),
        "top_down": _Recorder("vttranspose_h_s", "affine_crop"),
        "detector": _Recorder("drsi_net_s", "letterbox"),
    }
    model = models["single_stage" if mode == "single_stage" else "top_down"]
    monkeypatch.setattr(cli, "load_model", lambda name, weights: models["detector"] if weights == "det" else model)
    args = ["predict", str(PHOTOS[0]), "--out", str(tmp_path / "out"), "--weights", "model", "--device", "cpu"]
    args += ["--half", "--batch-size", "3", "--input-size", "96", "72", "--no-flip", "--score-threshold", "0.1"]
    args += ["--iou-threshold", "0.6", "--max-people", "4"]
    if mode == "two_stage":
        args += ["--detector", "drsi_net_s", "--detector-weights", "det", "--detector-input-size", "64", "128"]
    assert cli.main(args) == 0
    run = {"run": ("cpu", True, 3), "inputs": [[]]}  # one image: a batch of one, no per-image inputs
    if mode == "single_stage":
        detection = {"score_threshold": 0.1, "iou_threshold": 0.6, "input_size": (96, 72), "max_people": 4}
        assert model.options == [detection] and model.calls == [run]
    elif mode == "top_down":
        assert model.options == [{"flip_test": False, "input_size": (96, 72)}] and model.calls == [run]
    else:
        detection = {"score_threshold": 0.1, "iou_threshold": 0.6, "max_people": 4, "input_size": (64, 128)}
        assert models["detector"].options == [detection] and models["detector"].calls == [run]
        assert model.options == [{"flip_test": False, "input_size": (96, 72)}]
        assert model.calls == [{"run": ("cpu", True, 3), "inputs": [["box_scores", "boxes"]]}]
