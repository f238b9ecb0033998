"""Official YOLO-Pose checkpoints -> yolo_pose_s6/m6/l6, read as data (drsinet.convert), on stand-in files.

No official file can be downloaded here. ``tests/yolo_pose_standin.py`` writes, in its own process, files with the
official pickle structure: a ``torch.save`` dict whose ``model``/``ema`` are whole ``models.yolo.Model`` objects
in float16 built from classes registered as ``models.common`` / ``models.yolo`` *in that process only*, together
with the raw outputs those pickled models compute with the official forward (Focus through ``Contract``, head
concatenated then viewed). The test process never has a ``models`` module.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from drsinet import convert_yolo_pose
from drsinet.convert import YOLO_POSE_MODELS, focus_contract_to_slices, official_key_to_posezoo
from posecommon import PoseModel, create_model
from posecommon.app.cli import main
from posecommon.errors import IncompatibleWeightsError, UnknownModelError, UnsafeWeightsError
from posecommon.hub.restricted_pickle import InertObject, class_path, read_torch_checkpoint
from posecommon.registry import get_converter, list_converters

ROOT = Path(__file__).resolve().parents[1]
TINY = {"width_multiple": 0.125, "input_size": (128, 128)}  # the stand-in's layout (depth 0.33 as s6)


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("yolo_pose_standin")
    subprocess.run([sys.executable, str(ROOT / "tests" / "yolo_pose_standin.py"), str(out)], check=True)
    return out


def _reference(standin: Path) -> dict[str, torch.Tensor]:
    return torch.load(standin / "reference.pt", weights_only=True)


def _assert_reproduces(model: torch.nn.Module, reference: dict[str, torch.Tensor], which: str) -> None:
    with torch.no_grad():
        outputs = model.eval()(reference["input"])
    assert len(outputs) == 4
    for level, raw in enumerate(outputs):
        expected = reference[f"{which}.{level}"]
        assert expected.abs().max() > 0.5  # O(1) outputs: the tolerance below is a real one
        torch.testing.assert_close(raw, expected, rtol=1e-5, atol=2e-6)


def _no_official_modules_imported() -> bool:
    return not any(name == "models" or name.startswith("models.") for name in sys.modules)


def test_standin_converts_from_ema_and_reproduces_the_official_forward(standin, tmp_path) -> None:
    path = standin / "official.pt"
    model, report = convert_yolo_pose(path, tmp_path / "out", "yolo_pose_s6", **TINY)
    assert _no_official_modules_imported()
    assert report.taken == "ema" and report.model_name == "yolo_pose_s6"
    assert report.loaded == len(model.state_dict()) and report.dtypes == {"float16": 623, "int64": 121}
    assert all(v.dtype == torch.float32 for k, v in model.state_dict().items() if "num_batches" not in k)
    assert model.config.head_layout == "official"
    _assert_reproduces(model, _reference(standin), "ema")  # the EMA's outputs, not the model's
    # Everything else in the file is reported: the other model, epoch, fitness, optimizer, attributes, buffers.
    for entry in ("checkpoint['model']", "checkpoint['epoch']", "checkpoint['best_fitness']", "ema.yaml"):
        assert entry in report.ignored, entry
    assert "model.33.anchor_grid" in report.ignored and "models.yolo.Model" in report.globals_named
    assert any("reordered" in line for line in report.checked)  # the Focus's Contract channel order
    # Written as safetensors + config + card, recording the source file's sha256; it loads back and agrees.
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    assert report.sha256 == sha256
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["converted_from"]["sha256"] == sha256 and config["converted_from"]["file"] == "official.pt"
    assert config["license"] == "gpl-3.0" and config["model_name"] == "yolo_pose_s6"
    card = (tmp_path / "out" / "README.md").read_text()
    assert sha256 in card and "license: gpl-3.0" in card
    _assert_reproduces(PoseModel.from_pretrained(tmp_path / "out"), _reference(standin), "ema")


def test_stripped_checkpoint_without_ema_takes_model(standin) -> None:
    model, report = convert_yolo_pose(standin / "stripped.pt", None, "yolo_pose_s6", **TINY)
    assert report.taken == "model"
    _assert_reproduces(model, _reference(standin), "ema")  # strip_optimizer put the EMA under 'model'


def test_split_layout_with_the_same_weights_computes_another_function(standin) -> None:
    official, _ = convert_yolo_pose(standin / "official.pt", None, "yolo_pose_s6", **TINY)
    split = create_model("yolo_pose_s6", head_layout="split", **TINY)
    split.load_state_dict(official.state_dict())
    reference = _reference(standin)
    with torch.no_grad():
        raw = split.eval()(reference["input"])[0]
    assert not torch.allclose(raw, reference["ema.0"], atol=1e-2)


def test_payload_runs_nothing_and_is_refused_in_one_typed_line(standin) -> None:
    path, sentinel = standin / "payload.pt", standin / "SENTINEL"
    with pytest.raises(UnsafeWeightsError) as caught:
        convert_yolo_pose(path, None, "yolo_pose_s6", **TINY)
    message = str(caught.value)
    assert "posix.system" in message and "\n" not in message
    assert not sentinel.exists()
    # Read without any policy, the call is an inert record of what the pickle asked for; still nothing ran.
    root = read_torch_checkpoint(path).root
    assert isinstance(root["wandb_id"], InertObject) and class_path(root["wandb_id"]) == "posix.system"
    assert root["wandb_id"].args == (f"touch {sentinel}",)
    assert not sentinel.exists()
    # Positive control: torch.load without weights_only, in a process that has the official classes, runs it.
    load = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import yolo_pose_standin as s; "
        f"s._register_official_modules(); import torch; torch.load({str(path)!r}, weights_only=False)"
    )
    subprocess.run([sys.executable, "-c", load], check=True)
    assert sentinel.exists()
    sentinel.unlink()


def test_truncated_file_is_a_typed_error(standin, tmp_path) -> None:
    data = (standin / "official.pt").read_bytes()
    for cut in (len(data) // 2, len(data) - 100):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        with pytest.raises(IncompatibleWeightsError, match=r"not a readable torch.save zip archive"):
            convert_yolo_pose(path, None, "yolo_pose_s6", **TINY)


def test_wrong_architectures_are_typed_errors_naming_the_difference(standin, tmp_path) -> None:
    with pytest.raises(IncompatibleWeightsError, match=r"one-convolution keypoint head"):
        convert_yolo_pose(standin / "one_conv_head.pt", None, "yolo_pose_s6", **TINY)
    with pytest.raises(IncompatibleWeightsError, match=r"width_multiple 0.125, the posezoo model 0.5"):
        convert_yolo_pose(standin / "official.pt", None, "yolo_pose_s6", input_size=(128, 128))
    with pytest.raises(IncompatibleWeightsError, match=r"depth_multiple 0.33, the posezoo model 0.67"):
        convert_yolo_pose(standin / "official.pt", None, "yolo_pose_m6", **TINY)
    with pytest.raises(IncompatibleWeightsError, match=r"multiples \(0.33, 0.125\) are none of"):
        convert_yolo_pose(standin / "official.pt")  # no model_name and no registered layout of that width
    with pytest.raises(IncompatibleWeightsError, match=r"nkpt 17, the posezoo model 5"):
        convert_yolo_pose(standin / "official.pt", None, "yolo_pose_s6", num_joints=5, **TINY)
    with pytest.raises(IncompatibleWeightsError, match=r"anchors .* differ"):
        anchors = ((10, 13, 16, 30, 33, 23),) * 4
        convert_yolo_pose(standin / "official.pt", None, "yolo_pose_s6", anchors=anchors, **TINY)
    plain = tmp_path / "state_dict.pt"
    torch.save({"model": {"conv.weight": torch.zeros(2)}}, plain)
    with pytest.raises(IncompatibleWeightsError, match=r"not a pickled models.yolo.Model"):
        convert_yolo_pose(plain, None, "yolo_pose_s6")


def test_key_mapping_and_focus_reordering() -> None:
    assert official_key_to_posezoo("model.0.conv.conv.weight") == "backbone.stem.conv.conv.weight"
    assert official_key_to_posezoo("model.10.cv2.bn.bias") == "backbone.stages.4.1.cv2.bn.bias"
    assert official_key_to_posezoo("model.25.d") is None  # Concat: no tensors, no posezoo module
    assert official_key_to_posezoo("model.33.m.3.bias") == "head.box.3.bias"
    assert official_key_to_posezoo("model.33.m_kpt.1.10.bn.running_mean") == "head.kpt.1.10.bn.running_mean"
    assert official_key_to_posezoo("model.33.m_kpt.1.11.weight") == "head.kpt_out.1.weight"
    assert official_key_to_posezoo("model.33.m_kpt.1.weight") is None  # the one-convolution head
    # Contract's order (r, c, channel) vs slicing's (c-major blocks ee, oe, eo, oo): same pixels, same output.
    x = torch.randn(1, 3, 4, 6)
    contract = x.view(1, 3, 2, 2, 3, 2).permute(0, 3, 5, 1, 2, 4).reshape(1, 12, 2, 3)
    sliced = torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1)
    weight = torch.randn(5, 12, 1, 1)
    torch.testing.assert_close(
        torch.nn.functional.conv2d(sliced, focus_contract_to_slices(weight)),
        torch.nn.functional.conv2d(contract, weight),
    )


def test_registered_converters_are_found_by_name() -> None:
    assert {"yolo-pose", "transpose"} <= set(list_converters())
    info = get_converter("yolo-pose")
    assert info.family == "drsinet" and info.models == YOLO_POSE_MODELS and info.license == "gpl-3.0"
    with pytest.raises(UnknownModelError, match=r"did you mean 'yolo-pose'"):
        get_converter("yolopose")


def test_cli_convert_writes_the_directory_and_refuses_the_payload(standin, tmp_path, capsys) -> None:
    out = tmp_path / "cli"
    args = ["convert", "yolo-pose", str(standin / "official.pt"), "--out", str(out), "--model", "yolo_pose_s6"]
    status = main([*args, "--input-size", "128", "128", "--config", "width_multiple=0.125"])
    stdout = capsys.readouterr().out
    assert status == 0 and f"wrote {out}: official.pt -> yolo_pose_s6: 742 tensors from 'ema'" in stdout
    assert "ignored: checkpoint['optimizer'] (None)" in stdout
    _assert_reproduces(PoseModel.from_pretrained(out), _reference(standin), "ema")
    status = main(["convert", "yolo-pose", str(standin / "payload.pt"), "--out", str(tmp_path / "no")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("posezoo convert: error: ")
    assert "posix.system" in err and not (standin / "SENTINEL").exists() and not (tmp_path / "no").exists()


def test_cli_convert_transpose_records_the_sha256(tmp_path, capsys) -> None:
    from tests.test_vttranspose_convert import random_official_state_dict

    path = tmp_path / "tp_h_32_256x192_enc4_d64_h128_mh1.pth"
    torch.save(random_official_state_dict(seed=3), path)
    assert main(["convert", "transpose", str(path), "--out", str(tmp_path / "tp")]) == 0
    assert "loaded 982, skipped 0, missing 0 keys" in capsys.readouterr().out
    config = json.loads((tmp_path / "tp" / "config.json").read_text())
    assert config["converted_from"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert config["license"] == "mit" and config["model_name"] == "transpose_h_s"


@pytest.mark.parametrize(
    ("name", "depth", "width", "paper_m"),
    [("yolo_pose_s6", 0.33, 0.5, 15.1), ("yolo_pose_m6", 0.67, 0.75, 41.4), ("yolo_pose_l6", 1.0, 1.0, 87.0)],
)
def test_registered_layouts_have_the_official_parameter_count_exactly(name, depth, width, paper_m) -> None:
    from tests.yolo_pose_standin import Model, official_yaml

    with torch.device("meta"):
        official = Model(official_yaml(depth=depth, width=width))  # the official layer list, built independently
        ours = create_model(name)
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in official.parameters())
    assert round(count / 1e6, 1) == pytest.approx(paper_m, abs=0.11)  # DRSI-Net paper Table 1 (87.0 for 87.07 M)
    keys = {official_key_to_posezoo(k) for k in official.state_dict() if "anchor" not in k}
    assert keys == set(ours.state_dict())  # every official tensor has exactly one posezoo place, and back


def test_converted_from_is_validated_in_config_json() -> None:
    from posecommon.errors import ConfigError
    from posecommon.hub.saved_config import validate_saved_config

    good = {"model_name": "yolo_pose_s6", "config": {}}
    good["converted_from"] = {"file": "last.pt", "sha256": "0" * 64, "origin": "official"}
    validate_saved_config(good, "config.json", 1)
    for bad, field in (
        ({"file": "last.pt", "sha256": "abc", "origin": "x"}, "converted_from.sha256"),
        ({"file": 3, "sha256": "0" * 64, "origin": "x"}, "converted_from.file"),
        ({"file": "a", "sha256": "0" * 64, "origin": "x", "url": "y"}, "converted_from.url"),
    ):
        with pytest.raises(ConfigError) as caught:
            validate_saved_config({**good, "converted_from": bad}, "config.json", 1)
        assert caught.value.field == field
