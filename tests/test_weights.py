"""Local weight files: safetensors only, strict loading, fine-tuning heads, save/from_pretrained round trip.

Everything here runs without any server; the Hub download path is in ``test_hub.py``. The tiny model of
``hub_server.py`` stands in for the real architectures and is registered for one test at a time.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from posecommon import (
    ChecksumError,
    IncompatibleWeightsError,
    KeypointSpec,
    PoseModel,
    UnsafeWeightsError,
    WeightsNotFoundError,
    create_model,
    get_model_info,
    list_models,
)
from posecommon.weights import load_pretrained, read_safetensors
from tests.hub_server import TinyPose, register_tiny, tiny_pose


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    register_tiny(monkeypatch)


def _trained_file(path: Path, **kwargs: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = tiny_pose(**kwargs)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    return state


def _assert_state_equal(model: nn.Module, state: dict[str, torch.Tensor], skip: tuple[str, ...] = ()) -> None:
    for key, value in model.state_dict().items():
        if skip and key.startswith(skip):
            continue
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------- no weights


def test_every_registered_weight_spec_is_pinned_and_hashed() -> None:
    for name in list_models():
        for spec in get_model_info(name).weights:
            assert re.fullmatch(r"[0-9a-f]{40}", spec.revision), (name, spec.tag)
            assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256), (name, spec.tag)
            assert spec.filename.endswith(".safetensors"), (name, spec.tag)


def test_pretrained_true_without_published_weights_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [name for name in list_models() if not get_model_info(name).weights]
    register_tiny(monkeypatch)
    for name in [*names, "tiny_pose"]:
        with pytest.raises(WeightsNotFoundError, match="no weights are published") as info:
            load_pretrained(nn.Identity(), name, True)
        assert "pretrained=False" in str(info.value)
        assert ".safetensors" in str(info.value)


def test_unknown_tag_lists_published_tags(tiny: None) -> None:
    with pytest.raises(WeightsNotFoundError, match=r"with tag 'coco'.*published: none"):
        create_model("tiny_pose", pretrained="coco")


def test_pretrained_false_keeps_random_init(tiny: None) -> None:
    model = create_model("tiny_pose", pretrained=False)
    assert model.pretrained_report is None


# ----------------------------------------------------------------------------------------------- local files


def test_local_safetensors_file_loads_exactly(tiny: None, tmp_path: Path) -> None:
    state = _trained_file(tmp_path / "w.safetensors")
    torch.manual_seed(1)
    model = create_model("tiny_pose", pretrained=str(tmp_path / "w.safetensors"))
    _assert_state_equal(model, state)
    assert model.pretrained_report.skipped == ()
    assert model.pretrained_report.loaded == len(state)


def test_missing_local_file(tiny: None, tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="weight file not found"):
        create_model("tiny_pose", pretrained=str(tmp_path / "nope.safetensors"))


def test_truncated_safetensors_file(tiny: None, tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    _trained_file(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IncompatibleWeightsError, match="truncated or corrupted"):
        create_model("tiny_pose", pretrained=str(path))


def test_corrupted_safetensors_header(tiny: None, tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    _trained_file(path)
    data = bytearray(path.read_bytes())
    data[8:24] = b"\xff" * 16  # inside the JSON header
    path.write_bytes(bytes(data))
    with pytest.raises(IncompatibleWeightsError, match="truncated or corrupted"):
        create_model("tiny_pose", pretrained=str(path))


class _Trap:
    """Unpickling this runs ``Path.touch`` on the marker: proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickle_passed_as_safetensors_is_refused_unopened(tiny: None, tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "unpickled"
    path = tmp_path / "evil.safetensors"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(_Trap(marker)))
    else:
        torch.save({"stem.weight": torch.zeros(1)}, path)
    with pytest.raises(UnsafeWeightsError, match="never unpickles"):
        create_model("tiny_pose", pretrained=str(path))
    assert not marker.exists()


def test_other_architecture_names_keys_and_shapes(tiny: None, tmp_path: Path) -> None:
    _trained_file(tmp_path / "wide.safetensors", width=16)
    with pytest.raises(IncompatibleWeightsError) as info:
        create_model("tiny_pose", pretrained=str(tmp_path / "wide.safetensors"))
    message = str(info.value)
    assert "stem.weight: file (16, 3, 3, 3) vs model (8, 3, 3, 3)" in message
    state = _trained_file(tmp_path / "extra.safetensors")
    save_file({**state, "neck.weight": torch.zeros(2)}, str(tmp_path / "extra.safetensors"))
    with pytest.raises(IncompatibleWeightsError, match=r"unexpected key\(s\) in the file, first: \['neck.weight'\]"):
        create_model("tiny_pose", pretrained=str(tmp_path / "extra.safetensors"))
    del state["norm.running_mean"]
    save_file(state, str(tmp_path / "missing.safetensors"))
    with pytest.raises(IncompatibleWeightsError, match=r"missing from the file, first: \['norm.running_mean'\]"):
        create_model("tiny_pose", pretrained=str(tmp_path / "missing.safetensors"))


def test_other_num_joints_without_asking_is_an_error(tiny: None, tmp_path: Path) -> None:
    _trained_file(tmp_path / "k5.safetensors", num_joints=5)
    with pytest.raises(IncompatibleWeightsError, match=r"head.weight: file \(5, 8, 1, 1\) vs model \(17, 8, 1, 1\)"):
        create_model("tiny_pose", pretrained=str(tmp_path / "k5.safetensors"))


# ----------------------------------------------------------------------------------------------- fine-tuning


def test_fine_tuning_on_another_keypoint_set_keeps_a_fresh_head(
    tiny: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = _trained_file(tmp_path / "k17.safetensors")
    torch.manual_seed(7)
    fresh_head = tiny_pose(num_joints=5).head.weight.detach().clone()
    torch.manual_seed(7)
    with caplog.at_level(logging.WARNING, logger="posecommon.weights"):
        model = create_model("tiny_pose", pretrained=str(tmp_path / "k17.safetensors"), num_joints=5)
    assert model.pretrained_report.skipped == ("head.bias", "head.weight")
    assert "head.bias, head.weight" in caplog.text
    _assert_state_equal(model, state, skip=("head.",))
    torch.testing.assert_close(model.head.weight, fresh_head, rtol=0, atol=0)
    assert model.keypoint_spec.num_joints == 5


def test_fine_tuning_is_still_strict_outside_the_head(tiny: None, tmp_path: Path) -> None:
    _trained_file(tmp_path / "wide.safetensors", width=16)
    with pytest.raises(IncompatibleWeightsError, match=r"stem\.weight"):
        create_model("tiny_pose", pretrained=str(tmp_path / "wide.safetensors"), num_joints=5)


def test_same_non_default_num_joints_loads_the_head_too(tiny: None, tmp_path: Path) -> None:
    state = _trained_file(tmp_path / "k5.safetensors", num_joints=5)
    model = create_model("tiny_pose", pretrained=str(tmp_path / "k5.safetensors"), num_joints=5)
    assert model.pretrained_report.skipped == ()
    _assert_state_equal(model, state)


# ----------------------------------------------------------------------------------------------- save / from_pretrained


def _one_training_step(model: TinyPose) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images = torch.randn(4, 3, 32, 24)
    target = torch.rand(4, model.config.num_joints, 32, 24)
    loss = nn.functional.mse_loss(model(images), target)
    loss.backward()
    optimizer.step()


def test_round_trip_train_save_load_identical_outputs(tiny: None, tmp_path: Path) -> None:
    torch.manual_seed(0)
    spec = KeypointSpec.from_flip_pairs("triple", ("a", "left", "right"), ((0, 1), (0, 2)), ((1, 2),))
    model = TinyPose(tiny_pose(num_joints=3).config)
    model.keypoint_spec = spec
    _one_training_step(model)
    model.save_pretrained(tmp_path / "run", training_data="synthetic COCO (test)", metrics={"ap": 1.5})

    loaded = PoseModel.from_pretrained(tmp_path / "run")
    assert type(loaded) is TinyPose and loaded.config == model.config
    assert loaded.keypoint_spec == spec
    images = torch.randn(2, 3, 32, 24)
    model.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images), rtol=0, atol=0)
    assert TinyPose.from_pretrained(tmp_path / "run").pretrained_report.sha256 is not None


def test_saved_layout(tiny: None, tmp_path: Path) -> None:
    model = tiny_pose()
    out = model.save_pretrained(tmp_path / "run", training_data="synthetic", metrics={"coco_val_ap": 12.5})
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["model_name"] == "tiny_pose"
    assert config["config"] == {"num_joints": 17, "width": 8}
    assert config["keypoint_spec"]["name"] == "coco17"
    assert config["preprocess"]["input_size"] == [32, 24]
    assert re.fullmatch(r"[0-9a-f]{64}", config["weights"]["sha256"])
    with safe_open(str(out / "model.safetensors"), "pt") as handle:
        assert handle.metadata()["model_name"] == "tiny_pose"
        assert handle.metadata()["num_joints"] == "17"
    card = (out / "README.md").read_text()
    for section in ("library_name: posezoo", "## Architecture", "## Config", "## Training data", "synthetic"):
        assert section in card
    assert "| coco_val_ap | 12.5 |" in card


def test_directory_as_pretrained_checks_its_sha256(tiny: None, tmp_path: Path) -> None:
    torch.manual_seed(0)
    tiny_pose().save_pretrained(tmp_path / "run")
    model = create_model("tiny_pose", pretrained=str(tmp_path / "run"))
    assert model.pretrained_report.sha256 is not None
    weights = tmp_path / "run" / "model.safetensors"
    torch.manual_seed(1)
    save_file(tiny_pose().state_dict(), str(weights))  # valid file, but not the one config.json records
    with pytest.raises(ChecksumError, match=r"expected [0-9a-f]{64} but the file has [0-9a-f]{64}"):
        create_model("tiny_pose", pretrained=str(tmp_path / "run"))
    with pytest.raises(ChecksumError, match=re.escape(str(weights))):
        PoseModel.from_pretrained(tmp_path / "run")


def test_from_pretrained_checks_the_class(tiny: None, tmp_path: Path) -> None:
    class Other(PoseModel):
        pass

    tiny_pose().save_pretrained(tmp_path / "run")
    with pytest.raises(IncompatibleWeightsError, match="not a Other"):
        Other.from_pretrained(tmp_path / "run")


def test_read_safetensors_returns_cpu_tensors(tmp_path: Path) -> None:
    save_file({"a": torch.arange(3.0)}, str(tmp_path / "a.safetensors"))
    assert read_safetensors(tmp_path / "a.safetensors")["a"].tolist() == [0.0, 1.0, 2.0]
