"""ONNX export stays float32 unless asked: weights, input and outputs, even for a model held in bfloat16."""

import numpy as np
import onnx
import pytest
import torch

from posecommon import create_model
from posecommon.export import export_onnx, onnx_session


@pytest.mark.slow
def test_export_of_a_bf16_model_is_float32(tmp_path):
    torch.manual_seed(0)
    # One stage-3 module (two V blocks) and two encoder layers: every block type, a quarter of the tracing time.
    kwargs = {"stage3_modules": 1, "num_vblocks": 2, "num_layers": 2}
    model = create_model("vttranspose_h_s", input_size=(64, 48), **kwargs).eval().to(torch.bfloat16)
    path = export_onnx(model, tmp_path / "bf16.onnx", dynamic_batch=False)
    assert next(model.parameters()).dtype == torch.bfloat16, "the caller's model is left as it was"
    graph = onnx.load(str(path)).graph
    float32 = onnx.TensorProto.FLOAT
    low = {onnx.TensorProto.BFLOAT16, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}
    weights = [t for t in graph.initializer if t.data_type != onnx.TensorProto.INT64]  # int64: shape constants
    assert len(weights) > 100 and all(t.data_type == float32 for t in weights)
    assert all(v.type.tensor_type.elem_type == float32 for v in [*graph.input, *graph.output])
    assert not any(v.type.tensor_type.elem_type in low for v in graph.value_info)
    x = torch.randn(1, 3, 64, 48)
    (got,) = onnx_session(path, threads=1).run(None, {"images": x.numpy()})
    with torch.no_grad():
        want = model.float().fuse()(x)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-4)
