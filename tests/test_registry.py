from collections.abc import Iterator

import pytest
import torch
from torch import nn

import posecommon
from posecommon import (
    ModelInfo,
    PaperFigures,
    UnknownModelError,
    create_model,
    get_model_info,
    list_models,
    register_model,
)
from posecommon import registry as registry_module
from posecommon.registry import model_table


class _TinyModel(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 1)


@pytest.fixture
def tiny_entrypoint() -> Iterator[str]:
    name = "_test_registry_tiny"

    figures = PaperFigures(params_m=0.1, macs_g=1.0, input_size=(8, 8), ap=50.0, source="none")
    table = model_table(ModelInfo(name, "test", "a one-layer model for registry tests", figures))

    @register_model(table)
    def _test_registry_tiny(pretrained: bool | str = False, width: int = 4) -> _TinyModel:
        assert pretrained is False
        return _TinyModel(width)

    yield name
    registry_module._ENTRYPOINTS.pop(name)
    registry_module._INFOS.pop(name)


def test_create_model_passes_kwargs(tiny_entrypoint):
    model = create_model(tiny_entrypoint, width=6)
    assert isinstance(model, _TinyModel) and model.conv.out_channels == 6


def test_list_models_filters_by_pattern(tiny_entrypoint):
    assert tiny_entrypoint in list_models()
    assert list_models("_test_registry_*") == [tiny_entrypoint]
    assert list_models("no_such_model_*") == []
    assert list_models() == sorted(list_models())


def test_model_info_holds_paper_figures(tiny_entrypoint):
    info = get_model_info(tiny_entrypoint)
    assert info.family == "test" and info.paper.ap == 50.0 and info.weight() is None


def test_unknown_model_lists_known_names(tiny_entrypoint):
    with pytest.raises(UnknownModelError, match=tiny_entrypoint) as excinfo:
        create_model("no_such_model")
    assert "no_such_model" in str(excinfo.value)
    assert isinstance(excinfo.value, KeyError)
    with pytest.raises(UnknownModelError):
        get_model_info("no_such_model")


def test_registering_a_different_function_under_a_taken_name_fails(tiny_entrypoint):
    def other(pretrained: bool | str = False) -> nn.Module:
        return nn.Identity()

    other.__name__ = tiny_entrypoint
    with pytest.raises(ValueError, match="registered twice"):
        register_model(model_table(ModelInfo(tiny_entrypoint, "test", "dup")))(other)


def test_every_registered_model_declares_figures_and_builds_on_meta():
    for name in list_models():
        info = get_model_info(name)
        assert info.name == name and info.summary
        with torch.device("meta"):
            model = create_model(name)
        assert isinstance(model, posecommon.PoseModel)
        assert model.model_name == name


def test_unknown_model_suggests_the_closest_names():
    with pytest.raises(UnknownModelError, match=r"unknown model 'drsi_net_ss'; did you mean 'drsi_net_s'") as info:
        create_model("drsi_net_ss")
    assert "registered models are: " + ", ".join(list_models()) in str(info.value)
    with pytest.raises(UnknownModelError) as info:
        create_model("resnet50")
    assert "did you mean" not in str(info.value)  # nothing close: no suggestion


SPEC5 = posecommon.generic_keypoint_spec(5)


@pytest.mark.parametrize("name", ["vttranspose_h_s", "drsi_net_s"])
def test_a_keypoint_spec_implies_num_joints(name):
    with torch.device("meta"):
        model = create_model(name, keypoint_spec=SPEC5)
        assert model.config.num_joints == 5 and model.keypoint_spec is SPEC5
        assert create_model(name, keypoint_spec=SPEC5, num_joints=5).config.num_joints == 5
        with pytest.raises(posecommon.ConfigError, match="num_joints=7 contradicts keypoint_spec 'generic5'") as info:
            create_model(name, keypoint_spec=SPEC5, num_joints=7)
    assert info.value.field == "num_joints"


@pytest.mark.parametrize(
    ("name", "kwargs", "field", "message"),
    [
        ("drsi_net_s", {"input_size": (600, 600)}, "input_size", r"multiples of 64 .*nearest valid: \(576, 576\) or "
         r"\(640, 640\)"),
        ("drsi_net_s", {"input_size": (960, 900)}, "input_size", r"nearest valid: \(960, 896\) or \(960, 960\)"),
        ("drsi_net_s", {"nek": "pan"}, "nek", r"unknown field 'nek'; did you mean 'neck'\?"),
        ("drsi_net_s", {"neck": "cbam-pan"}, "neck", r"must be one of .* got 'cbam-pan'; did you mean 'cbam_pan'\?"),
        ("drsi_net_s", {"num_joints": 5.0}, "num_joints", r"DRSINetConfig\.num_joints must be int, got float 5\.0"),
        ("vttranspose_h_s", {"num_heads": 3}, "num_heads", r"nearest valid num_heads: 2 or 4"),
        ("vttranspose_h_s", {"num_vblocks": 20}, "num_vblocks", r"within 0\.\.16 .* nearest valid: 16"),
        ("vttranspose_h_s", {"input_size": (8, 192)}, "input_size", r"nearest valid: \(16, 192\)"),
        ("vttranspose_h_s", {"input_size": (256, 192, 3)}, "input_size", r"must have 2 values"),
        ("vttranspose_h_s", {"pretrianed": True}, "pretrianed", r"unknown field 'pretrianed'"),
    ],
)  # fmt: skip
def test_config_errors_name_the_field_and_the_nearest_valid_value(name, kwargs, field, message):
    with torch.device("meta"), pytest.raises(posecommon.ConfigError, match=message) as info:
        create_model(name, **kwargs)
    assert info.value.field == field
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)  # what callers caught before
