from collections.abc import Iterator

import pytest
import torch
from torch import nn

import posecommon
from posecommon import PaperFigures, UnknownModelError, create_model, get_model_info, list_models, register_model
from posecommon import registry as registry_module


class _TinyModel(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 1)


@pytest.fixture
def tiny_entrypoint() -> Iterator[str]:
    name = "_test_registry_tiny"

    @register_model(
        family="test",
        summary="a one-layer model for registry tests",
        paper=PaperFigures(params_m=0.1, macs_g=1.0, input_size=(8, 8), ap=50.0, source="none"),
    )
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
        register_model(family="test", summary="dup")(other)


def test_every_registered_model_declares_figures_and_builds_on_meta():
    for name in list_models():
        info = get_model_info(name)
        assert info.name == name and info.summary
        with torch.device("meta"):
            model = create_model(name)
        assert isinstance(model, posecommon.PoseModel)
        assert model.model_name == name
