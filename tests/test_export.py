"""ONNX export: onnxruntime agrees with PyTorch to 1e-4 on batch 1 and 3 of one file (dynamic batch)."""

import json

import onnx
import pytest
import torch
from torch import nn

from posecommon import create_model
from posecommon.app.cli import main
from posecommon.errors import InvalidInputError
from posecommon.export import check_onnx, export_onnx

# vttranspose_h_s is exported (and checked the same way) by test_cli_export_writes_and_checks: each export of a
# full-size model costs about 40 s of tracing on 2 cores, so no model is exported twice here.
SIZES = {"transpose_h_s": (64, 48), "drsi_net_s": (128, 128)}


def _nontrivial_(model: nn.Module) -> nn.Module:
    """O(1) conv weights and non-trivial BatchNorm statistics, so 1e-4 is a real tolerance and fusion matters."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data = torch.randn(m.weight.shape, generator=gen) * (0.5 / m.weight[0].numel()) ** 0.5
        elif isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) * 0.5 + 0.5)
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SIZES))
def test_onnxruntime_matches_pytorch_with_dynamic_batch(tmp_path, name):
    model = _nontrivial_(create_model(name, input_size=SIZES[name]))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    assert model.state_dict().keys() == before.keys()  # the exported copy was fused, not the model
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    graph = onnx.load(str(path))
    assert graph.opset_import[0].version >= 17
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    assert not any(node.op_type == "BatchNormalization" for node in graph.graph.node)
    report = check_onnx(path, model, batch_sizes=(1, 3))
    assert report.ok, report.max_abs_diff
    assert any(k.endswith("@b1") for k in report.max_abs_diff) and any(k.endswith("@b3") for k in report.max_abs_diff)
    with torch.no_grad():
        out = model(torch.randn(1, 3, *SIZES[name]))
    scale = max(float(o.abs().max()) for o in ([out] if isinstance(out, torch.Tensor) else out))
    assert scale > 0.1  # outputs are O(1), so the 1e-4 check is meaningful


@pytest.mark.slow
def test_drsinet_export_with_decoding(tmp_path):
    # Without top-k; the top-k graph (with its "indices" output) is exported and checked by
    # tests/test_examples.py::test_export_onnx_agrees_with_pytorch (--decode --top-k 20).
    top_k = None
    model = _nontrivial_(create_model("drsi_net_s", input_size=(128, 128)))
    path = export_onnx(model, tmp_path / "decoded.onnx", include_decode=True, top_k=top_k)
    report = check_onnx(path, model, include_decode=True, top_k=top_k, batch_sizes=(1, 3))
    assert report.ok, report.max_abs_diff
    graph = onnx.load(str(path))
    names = [o.name for o in graph.graph.output]
    assert names[:3] == ["boxes", "scores", "keypoints"]
    assert (names[3:] == ["indices"]) == (top_k is not None)
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["model_name"] == "drsi_net_s" and json.loads(props["strides"]) == [8, 16, 32, 64]
    assert json.loads(props["input_size"]) == [128, 128] and json.loads(props["preprocess"])["resize"] == "letterbox"


def test_export_rejects_bad_options(tmp_path):
    with torch.device("meta"):
        vtt = create_model("vttranspose_h_s")
        drsi = create_model("drsi_net_s")
    with pytest.raises(InvalidInputError, match="opset"):
        export_onnx(vtt, tmp_path / "a.onnx", opset=11)
    with pytest.raises(InvalidInputError, match="include_decode"):
        export_onnx(vtt, tmp_path / "a.onnx", include_decode=True)
    with pytest.raises(InvalidInputError, match="multiples of 64"):
        export_onnx(drsi, tmp_path / "a.onnx", input_size=(100, 128))


@pytest.mark.slow
def test_cli_export_writes_and_checks(tmp_path, capsys):
    out = tmp_path / "v.onnx"
    status = main(["export", "vttranspose_h_s", "--format", "onnx", "--out", str(out), "--input-size", "64", "48"])
    text = capsys.readouterr().out
    assert status == 0 and out.is_file()
    assert "onnxruntime agrees with PyTorch" in text
    graph = onnx.load(str(out))
    assert graph.opset_import[0].version >= 17
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    assert not any(node.op_type == "BatchNormalization" for node in graph.graph.node)
    assert "at batch sizes 1, 3 " in text, text
