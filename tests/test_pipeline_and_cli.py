"""PosePipeline and the predict / evaluate / train commands, end to end on tiny models and synthetic data."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from drsinet import drsi_net_s
from posecommon import COCO17, PosePipeline, PoseResult
from posecommon.app.cli import main
from posecommon.data.synthetic import generate_synthetic_coco
from posecommon.predict import PredictKernel
from vttranspose import vttranspose_h_s


class _FixedDetector(PredictKernel):
    """Returns the same two boxes for every image (a stand-in for DRSI-Net, its own kernel)."""

    boxes = torch.tensor([[2.0, 3.0, 30.0, 60.0], [20.0, 10.0, 60.0, 70.0]])
    scores = torch.tensor([0.9, 0.5])

    def __init__(self) -> None:
        super().__init__(COCO17, ())
        self.calls = 0

    def predict_kernel(self, **options) -> PredictKernel:
        self.options = options
        return self

    def __call__(self, images, inputs, run) -> list[PoseResult]:
        self.calls += 1
        keypoints = torch.zeros(2, 17, 3)
        return [PoseResult(self.boxes, self.scores, keypoints) for _ in images]


@pytest.fixture(scope="module")
def tiny_pose_model():
    torch.manual_seed(0)
    return vttranspose_h_s(input_size=(64, 48)).eval()


@pytest.fixture(scope="module")
def tiny_detector():
    torch.manual_seed(0)
    return drsi_net_s(input_size=(128, 128)).eval()


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images") / "person.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (80, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_two_stage_pipeline_runs_the_pose_model_on_detector_boxes(tiny_pose_model, image_file):
    detector = _FixedDetector()
    results = PosePipeline(detector, tiny_pose_model, flip_test=False).predict([image_file, image_file], batch_size=2)
    assert detector.calls == 1 and len(results) == 2  # one detector pass for the batch
    for result in results:
        torch.testing.assert_close(result.boxes, _FixedDetector.boxes)
        assert result.keypoints.shape == (2, 17, 3)
        confidences = result.keypoints[..., 2]
        above = confidences > 0.2
        expected = _FixedDetector.scores * (confidences * above).sum(1) / above.sum(1).clamp(min=1)
        torch.testing.assert_close(result.scores, expected)


def test_single_stage_pipeline_returns_detector_results(tiny_detector, image_file):
    result = PosePipeline(tiny_detector, None, score_threshold=0.0)(image_file)
    direct = tiny_detector.predict(image_file, score_threshold=0.0)
    torch.testing.assert_close(result.boxes, direct.boxes)
    torch.testing.assert_close(result.keypoints, direct.keypoints)


def test_pipeline_from_real_models_end_to_end(tiny_pose_model, tiny_detector, image_file):
    result = PosePipeline(tiny_detector, tiny_pose_model, score_threshold=0.0, flip_test=False)(image_file)
    assert result.keypoints.shape[1:] == (17, 3) and len(result) > 0


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory, tiny_pose_model, tiny_detector) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("saved")
    return {
        "pose": tiny_pose_model.save_pretrained(root / "pose"),
        "detector": tiny_detector.save_pretrained(root / "detector"),
    }


def test_predict_command_writes_png_and_json(tmp_path, saved_models, image_file, capsys):
    out = tmp_path / "out"
    code = main(["predict", str(image_file), "--weights", str(saved_models["detector"]), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    pngs, jsons = sorted(out.glob("*.png")), sorted(out.glob("person.json"))
    assert len(pngs) == 1 and len(jsons) == 1
    assert Image.open(pngs[0]).size == (64, 80)
    image = json.loads(jsons[0].read_text())["image"]
    assert image == {"path": str(image_file), "height": 80, "width": 64, "frame_index": None, "image_id": None}
    assert isinstance(json.loads((out / "predictions.json").read_text()), list)


def test_predict_command_two_stage(tmp_path, saved_models, image_file, capsys):
    out = tmp_path / "out"
    args = ["predict", str(image_file), "--weights", str(saved_models["pose"]), "--out", str(out)]
    args += ["--detector", "drsi_net_s", "--detector-weights", str(saved_models["detector"])]
    assert main(args) == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.glob("*.json")) == ["person.json", "predictions.json"]


@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        (lambda d: d / "missing.png", "no such file"),
        (lambda d: (d / "garbage.png").write_bytes(b"not an image") and d / "garbage.png", "cannot read image"),
    ],
)
def test_predict_command_reports_bad_images(tmp_path, saved_models, make_input, message, capsys, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # nothing may be written to the working directory
    out = tmp_path / "out"
    code = main(["predict", str(make_input(tmp_path)), "--weights", str(saved_models["detector"]), "--out", str(out)])
    assert code == 1
    assert message in capsys.readouterr().err
    assert list(cwd.iterdir()) == []


def test_predict_command_refuses_weights_of_another_architecture(tmp_path, saved_models, image_file, capsys):
    args = ["predict", str(image_file), "--model", "vttranspose_h_s", "--weights", str(saved_models["detector"])]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    assert "holds a drsi_net_s model" in capsys.readouterr().err
    weights = saved_models["detector"] / "model.safetensors"
    args = ["predict", str(image_file), "--model", "vttranspose_h_s", "--weights", str(weights)]
    assert main([*args, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "do not fit VTTransPose" in err and "The file was saved from drsi_net_s, num_joints=17" in err
    assert "--model drsi_net_s" in err


def test_evaluate_command_prints_the_coco_table(tmp_path, saved_models, capsys):
    split = generate_synthetic_coco(tmp_path / "data", 3, image_size=(96, 96), seed=1, split="val")
    args = ["evaluate", "--weights", str(saved_models["pose"]), "--ann", str(split.ann_file)]
    code = main([*args, "--images", str(split.image_dir), "--results", str(tmp_path / "results.json")])
    out = capsys.readouterr().out
    assert code == 0
    header, values = out.strip().splitlines()[-2:]
    assert header.split() == ["AP", "|", "AP50", "|", "AP75", "|", "APM", "|", "APL", "|", "AR", "|", "AR50", "|",
                              "AR75", "|", "ARM", "|", "ARL"]  # fmt: skip
    assert all(-1.0 <= float(v) <= 1.0 for v in values.split("|"))
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results) == split.num_annotations


def test_evaluate_and_predict_commands_accept_a_test_dev_image_info_file(tmp_path, saved_models, capsys):
    # COCO's image_info_test-dev2017.json holds images but no annotations: results for the evaluation server (as
    # TransPose writes them for test-dev, lib/dataset/coco.py:113-121, 359-367), never scores
    split = generate_synthetic_coco(tmp_path / "data", 2, image_size=(96, 80), seed=2, split="val")
    dataset = json.loads(split.ann_file.read_text())
    info = tmp_path / "image_info_test-dev.json"
    info.write_text(json.dumps({"images": dataset["images"], "categories": dataset["categories"]}))
    detections = [
        {"image_id": ann["image_id"], "category_id": 1, "bbox": ann["bbox"], "score": 0.9}
        for ann in dataset["annotations"]
    ]
    (tmp_path / "dets.json").write_text(json.dumps(detections))
    args = ["evaluate", "--weights", str(saved_models["pose"]), "--ann", str(info), "--images", str(split.image_dir)]
    args += ["--det-json", str(tmp_path / "dets.json")]
    assert main([*args, "--results", str(tmp_path / "results.json")]) == 0
    assert "has no annotations (an image-info file)" in capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())
    assert {r["image_id"] for r in results} == {image["id"] for image in dataset["images"]}
    assert all(set(r) == {"image_id", "category_id", "keypoints", "score"} for r in results)
    assert main(args) == 2  # scoring needs annotations
    assert "image-info file" in capsys.readouterr().err
    out = tmp_path / "predicted"
    images = [str(split.image_dir / image["file_name"]) for image in dataset["images"]]
    predict = ["predict", *images, "--weights", str(saved_models["detector"]), "--ann", str(info), "--out", str(out)]
    assert main(predict) == 0  # predictions.json takes the image ids of the image-info file
    for image in dataset["images"]:
        written = json.loads((out / f"{Path(image['file_name']).stem}.json").read_text())
        assert written["image"]["image_id"] == image["id"]


def test_evaluate_command_reports_an_empty_annotation_file(tmp_path, saved_models, capsys):
    ann = tmp_path / "ann.json"
    ann.write_text("")
    args = ["evaluate", "--weights", str(saved_models["pose"]), "--ann", str(ann)]
    assert main([*args, "--images", str(tmp_path)]) == 2
    expected = f"{ann}: the annotation file is empty (0 bytes); expected a COCO keypoints JSON object"
    assert capsys.readouterr().err == f"posezoo evaluate: error: {expected}\n"


@pytest.mark.slow
def test_train_command_runs_end_to_end_and_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "vttranspose_h_s", "--out", str(run), "--batch-size", "2", "--checkpoint-every", "1"]
    args += ["--input-size", "64", "48", "--synthetic-train", "4", "--synthetic-val", "2"]
    args += ["--synthetic-image-size", "96", "96", "--optimizer", "sgd"]
    assert main([*args, "--steps", "2"]) == 0
    assert "recipe: VTTransPose" in capsys.readouterr().out
    assert json.loads((run / "train_config.json").read_text())["optimizer"] == "sgd"  # recipe: adam
    assert json.loads((run / "recipe.json").read_text())["sources"]["optimizer"] == "command line"
    first = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in first if "loss" in json.loads(line)] == [1, 2]

    assert main([*args, "--steps", "4"]) == 2  # another length: another cosine schedule
    err = capsys.readouterr().err
    assert "train.total_steps: 2 -> 4" in err and "--resume-anyway" in err and "Traceback" not in err
    assert main([*args, "--steps", "4", "--resume-anyway"]) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    losses = [json.loads(line) for line in lines if "loss" in json.loads(line)]
    assert [r["step"] for r in losses] == [1, 2, 3, 4]
    assert [line for line in lines if json.loads(line)["step"] <= 2] == first  # resumed at 2: steps 1-2 kept as logged
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 4
    summary = json.loads((run / "summary.json").read_text())
    assert summary["after"]["step"] == 4 and 0.0 <= summary["after"]["AP"] <= 1.0
    assert (run / "final" / "model.safetensors").is_file()
    assert len(list((run / "predictions").glob("*.png"))) == 2
    assert main(["evaluate", str(run)]) == 0
    assert "AP50" in capsys.readouterr().out


@pytest.mark.slow
def test_train_command_under_torchrun_with_two_processes(tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "posecommon.app.cli", "train", "vttranspose_h_s", "--out", str(tmp_path / "run"), "--steps", "2"]
    command += ["--batch-size", "4", "--input-size", "64", "48", "--synthetic-train", "8", "--synthetic-val", "2"]
    command += ["--synthetic-image-size", "96", "96"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run directory:") == 1  # only rank 0 reports
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["after"]["step"] == 2
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps[:2] == [1, 2]


def test_single_stage_evaluation_keeps_low_score_detections(tmp_path):
    from types import SimpleNamespace

    from posecommon import COCO17
    from posecommon.evaluation import SINGLE_STAGE_SCORE_THRESHOLD, evaluate_model

    class Recorder:
        keypoint_spec = COCO17
        preprocess = SimpleNamespace(resize="letterbox")

        def __init__(self) -> None:
            self.thresholds: list[float] = []
            self.images = 0

        def predict_kernel(self, score_threshold: float, iou_threshold: float, max_people: int):
            self.thresholds.append(score_threshold)

            def kernel(images, inputs, run):
                self.images += len(images)
                return [PoseResult.empty(17) for _ in images]

            return kernel

    split = generate_synthetic_coco(tmp_path, 2, image_size=(64, 64), seed=3, split="val")
    model = Recorder()
    stats, results = evaluate_model(model, split.ann_file, split.image_dir, progress=False)
    assert model.thresholds == [SINGLE_STAGE_SCORE_THRESHOLD] and model.images == 2
    assert results == [] and stats["AP"] == 0.0
    evaluate_model(model, split.ann_file, split.image_dir, progress=False, score_threshold=0.3)
    assert model.thresholds[-1] == 0.3
