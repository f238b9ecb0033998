"""Local weight files: safetensors only, strict loading, fine-tuning heads, save/from_pretrained round trip.

Everything here runs without any server; the Hub download path is in ``test_hub.py``. The tiny model of
``hub_server.py`` stands in for the real architectures and is registered for one test at a time.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from posecommon import (
    ChecksumError,
    ConfigError,
    IncompatibleWeightsError,
    InvalidInputError,
    KeypointSpec,
    PoseModel,
    UnsafeWeightsError,
    WeightsNotFoundError,
    WeightSpec,
    create_model,
    get_model_info,
    list_models,
)
from posecommon.hub import load_pretrained, read_safetensors
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


_PINNED = {"tag": "coco", "repo_id": "org/repo", "revision": "a" * 40, "filename": "m.safetensors", "sha256": "b" * 64}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("revision", "main", "40-hex commit hash"),
        ("revision", "a" * 39, "40-hex commit hash"),
        ("sha256", "B" * 64, "64 lowercase hex"),
        ("sha256", "", "64 lowercase hex"),
        ("filename", "m.pth", "safetensors only"),
        ("repo_id", "a--b/c", "not a valid Hub id"),
        ("repo_id", "repo", "'org/name'"),
        ("tag", "", "tag must be"),
    ],
)
def test_weight_specs_are_pinned_and_hashed_when_made(field: str, value: str, message: str) -> None:
    # A registry entry cannot exist unpinned or unhashed: the spec refuses itself, so every registered weight
    # (none are published yet) went through these checks.
    assert WeightSpec(**_PINNED).revision == "a" * 40
    with pytest.raises(InvalidInputError, match=message):
        WeightSpec(**{**_PINNED, field: value})


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
    """Unpickling this calls ``open(marker, "w")``, which creates the marker file: proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_the_pickle_trap_is_live(tmp_path: Path) -> None:
    """Positive control for the trap tests: unpickling the trap does create its marker."""
    marker = tmp_path / "unpickled"
    pickle.loads(pickle.dumps(_Trap(marker))).close()
    assert marker.exists()


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickle_passed_as_safetensors_is_refused_unopened(tiny: None, tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "unpickled"
    path = tmp_path / "evil.safetensors"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(_Trap(marker)))
    else:
        torch.save({"stem.weight": torch.zeros(1), "trap": _Trap(marker)}, path)
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


def test_weights_of_another_architecture_name_the_recorded_one(tiny: None, tmp_path: Path) -> None:
    state = {"model.0.conv.weight": torch.zeros(2, 3, 1, 1)}
    save_file(state, str(tmp_path / "drsi.safetensors"), metadata={"model_name": "drsi_net_s", "num_joints": "17"})
    with pytest.raises(IncompatibleWeightsError, match=r"saved from drsi_net_s, num_joints=17 .*not tiny_pose") as info:
        create_model("tiny_pose", pretrained=str(tmp_path / "drsi.safetensors"))
    assert "create_model('drsi_net_s'" in str(info.value) and "another architecture?" not in str(info.value)
    save_file(state, str(tmp_path / "bare.safetensors"))  # no metadata: says so instead of guessing
    with pytest.raises(IncompatibleWeightsError, match="records no model name"):
        create_model("tiny_pose", pretrained=str(tmp_path / "bare.safetensors"))


def test_org_repo_string_suggests_the_hub_prefix(tiny: None) -> None:
    with pytest.raises(WeightsNotFoundError, match=r"pass pretrained='hf-hub:me/tiny@v1'"):
        create_model("tiny_pose", pretrained="me/tiny@v1")
    with pytest.raises(WeightsNotFoundError) as info:
        create_model("tiny_pose", pretrained="weights/model.safetensors")
    assert "hf-hub:" not in str(info.value)  # a file path is not a repository


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
    with caplog.at_level(logging.WARNING, logger="posecommon.hub"):
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


def _edit_config(run: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (lambda c: c["config"].update(num_joint=5), "num_joint", r"field 'num_joint'; did you mean 'num_joints'"),
        (lambda c: c["config"].update(num_joints="17"), "num_joints", r"TinyConfig\.num_joints must be int, got str"),
        (lambda c: c["config"].update(pretrained=True), "pretrained", r"'config\.pretrained' is not a field"),
        (lambda c: c.update(config=[17, 8]), "config", r"field 'config' must be an object, got list"),
        (lambda c: c.update(weights="abc"), "weights", r"field 'weights' must be an object, got str"),
        (lambda c: c.update(weigths={}), "weigths", r"field 'weigths' is not a field .* did you mean 'weights'"),
        (lambda c: c["metrics"].update(ap="high"), "metrics.ap", r"field 'metrics\.ap' must be a number"),
        (lambda c: c["weights"].update(sha256="xyz"), "weights.sha256", r"'weights\.sha256' must be 64 lowercase"),
        (lambda c: c.update(format_version=99), "format_version", r"newer than this posezoo reads"),
        (lambda c: c.pop("model_name"), "model_name", r"field 'model_name' is missing"),
    ],
)
def test_saved_config_fields_are_validated(
    tiny: None, tmp_path: Path, edit: Callable[[dict[str, Any]], None], field: str, message: str
) -> None:
    run = tiny_pose().save_pretrained(tmp_path / "run")
    _edit_config(run, edit)
    with pytest.raises(ConfigError, match=message) as info:
        PoseModel.from_pretrained(run)
    assert info.value.field == field and "config.json" in str(info.value)


def test_saved_config_without_sha256_loads_with_a_warning(
    tiny: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tiny_pose().save_pretrained(tmp_path / "run")
    _edit_config(run, lambda c: c["weights"].pop("sha256"))
    with caplog.at_level(logging.WARNING, logger="posecommon.hub"):
        model = PoseModel.from_pretrained(run)
    assert model.pretrained_report.sha256 is None
    assert [r.levelno for r in caplog.records if "records no sha256" in r.getMessage()] == [logging.WARNING]


def test_read_safetensors_returns_cpu_tensors(tmp_path: Path) -> None:
    save_file({"a": torch.arange(3.0)}, str(tmp_path / "a.safetensors"))
    assert read_safetensors(tmp_path / "a.safetensors")["a"].tolist() == [0.0, 1.0, 2.0]
