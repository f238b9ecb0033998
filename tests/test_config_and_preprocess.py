from dataclasses import dataclass, field

import pytest
import torch

from posecommon import PreprocessConfig, config_from_dict, config_to_dict, replace_config


@dataclass(frozen=True)
class _Inner:
    sizes: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class _Outer:
    name: str = "x"
    size: tuple[int, int] = (3, 4)
    anchors: tuple[tuple[int, int], ...] = ((1, 2), (3, 4))
    inner: _Inner = field(default_factory=_Inner)
    optional: tuple[float, ...] | None = None


def test_config_round_trip_restores_tuples_and_nested_dataclasses():
    cfg = _Outer(name="y", size=(5, 6), inner=_Inner((7,)), optional=(0.5,))
    data = config_to_dict(cfg)
    assert data["anchors"] == [[1, 2], [3, 4]]
    assert config_from_dict(_Outer, data) == cfg


def test_unknown_fields_are_type_errors_listing_valid_fields():
    with pytest.raises(TypeError, match="valid fields are: name, size"):
        replace_config(_Outer(), nmae="typo")
    with pytest.raises(TypeError, match="nmae"):
        config_from_dict(_Outer, {"nmae": "typo"})
    assert replace_config(_Outer(), name="z").name == "z"


def test_preprocess_normalize_and_round_trip():
    cfg = PreprocessConfig(input_size=(4, 3), mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 1.0))
    images = torch.full((2, 3, 4, 3), 255, dtype=torch.uint8)
    out = cfg.normalize(images)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([1.0, 2.0, 0.5]))
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "kwargs",
    [{"input_size": (0, 3)}, {"input_size": (4,)}, {"std": (1.0, 0.0, 1.0)}, {"resize": "stretch"}],
)
def test_preprocess_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        PreprocessConfig(**{"input_size": (4, 3), **kwargs})


def test_preprocess_rejects_non_rgb_tensor():
    with pytest.raises(ValueError, match="RGB"):
        PreprocessConfig(input_size=(4, 3)).normalize(torch.zeros(1, 4, 4, 3))
