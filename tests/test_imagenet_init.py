"""ImageNet HRNet-W32 initialisation of the VTTransPose family, through the real huggingface_hub download path.

The Hub is :class:`tests.hub_server.LocalHub` on 127.0.0.1 (``HF_ENDPOINT``); huggingface_hub is not mocked. The
served file has timm's ``hrnet_w32`` layout (key names and shapes from
``/work/shared/reference/timm_hrnet_w32_state_dict.json``, copied below as ``REFERENCE``) with random values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants as hf_constants
from safetensors.torch import save, save_file

import vttranspose
from posecommon import ChecksumError, HubUnavailableError, IncompatibleWeightsError, InvalidInputError, create_model
from posecommon.app.train_run import backbone_choice
from tests.hub_server import LocalHub
from vttranspose.imagenet import IMAGENET_HRNET_W32, PRETRAINED_LAYERS, load_backbone_weights, plan_backbone_load

REFERENCE_FILE = Path("/work/shared/reference/timm_hrnet_w32_state_dict.json")
CLASSIFIER_SAMPLE = (
    "stage4.0.branches.0.0.bn1.weight",
    "transition3.3.0.1.bias",
    "incre_modules.0.0.bn1.weight",
    "downsamp_modules.0.1.bias",
    "final_layer.1.running_var",
    "classifier.bias",
)


@pytest.fixture(scope="module")
def reference() -> dict[str, tuple[int, ...]]:
    if not REFERENCE_FILE.is_file():
        pytest.fail(f"{REFERENCE_FILE} (timm hrnet_w32 key layout) is missing")
    keys = json.loads(REFERENCE_FILE.read_text())["keys"]
    assert len(keys) == 1956
    return {k: tuple(v) for k, v in keys.items()}


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _vblock_prefixes(model: torch.nn.Module) -> tuple[str, ...]:
    return tuple(f"{n}." for n, m in model.named_modules() if isinstance(m, vttranspose.VBlock))


def test_mapping_against_the_timm_reference(reference):
    expected = {"transpose_h_s": (930, 0), "transpose_h_s_twin": (930, 0), "vttranspose_h_s": (834, 472)}
    for name, (num_loaded, num_kept) in expected.items():
        model = create_model(name)
        loaded, skipped, ignored, kept = plan_backbone_load(_shapes(model), reference, _vblock_prefixes(model))
        assert (len(loaded), len(kept)) == (num_loaded, num_kept), name
        assert all(k.startswith(_vblock_prefixes(model)) for k in kept)  # only V-block parameters stay random
        assert {k.split(".")[0] for k in ignored} == {
            "stage4",
            "transition3",
            "incre_modules",
            "downsamp_modules",
            "final_layer",
            "classifier",
        }
        assert all(k.split(".")[0] in PRETRAINED_LAYERS for k in (*loaded, *skipped))


def _timm_layout_file(reference: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Random tensors in timm's layout: the stem to stage 3, without num_batches_tracked, and classifier keys."""
    generator = torch.Generator().manual_seed(5)
    keys = [k for k in reference if k.split(".")[0] in PRETRAINED_LAYERS and not k.endswith("num_batches_tracked")]
    return {k: torch.randn(reference[k], generator=generator) for k in (*keys, *CLASSIFIER_SAMPLE)}


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    server = LocalHub().start()
    cache = tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "ENDPOINT", server.endpoint)
    template = server.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    yield server
    server.stop()


def test_imagenet_weights_load_through_the_hub(hub, reference):
    state = _timm_layout_file(reference)
    data = save(state)
    # the pinned revision: a ref of that name on the test server (it cannot mint the real commit hash)
    hub.add_commit(IMAGENET_HRNET_W32.repo_id, {IMAGENET_HRNET_W32.filename: data}, branch=IMAGENET_HRNET_W32.revision)
    torch.manual_seed(0)
    fresh = vttranspose.vttranspose_h_s()
    torch.manual_seed(0)
    model = vttranspose.vttranspose_h_s(backbone_weights="imagenet")
    report = model.backbone_report
    path = f"/{IMAGENET_HRNET_W32.repo_id}/resolve/{IMAGENET_HRNET_W32.revision}/{IMAGENET_HRNET_W32.filename}"
    assert ("HEAD", path) in hub.requests
    assert report.sha256 == hashlib.sha256(data).hexdigest()
    assert len(report.ignored) == len(CLASSIFIER_SAMPLE)
    assert len(report.loaded) == 834 - 139  # num_batches_tracked is optional: 139 of the 834 are not in the file
    vblocks = _vblock_prefixes(model)
    assert len([k for k in report.kept if k.startswith(vblocks)]) == 472  # V blocks: no ImageNet counterpart
    assert all(k.endswith("num_batches_tracked") for k in report.kept if not k.startswith(vblocks))
    params = model.state_dict()
    for key in report.loaded:
        assert torch.equal(params[key], state[key]), key
    for key, value in fresh.state_dict().items():
        if key not in report.loaded:
            assert torch.equal(params[key], value), key  # V blocks, encoder and head untouched


def test_corrupted_download_is_a_checksum_error(hub, reference):
    state = {k: v for k, v in _timm_layout_file(reference).items() if k.startswith(("conv1", "bn1"))}
    data = save(state)
    hub.add_commit(IMAGENET_HRNET_W32.repo_id, {IMAGENET_HRNET_W32.filename: data}, branch=IMAGENET_HRNET_W32.revision)
    hub.corrupt(hashlib.sha256(data).hexdigest(), data[:-4] + b"XXXX")  # same size, other bytes
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        load_backbone_weights(vttranspose.transpose_h_s(), "imagenet")


def test_offline_without_a_cached_copy_says_how_to_train_without_it(hub, monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnavailableError, match=r"offline mode.*--backbone-weights kaiming.*'none'"):
        load_backbone_weights(vttranspose.transpose_h_s(input_size=(64, 48)), "imagenet")
    assert hub.requests == []


@pytest.fixture(scope="module")
def small_model():
    return vttranspose.transpose_h_s(input_size=(64, 48))


def test_other_architectures_are_typed_errors(small_model, tmp_path, reference):
    layout = _timm_layout_file(reference)
    resnet_stem = tmp_path / "resnet_stem.safetensors"  # every key present, but a ResNet-style 7x7 stem conv
    save_file({**layout, "conv1.weight": torch.zeros(64, 3, 7, 7)}, str(resnet_stem))
    with pytest.raises(IncompatibleWeightsError, match=r"1 shape mismatch.*conv1\.weight"):
        load_backbone_weights(small_model, resnet_stem)
    unrelated = tmp_path / "unrelated.safetensors"
    save_file({"fc.weight": torch.zeros(10, 4)}, str(unrelated))
    with pytest.raises(IncompatibleWeightsError, match="not an HRNet-W32"):
        load_backbone_weights(small_model, unrelated)
    truncated = tmp_path / "truncated.safetensors"  # a real layout with stage 3 missing
    stem = {k: v for k, v in layout.items() if not k.startswith("stage3")}
    save_file(stem, str(truncated))
    with pytest.raises(IncompatibleWeightsError, match=r"missing from the file.*stage3"):
        load_backbone_weights(small_model, truncated)


def test_backbone_option_choices(small_model):
    with pytest.raises(InvalidInputError, match="not both"):
        vttranspose.transpose_h_s(pretrained="x.safetensors", backbone_weights="imagenet")
    assert backbone_choice(small_model, "/data/coco", None) == "imagenet"  # the official recipe on COCO data
    assert backbone_choice(small_model, "synthetic", None) == "kaiming"  # the main job stays offline
    assert backbone_choice(small_model, "/data/coco", "none") == "none"
    assert backbone_choice(small_model, "/data/coco", "kaiming") == "kaiming"
    with pytest.raises(InvalidInputError, match="no backbone initialisation"):
        backbone_choice(torch.nn.Linear(1, 1), "/data/coco", "imagenet")
    assert backbone_choice(torch.nn.Linear(1, 1), "/data/coco", None) == "none"
