"""Converter from the official TransPose-H-S checkpoint, sine table and encoder fidelity against the official layout.

The official key list (``reference/transpose_h_s_state_dict.json``, 982 keys) is regenerated here from the
layout description in ``reference/transpose_h_s.md`` and pinned by the SHA-256 of its sorted ``"key shape"``
lines, computed from the reference JSON; the model code is not used to produce it.
"""

import hashlib
import math

import numpy as np
import pytest
import torch

from posecommon.errors import IncompatibleWeightsError, UnsafeWeightsError
from vttranspose import (
    TransformerEncoder,
    TransformerEncoderLayer,
    convert_official_checkpoint,
    sine_position_table,
    transpose_h_s,
    vttranspose_h_s,
)

OFFICIAL_KEYS_SHA256 = "ebe23d8b410970bf4af3f6c6eb5820458cd4ee8168ad22ab62e4acc821a04e22"


def official_keys() -> list[tuple[str, tuple[int, ...]]]:
    """Keys and shapes of the official TransPose-H-S state dict, from the layout description."""
    keys: list[tuple[str, tuple[int, ...]]] = [("pos_embedding", (3072, 1, 64))]

    def conv(prefix: str, out_c: int, in_c: int, k: int) -> None:
        keys.append((f"{prefix}.weight", (out_c, in_c, k, k)))

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            keys.append((f"{prefix}.{name}", (c,)))
        keys.append((f"{prefix}.num_batches_tracked", ()))

    def hr_module(prefix: str, chans: tuple[int, ...], fuse_rows: int) -> None:
        for i, c in enumerate(chans):
            for b in range(4):
                for n in (1, 2):
                    conv(f"{prefix}.branches.{i}.{b}.conv{n}", c, c, 3)
                    bn(f"{prefix}.branches.{i}.{b}.bn{n}", c)
        for i in range(fuse_rows):
            for j, cj in enumerate(chans):
                if j > i:
                    conv(f"{prefix}.fuse_layers.{i}.{j}.0", chans[i], cj, 1)
                    bn(f"{prefix}.fuse_layers.{i}.{j}.1", chans[i])
                for k in range(i - j):
                    out_c = chans[i] if k == i - j - 1 else cj
                    conv(f"{prefix}.fuse_layers.{i}.{j}.{k}.0", out_c, cj, 3)
                    bn(f"{prefix}.fuse_layers.{i}.{j}.{k}.1", out_c)

    conv("conv1", 64, 3, 3)
    bn("bn1", 64)
    conv("conv2", 64, 64, 3)
    bn("bn2", 64)
    for b in range(4):
        p = f"layer1.{b}"
        conv(f"{p}.conv1", 64, 64 if b == 0 else 256, 1)
        bn(f"{p}.bn1", 64)
        conv(f"{p}.conv2", 64, 64, 3)
        bn(f"{p}.bn2", 64)
        conv(f"{p}.conv3", 256, 64, 1)
        bn(f"{p}.bn3", 256)
        if b == 0:
            conv(f"{p}.downsample.0", 256, 64, 1)
            bn(f"{p}.downsample.1", 256)
    conv("transition1.0.0", 32, 256, 3)
    bn("transition1.0.1", 32)
    conv("transition1.1.0.0", 64, 256, 3)
    bn("transition1.1.0.1", 64)
    hr_module("stage2.0", (32, 64), 2)
    conv("transition2.2.0.0", 128, 64, 3)
    bn("transition2.2.0.1", 128)
    for m in range(4):
        hr_module(f"stage3.{m}", (32, 64, 128), 3 if m < 3 else 1)
    conv("reduce", 64, 32, 1)
    for n in range(4):
        p = f"global_encoder.layers.{n}"
        keys += [
            (f"{p}.self_attn.in_proj_weight", (192, 64)),
            (f"{p}.self_attn.in_proj_bias", (192,)),
            (f"{p}.self_attn.out_proj.weight", (64, 64)),
            (f"{p}.self_attn.out_proj.bias", (64,)),
            (f"{p}.linear1.weight", (128, 64)),
            (f"{p}.linear1.bias", (128,)),
            (f"{p}.linear2.weight", (64, 128)),
            (f"{p}.linear2.bias", (64,)),
        ]
        for norm in ("norm1", "norm2"):
            keys += [(f"{p}.{norm}.weight", (64,)), (f"{p}.{norm}.bias", (64,))]
    keys += [("final_layer.weight", (17, 64, 1, 1)), ("final_layer.bias", (17,))]
    return keys


def random_official_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_keys():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.randint(0, 10_000, shape, generator=gen)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen)
    return state


def test_generated_key_list_is_the_reference_one():
    keys = official_keys()
    assert len(keys) == 982
    lines = sorted(f"{k} {tuple(s)}" for k, s in keys)
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == OFFICIAL_KEYS_SHA256
    assert sum(math.prod(s) for _, s in keys) == 8_042_796  # num_tensors_numel of the reference


def test_transpose_h_s_state_dict_equals_official_layout():
    ours = [(k, tuple(v.shape)) for k, v in transpose_h_s().state_dict().items()]
    assert ours == official_keys()  # same keys, shapes and order


def test_convert_into_transpose_h_s_strict_copies_every_tensor():
    state = random_official_state_dict()
    model = transpose_h_s()
    report = convert_official_checkpoint(state, model, strict=True)
    assert report.complete and len(report.loaded) == 982
    ours = model.state_dict()
    for key, value in state.items():
        assert torch.equal(ours[key], value.to(ours[key].dtype)), key
    assert not model.pos_embedding.requires_grad


def test_convert_from_pth_file_with_module_prefix(tmp_path):
    state = random_official_state_dict(seed=1)
    path = tmp_path / "tp_h_32_256x192_enc4_d64_h128_mh1.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    model = transpose_h_s()
    report = convert_official_checkpoint(path, model, strict=True)
    assert len(report.loaded) == 982
    assert torch.equal(model.final_layer.bias, state["final_layer.bias"])


class _Trap:
    """Unpickling this calls ``open(marker, "w")``, which creates the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_convert_refuses_pickled_objects_without_running_them(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "extra": _Trap(marker)}, path)
    torch.load(path, weights_only=False)["extra"].close()  # positive control: a plain load runs the trap
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UnsafeWeightsError, match=r"evil\.pth holds pickled objects .* Weights only load failed"):
        convert_official_checkpoint(path, transpose_h_s())
    assert not marker.exists()


def test_convert_into_vttranspose_h_s_loads_shared_parts():
    state = random_official_state_dict(seed=2)
    model = vttranspose_h_s()
    report = convert_official_checkpoint(state, model)
    replaced = {f"stage3.{m}.branches.2.{b}." for m in range(4) for b in (2, 3)}
    for key in state:
        layer_norm = key.startswith("global_encoder.") and ".norm" in key  # same post-norms in the twin layers
        expected_skip = key == "pos_embedding" or (key.startswith(("global_encoder.", *replaced)) and not layer_norm)
        assert (key in report.skipped) == expected_skip, key
    assert all(reason == "not in model" for reason in report.skipped.values())
    # The sine table, attention and MLP weights of 4 layers (8 each), 8 basic blocks (2 convs + 2 BNs of 5 keys).
    assert len(report.skipped) == 1 + 4 * 8 + 8 * 12
    assert all(k.startswith(("global_encoder.", "pos_embedding.", *replaced)) for k in report.missing), report.missing
    ours = model.state_dict()
    for key in ("conv1.weight", "layer1.3.bn3.running_var", "stage3.3.branches.2.1.conv2.weight", "reduce.weight"):
        assert key in report.loaded and torch.equal(ours[key], state[key])
    with pytest.raises(IncompatibleWeightsError, match="skipped"):
        convert_official_checkpoint(state, vttranspose_h_s(), strict=True)


def test_convert_other_num_joints_and_input_size_skip_head_and_table():
    state = random_official_state_dict(seed=3)
    report = convert_official_checkpoint(state, transpose_h_s(num_joints=5, input_size=(128, 96)))
    assert set(report.skipped) == {"pos_embedding", "final_layer.weight", "final_layer.bias"}
    assert report.skipped["final_layer.bias"].startswith("shape (17,)")


def reference_sine_table(h: int, w: int, d: int) -> np.ndarray:
    """Literal transcription of the formula in reference/transpose_h_s.md, element by element, in float64."""
    half = d // 2
    table = np.zeros((h, w, d))
    for row in range(h):
        for col in range(w):
            y = (row + 1) / (h + 1e-6) * 2 * math.pi
            x = (col + 1) / (w + 1e-6) * 2 * math.pi
            for i in range(half):
                freq = 10000 ** (2 * (i // 2) / half)
                trig = math.sin if i % 2 == 0 else math.cos
                table[row, col, i] = trig(y / freq)
                table[row, col, half + i] = trig(x / freq)
    return table.reshape(h * w, 1, d)


def test_sine_table_equals_reference_formula():
    ours = transpose_h_s().pos_embedding.detach().numpy()
    assert ours.shape == (3072, 1, 64)
    np.testing.assert_allclose(ours, reference_sine_table(64, 48, 64), atol=2e-5, rtol=0)
    other = sine_position_table(96, 72, 64).numpy()  # the table for 384x288 inputs
    np.testing.assert_allclose(other, reference_sine_table(96, 72, 64), atol=2e-5, rtol=0)


def detr_post_norm_layer(src, pos, p, prefix):
    """Hand-written official encoder layer (single head) with explicit matmuls; src (L, B, d)."""
    d = src.shape[-1]
    w_in, b_in = p[f"{prefix}.self_attn.in_proj_weight"], p[f"{prefix}.self_attn.in_proj_bias"]
    qk_in = src + pos
    q = qk_in @ w_in[:d].T + b_in[:d]
    k = qk_in @ w_in[d : 2 * d].T + b_in[d : 2 * d]
    v = src @ w_in[2 * d :].T + b_in[2 * d :]
    q, k, v = (t.permute(1, 0, 2) for t in (q, k, v))  # (B, L, d)
    attn = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1) @ v
    attn = attn.permute(1, 0, 2) @ p[f"{prefix}.self_attn.out_proj.weight"].T + p[f"{prefix}.self_attn.out_proj.bias"]

    def norm(x, name):
        mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5) * p[f"{prefix}.{name}.weight"] + p[f"{prefix}.{name}.bias"]

    src = norm(src + attn, "norm1")
    hidden = torch.relu(src @ p[f"{prefix}.linear1.weight"].T + p[f"{prefix}.linear1.bias"])
    return norm(src + hidden @ p[f"{prefix}.linear2.weight"].T + p[f"{prefix}.linear2.bias"], "norm2")


def test_encoder_matches_hand_written_official_layer():
    torch.manual_seed(0)
    encoder = TransformerEncoder([TransformerEncoderLayer(64, 1, 128, 0.1) for _ in range(2)]).eval()
    for param in encoder.parameters():
        torch.nn.init.normal_(param, std=0.2)
    h, w = 6, 5
    src = torch.randn(h * w, 3, 64)
    pos = sine_position_table(h, w, 64)
    params = dict(encoder.named_parameters())
    expected = src
    for n in range(2):
        expected = detr_post_norm_layer(expected, pos, params, f"layers.{n}")
    with torch.no_grad():
        torch.testing.assert_close(encoder(src, pos), expected, atol=1e-5, rtol=1e-5)


def test_converted_baseline_encoder_path_matches_reference():
    """The converted transpose_h_s adds the sine table to q and k in every layer over row-major tokens."""
    model = transpose_h_s(input_size=(32, 32)).eval()  # 8x8 tokens: small, and a table rebuilt for this size
    state = random_official_state_dict(seed=4)
    state = {k: v * 0.2 if v.is_floating_point() and "running_var" not in k else v for k, v in state.items()}
    report = convert_official_checkpoint(state, model)
    assert set(report.skipped) == {"pos_embedding"}
    feats = torch.randn(2, 64, 8, 8)
    src = feats.flatten(2).permute(2, 0, 1)
    expected = src
    pos = torch.from_numpy(reference_sine_table(8, 8, 64)).float()
    for n in range(4):
        expected = detr_post_norm_layer(expected, pos, state, f"global_encoder.layers.{n}")
    expected = expected.permute(1, 2, 0).reshape(2, 64, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_encoder(feats), expected, atol=1e-4, rtol=1e-4)
