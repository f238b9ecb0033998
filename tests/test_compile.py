"""torch.compile (default inductor backend on CPU) gives the eager outputs for both families."""

import pytest
import torch

from posecommon import create_model


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "size", "kwargs"),
    [
        # One stage-3 module (two V blocks) and two encoder layers keep the compile short; every block type is in.
        ("vttranspose_h_s", (64, 48), {"stage3_modules": 1, "num_vblocks": 2, "num_layers": 2}),
        ("drsi_net_s", (128, 128), {}),
    ],
)
def test_compiled_matches_eager(name, size, kwargs):
    torch.manual_seed(0)
    model = create_model(name, input_size=size, **kwargs).eval().fuse()
    x = torch.randn(2, 3, *size)
    compiled = torch.compile(model)
    with torch.no_grad():
        expected = model(x)
        got = compiled(x)
    expected = [expected] if isinstance(expected, torch.Tensor) else expected
    got = [got] if isinstance(got, torch.Tensor) else got
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)
