"""Run every script in examples/ on tiny settings so that none of them can rot.

Each example runs as a subprocess, as a user would run it, and the assertions check what it wrote and printed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TESTED = {
    "infer_image.py",
    "two_stage_pipeline.py",
    "custom_block_model.py",
    "finetune_coco_folder.py",
    "export_onnx.py",
    "backbone_features.py",
}


def run_example(name: str, *args: str | Path) -> str:
    """Run ``examples/<name>``; string arguments are split on spaces, paths are passed whole. Returns stdout."""
    argv = [part for a in args for part in (a.split() if isinstance(a, str) else [str(a)])]
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *argv], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_every_example_is_tested():
    assert {p.name for p in EXAMPLES.glob("*.py")} <= TESTED


def test_infer_image_top_down(tmp_path):
    out, results = tmp_path / "pose.png", tmp_path / "pose.json"
    stdout = run_example(
        "infer_image.py", "--input-size 64 48 --synthetic-size 64 --no-flip --out", out, "--json", results
    )
    people = int(re.search(r"^(\d+) people, 17 keypoints each", stdout, re.M).group(1))
    assert people >= 1
    assert Image.open(out).size == (64, 64)
    coco = json.loads(results.read_text())
    assert len(coco) == people and all(len(r["keypoints"]) == 51 for r in coco)


def test_infer_image_single_stage_with_saved_weights(tmp_path):
    from posecommon import create_model

    create_model("drsi_net_s", input_size=(128, 128)).save_pretrained(tmp_path / "drsi")
    out = tmp_path / "pose.png"
    stdout = run_example(
        "infer_image.py", "--weights", tmp_path / "drsi", "--synthetic-size 64 --score-threshold 0 --out", out
    )
    assert re.search(r"^\d+ people, 17 keypoints each", stdout, re.M)
    assert Image.open(out).size == (64, 64)


@pytest.mark.parametrize("single_stage", [False, True])
def test_two_stage_pipeline(tmp_path, single_stage):
    out, results = tmp_path / "poses.png", tmp_path / "poses.json"
    flags = "--single-stage" if single_stage else "--pose-input 64 48 --no-flip"
    stdout = run_example(
        "two_stage_pipeline.py",
        "--detector-input 128 128 --synthetic-size 64 --score-threshold 0 --max-people 2",
        flags,
        "--out",
        out,
        "--json",
        results,
    )
    match = re.search(r"^(one|two) stages?: (\d+) people, keypoints \((\d+), 17, 3\)", stdout, re.M)
    assert match and match.group(1) == ("one" if single_stage else "two")
    assert int(match.group(2)) == int(match.group(3)) == 2  # score threshold 0: the cap decides
    assert len(json.loads(results.read_text())) == 2
    assert out.is_file()


def test_custom_block_model_trains():
    stdout = run_example("custom_block_model.py", "--input-size 32 32 --batch-size 2 --width 16 --steps 3")
    assert "head      (2, 17, 8, 8)" in stdout
    assert "got finite gradients" in stdout
    first, last = (float(v) for v in re.search(r"^loss ([\d.]+) -> ([\d.]+)$", stdout, re.M).groups())
    assert last < first


def test_finetune_coco_folder_with_joint_subset(tmp_path):
    from posecommon import create_model

    create_model("vttranspose_h_s", input_size=(64, 48)).save_pretrained(tmp_path / "coco17")
    run = tmp_path / "run"
    joints = ["nose", "left_shoulder", "right_shoulder", "left_wrist", "right_wrist"]
    stdout = run_example(
        "finetune_coco_folder.py",
        "--synthetic-train 3 --synthetic-val 1 --synthetic-size 64 --input-size 64 48 --steps 2 --batch-size 2",
        "--device cpu --make-synthetic --data",
        tmp_path / "data",
        "--init",
        tmp_path / "coco17",
        "--out",
        run,
        "--joints " + " ".join(joints),
    )
    assert "fresh head ['final_layer.bias', 'final_layer.weight']" in stdout
    assert re.search(r"^step 2: AP -?[\d.]+", stdout, re.M)
    saved = json.loads((run / "final" / "config.json").read_text())
    assert saved["keypoint_spec"]["names"] == joints and saved["config"]["num_joints"] == 5
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "loss" in r] == [1, 2]
    assert any("eval" in r for r in steps)
    assert f"with 5 keypoints {joints}" in stdout


@pytest.mark.parametrize(
    ("flags", "outputs"),
    [
        ("--input-size 64 48", ["heatmaps"]),
        ("--model drsi_net_s --input-size 128 128 --decode --top-k 20", ["boxes", "scores", "keypoints", "indices"]),
    ],
)
def test_export_onnx_agrees_with_pytorch(tmp_path, flags, outputs):
    import onnx

    out = tmp_path / "model.onnx"
    stdout = run_example("export_onnx.py", flags, "--synthetic-size 64 --out", out)
    graph = onnx.load(str(out))
    assert [o.name for o in graph.graph.output] == outputs
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch axis
    size = [int(v) for v in flags.split("--input-size ")[1].split()[:2]]
    assert json.loads({p.key: p.value for p in graph.metadata_props}["input_size"]) == size
    for name in outputs:
        assert float(re.search(rf"^{name} .* max abs diff ([\d.e+-]+)$", stdout, re.M).group(1)) < 1e-2
    assert re.search(r"^onnxruntime agrees with PyTorch on .*: max abs diff [\d.e+-]+ \(atol 0.0001", stdout, re.M)
    if outputs == ["heatmaps"]:
        assert re.search(r"^\d+ people, keypoints \(\d+, 17, 2\) in image pixels", stdout, re.M)


def test_backbone_features_builds_a_head_from_feature_info_and_loads_saved_weights(tmp_path):
    from drsinet import drsi_net_s

    saved = drsi_net_s(input_size=(128, 128)).save_pretrained(tmp_path / "drsi")
    stdout = run_example(
        "backbone_features.py", "--input-size 128 --images 2 --steps 3 --weights", saved / "model.safetensors"
    )
    assert "features: [128, 256, 384] channels at strides [8, 16, 32]" in stdout
    losses = [float(v) for v in re.findall(r"^step \d+: loss ([\d.]+), masks \(2, 1, 16, 16\)$", stdout, re.M)]
    assert len(losses) == 2 and losses[1] < losses[0]  # steps 1 and 3: the head and the features train
