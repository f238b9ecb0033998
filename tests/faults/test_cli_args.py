"""Command-line arguments that are wrong on their own: one line, status 2, before a model loads or data is made.

The weights named in these cases do not exist, or would take seconds to use: a case that got as far as loading a
model or generating data would fail differently (or leave ``out/data``), so each case also shows *when* the
argument was checked.
"""

from __future__ import annotations

import pytest

from ._harness import Snapshot, Workspace, check_fault, fault_case, run_cli
from .test_images import GOOD_JPEG


def _predict(*extra: str, weights: str = "detector") -> object:
    def setup(ws: Workspace) -> list[str]:
        good = ws.write("good.jpg", GOOD_JPEG)
        chosen = ws.extra.get(weights, weights)
        return ["predict", good, "--out", ws.out, "--exist-ok", "--weights", chosen, *extra]

    return setup


def _train(*extra: str) -> object:
    def setup(ws: Workspace) -> list[str]:
        return ["train", "vttranspose_h_s", "--out", ws.out, "--steps", "1", "--synthetic-train", "2",
                "--synthetic-val", "1", "--synthetic-image-size", "64", "64", *extra]  # fmt: skip

    return setup


def _train_out_file(ws: Workspace) -> list[str]:
    target = ws.write("a-file", "not a directory")
    return ["train", "vttranspose_h_s", "--out", target, "--steps", "1"]


def _train_out_under_file(ws: Workspace) -> list[str]:
    target = ws.write("a-file", "not a directory")
    return ["train", "vttranspose_h_s", "--out", target / "run", "--steps", "1"]


def _predict_out_file(ws: Workspace) -> list[str]:
    good = ws.write("good.jpg", GOOD_JPEG)
    target = ws.write("a-file", "not a directory")
    return ["predict", good, "--out", target, "--weights", ws.extra["detector"]]


def _predict_out_not_empty(ws: Workspace) -> list[str]:
    good = ws.write("good.jpg", GOOD_JPEG)
    return ["predict", good, "--out", ws.out, "--weights", ws.extra["detector"]]


def _predict_ann(text: str) -> object:
    def setup(ws: Workspace) -> list[str]:
        ann = ws.write("ann.json", text)
        return [*_predict()(ws), "--ann", str(ann)]

    return setup


def _evaluate(*extra: str, ann: str = "ann.json") -> object:
    def setup(ws: Workspace) -> list[str]:
        ws.write("ann.json", "{}")
        return ["evaluate", "--weights", ws.extra["pose"], "--ann", ws.path(ann), "--images", ws.root, *extra]

    return setup


def _evaluate_weights_missing(ws: Workspace) -> list[str]:
    argv = _evaluate()(ws)
    argv[argv.index("--weights") + 1] = "nowhere"
    return argv


def _export(*extra: str) -> object:
    def setup(ws: Workspace) -> list[str]:
        return ["export", "drsi_net_s", "--out", ws.out / "model.onnx", *extra]

    return setup


NO_CUDA = "is not available"

CASES = [
    # predict
    fault_case("predict-batch-size-0", _predict("--batch-size", "0"), 2, "positive integer"),
    fault_case("predict-batch-size-text", _predict("--batch-size", "many"), 2, "positive integer"),
    fault_case("predict-max-people-0", _predict("--max-people", "0"), 2, "positive integer"),
    fault_case("predict-input-size-0", _predict("--input-size", "0", "64"), 2, "--input-size"),
    fault_case("predict-input-size-huge", _predict("--input-size", "640000000", "64"), 2, "--input-size"),
    fault_case("predict-input-size-one-value", _predict("--input-size", "64"), 2, "expected 2 arguments"),
    fault_case("predict-input-size-not-64", _predict("--input-size", "600", "600"), 2, "multiples of 64"),
    fault_case("predict-pose-input-63x47", _predict("--input-size", "63", "47", weights="pose"), 2, "multiples of 4"),
    fault_case("predict-score-2", _predict("--score-threshold", "2"), 2, "--score-threshold"),
    fault_case("predict-score-nan", _predict("--score-threshold", "nan"), 2, "--score-threshold"),
    fault_case("predict-iou-negative", _predict("--iou-threshold", "-0.1"), 2, "--iou-threshold"),
    fault_case("predict-keypoint-inf", _predict("--keypoint-threshold", "inf"), 2, "--keypoint-threshold"),
    fault_case("predict-device-cuda", _predict("--device", "cuda"), 2, NO_CUDA),
    fault_case("predict-device-cuda-7", _predict("--device", "cuda:7"), 2, "cuda:7"),
    fault_case("predict-device-nonsense", _predict("--device", "warp-drive"), 2, "invalid device"),
    fault_case("predict-detector-size-alone", _predict("--detector-input-size", "64", "64"), 2, "needs --detector"),
    fault_case("predict-detector-weights-alone", _predict("--detector-weights", "x"), 2, "needs --detector"),
    fault_case("predict-weights-missing", _predict(weights="nowhere/weights.safetensors"), 2, "not found"),
    fault_case("predict-unknown-model", _predict("--model", "drsi_net_sx"), 2, "did you mean"),
    fault_case("predict-detector-single-stage", _predict("--detector", "drsi_net_s"), 2, "finds people itself"),
    fault_case("predict-out-is-file", _predict_out_file, 2, "is a file"),
    fault_case("predict-out-not-empty", _predict_out_not_empty, 2, "not empty"),
    fault_case("predict-ann-missing", _predict("--ann", "nowhere.json"), 2, "annotation file not found"),
    fault_case("predict-ann-nested", _predict_ann("[" * 100000 + "]" * 100000), 2, "nested too deeply"),
    fault_case("predict-ann-not-coco", _predict_ann('{"images": 3}'), 2, "not a COCO annotation file"),
    fault_case("predict-unknown-flag", _predict("--colour", "red"), 2, "unrecognized arguments"),
    fault_case("predict-no-source", lambda ws: ["predict", "--out", ws.out], 2, "required"),
    # train
    fault_case("train-batch-size-0", _train("--batch-size", "0"), 2, "--batch-size must be a positive integer"),
    fault_case("train-batch-size-negative", _train("--batch-size", "-3"), 2, "--batch-size"),
    fault_case("train-steps-0", _train("--steps", "0"), 2, "--steps must be a positive integer"),
    fault_case("train-epochs-0", lambda ws: ["train", "vttranspose_h_s", "--out", ws.out, "--epochs", "0"], 2, "epoch"),
    fault_case("train-lr-nan", _train("--lr", "nan"), 2, "--lr must be a finite number"),
    fault_case("train-lr-inf", _train("--lr", "inf"), 2, "--lr must be a finite number"),
    fault_case("train-lr-negative", _train("--lr", "-0.1"), 2, "--lr must be a finite number"),
    fault_case("train-lr-zero", _train("--lr", "0"), 2, "--lr must be a finite number"),
    fault_case("train-lr-final-negative", _train("--lr-final", "-1"), 2, "--lr-final"),
    fault_case("train-grad-clip-zero", _train("--grad-clip", "0"), 2, "--grad-clip"),
    fault_case("train-grad-clip-nan", _train("--grad-clip", "nan"), 2, "--grad-clip"),
    fault_case("train-warmup-negative", _train("--warmup-steps", "-1"), 2, "--warmup-steps"),
    fault_case("train-nominal-batch-negative", _train("--nominal-batch-size", "-1"), 2, "--nominal-batch-size"),
    fault_case("train-workers-negative", _train("--workers", "-1"), 2, "--workers"),
    fault_case("train-eval-every-negative", _train("--eval-every", "-5"), 2, "--eval-every"),
    fault_case("train-checkpoint-every-negative", _train("--checkpoint-every", "-1"), 2, "--checkpoint-every"),
    fault_case("train-max-eval-images-0", _train("--max-eval-images", "0"), 2, "--max-eval-images"),
    fault_case("train-synthetic-train-0", _train("--synthetic-train", "0"), 2, "--synthetic-train"),
    fault_case("train-synthetic-val-0", _train("--synthetic-val", "0"), 2, "--synthetic-val"),
    fault_case("train-synthetic-size-8", _train("--synthetic-image-size", "8", "8"), 2, "--synthetic-image-size"),
    fault_case("train-synthetic-size-huge", _train("--synthetic-image-size", "99999", "99999"), 2, "within"),
    fault_case("train-seed-negative", _train("--seed", "-1"), 2, "--seed"),
    fault_case("train-input-size-0", _train("--input-size", "0", "48"), 2, "--input-size"),
    fault_case("train-input-size-63x47", _train("--input-size", "63", "47"), 2, "multiples of 4"),
    fault_case("train-augment-nan", _train("--augment", "rotation=nan"), 2, "finite"),
    fault_case("train-augment-not-number", _train("--augment", "rotation=lots"), 2, "NAME=NUMBER"),
    fault_case("train-device-cuda", _train("--device", "cuda"), 2, NO_CUDA),
    fault_case("train-device-nonsense", _train("--device", "gpu0"), 2, "invalid device"),
    fault_case("train-amp-nonsense", _train("--amp", "fp8"), 2, "invalid choice"),
    fault_case("train-optimizer-nonsense", _train("--optimizer", "lion"), 2, "invalid choice"),
    fault_case("train-steps-and-epochs", _train("--epochs", "2"), 2, "not allowed with"),
    fault_case("train-out-is-file", _train_out_file, 2, "is a file"),
    fault_case("train-out-under-file", _train_out_under_file, 2, "not a writable directory"),
    fault_case("train-data-missing", _train("--data", "/nowhere/coco"), 2, "no such directory"),
    fault_case("train-backbone-missing", _train("--backbone-weights", "/nowhere/b.safetensors"), 2, "no such file"),
    fault_case("train-init-weights-missing", _train("--init-weights", "/nowhere/w.safetensors"), 2, "no such file"),
    fault_case("train-unknown-model", lambda ws: ["train", "vttranspose_h", "--out", ws.out], 2, "did you mean"),
    # evaluate, export, models
    fault_case("evaluate-max-images-0", _evaluate("--max-images", "0"), 2, "positive integer"),
    fault_case("evaluate-max-images-negative", _evaluate("--max-images", "-1"), 2, "positive integer"),
    fault_case("evaluate-weights-missing", _evaluate_weights_missing, 2, "not found"),
    fault_case("evaluate-ann-missing", _evaluate(ann="nowhere.json"), 2, "--ann"),
    fault_case("evaluate-images-missing", lambda ws: [*_evaluate()(ws)[:-1], ws.path("no-images")], 2, "--images"),
    fault_case("evaluate-det-json-missing", _evaluate("--det-json", "nowhere.json"), 2, "--det-json"),
    fault_case("evaluate-two-box-sources", _evaluate("--det-json", "d.json", "--use-gt-boxes"), 2, "only one"),
    fault_case("evaluate-not-a-run", lambda ws: ["evaluate", str(ws.out)], 2, "not a training run"),
    fault_case("export-top-k-0", _export("--decode", "--top-k", "0"), 2, "--top-k"),
    fault_case("export-not-onnx", lambda ws: ["export", "drsi_net_s", "--out", ws.out / "m.txt"], 2, ".onnx"),
    fault_case("models-pattern-nothing", lambda ws: ["models", "nothing_*"], 2, "no model matches"),
]


@pytest.mark.parametrize(("setup", "code", "message", "lines", "unchanged"), CASES)
def test_cli_argument_fault(setup, code, message, lines, unchanged, workspace, models):
    workspace.extra.update({name: str(path) for name, path in models.items()})
    argv = [str(a) for a in setup(workspace)]
    snapshot = Snapshot(workspace.root)
    outcome = run_cli(argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    check_fault(outcome, snapshot, code=code, message=message, command=command, lines=lines, unchanged=unchanged)
    assert not (workspace.out / "data").exists() and not (workspace.out / "recipe.json").exists()
