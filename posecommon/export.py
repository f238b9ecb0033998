"""ONNX export of posezoo models, with decoding inside the graph for DRSI-Net, and a check against PyTorch.

What the exported graphs compute (input ``images``: ``(B, 3, H, W)`` float32, already normalised as
``model.preprocess`` describes; ``B`` is a dynamic axis unless ``dynamic_batch=False``):

- VTTransPose / TransPose-H-S: ``heatmaps`` ``(B, K, h, w)``, the raw forward output (decode with
  :class:`~posecommon.codecs.HeatmapCodec` or any TransPose-style decoder).
- DRSI-Net, raw (default): one output per level, ``level_s8``, ``level_s16``, ... ``(B, A_l, H_l, W_l, 6 + 3K)``.
- DRSI-Net with ``include_decode=True``: the YOLO-Pose formulas of :func:`drsinet.decode.decode_outputs` run in the
  graph (the family supplies the wrapper through :meth:`~posecommon.PoseModel.export_module`) and give ``boxes``
  ``(B, N, 4)`` xyxy, ``scores`` ``(B, N)`` and ``keypoints`` ``(B, N, K, 3)`` ``(x, y, confidence)``, all in
  model-input pixels. **NMS stays outside the graph** (it is data-dependent; use :func:`posecommon.ops.nms` or your
  runtime's NMS). With ``top_k`` the graph keeps only the ``top_k`` best-scoring candidates per image, sorted by
  descending score, so ``N = top_k`` and the NMS input is small, and adds ``indices`` ``(B, top_k)`` int64, each
  candidate's position in the full level/anchor/row/column order; without it ``N`` is every anchor of every level.

Export uses :func:`torch.onnx.export` with the ``torch.export``-based exporter (``dynamo=True``, which needs
``onnxscript``); its lowest supported opset is 18, which is the default here (the exporter's down-conversion to 17
produces invalid ``Split`` nodes). By default a BatchNorm-folded copy of the model is exported (``model.fuse()``
on a deep copy, so the caller's model is untouched). The file's ``metadata_props`` record the model name,
input size and preprocessing so the graph can be used without posezoo.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import InvalidInputError
from .extras import require_extra

if TYPE_CHECKING:
    from .model import PoseModel

__all__ = ["MIN_OPSET", "OnnxCheckReport", "check_onnx", "export_module", "export_onnx", "onnx_session"]

logger = logging.getLogger(__name__)

MIN_OPSET = 18
"""Lowest opset the ``torch.export``-based ONNX exporter implements (and the default of :func:`export_onnx`)."""


def _is_detector(model: nn.Module) -> bool:
    return hasattr(model, "anchor_tensor") and hasattr(model.config, "strides")


def export_module(model: PoseModel, include_decode: bool = False, top_k: int | None = None) -> nn.Module:
    """The module whose forward an export of ``model`` computes: ``model.export_module(...)``, the model itself or
    the family's decoding wrapper (DRSI-Net: :class:`drsinet.export.DecodedDRSINet`).

    Raises:
        InvalidInputError: ``include_decode`` for a model that cannot decode in the graph, or ``top_k`` without
            ``include_decode`` or below 1.
    """
    if top_k is not None and not include_decode:
        raise InvalidInputError("top_k needs include_decode=True")
    if top_k is not None and top_k < 1:
        raise InvalidInputError(f"top_k must be positive, got {top_k}")
    return model.export_module(include_decode, top_k)


def _output_names(model: PoseModel, include_decode: bool, top_k: int | None) -> list[str]:
    if include_decode:
        return ["boxes", "scores", "keypoints"] + ([] if top_k is None else ["indices"])
    if _is_detector(model):
        return [f"level_s{stride}" for stride in model.config.strides]
    return ["heatmaps"]


def export_onnx(
    model: PoseModel,
    path: str | Path,
    input_size: tuple[int, int] | None = None,
    opset: int = MIN_OPSET,
    dynamic_batch: bool = True,
    include_decode: bool = False,
    top_k: int | None = None,
    fuse: bool = True,
) -> Path:
    """Export ``model`` to an ONNX file (see the module docstring for the graphs' inputs and outputs).

    Args:
        model: A posezoo model (VTTransPose family or DRSI-Net); it is not modified.
        path: Output ``.onnx`` file (parent directories are created).
        input_size: ``(H, W)`` of the graph's input; defaults to ``model.preprocess.input_size``. DRSI-Net needs
            multiples of 64.
        opset: ONNX opset, at least :data:`MIN_OPSET`.
        dynamic_batch: Make the batch axis dynamic (otherwise the graph is fixed to batch 1).
        include_decode: DRSI-Net only: decode boxes, scores and keypoints in the graph.
        top_k: With ``include_decode``: keep the ``top_k`` best candidates per image.
        fuse: Export a BatchNorm-folded copy (:meth:`~posecommon.PoseModel.fuse`); the outputs agree with the
            unfused model to float rounding.

    The graph is float32 (weights, input and outputs), also for a model held in bfloat16 or float16: the
    exported copy is converted with ``.float()``.

    Returns:
        ``path``.

    Raises:
        InvalidInputError: unsupported opset, input size or option combination.
        MissingDependencyError: ``onnx`` or ``onnxscript`` is not installed (an ``ImportError``; the message
            gives the pip commands).
    """
    if opset < MIN_OPSET:
        raise InvalidInputError(f"opset must be >= {MIN_OPSET} (the torch.export-based exporter's lowest), got {opset}")
    _require("onnx", "onnxscript")
    import onnx

    size = tuple(int(v) for v in (input_size or model.preprocess.input_size))
    if len(size) != 2 or min(size) <= 0:
        raise InvalidInputError(f"input_size must be (H, W), got {input_size}")
    if _is_detector(model) and any(v % max(model.config.strides) for v in size):
        raise InvalidInputError(f"DRSI-Net input_size must be multiples of {max(model.config.strides)}, got {size}")
    device = next(model.parameters()).device
    source = copy.deepcopy(model).eval().float()  # float32 graph whatever precision the model is held in
    if fuse:
        source.fuse()
    module = export_module(source, include_decode, top_k).eval()
    example = torch.randn(2 if dynamic_batch else 1, 3, *size, device=device)
    dynamic_shapes = {"x": {0: torch.export.Dim("batch", min=1)}} if dynamic_batch else None
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            (example,),
            input_names=["images"],
            output_names=_output_names(model, include_decode, top_k),
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            verbose=False,
        )
    proto = program.model_proto
    metadata = {
        "model_name": getattr(model, "model_name", "") or type(model).__name__,
        "input_size": json.dumps(list(size)),
        "preprocess": json.dumps(model.preprocess.to_dict()),
        "fused": str(fuse),
        "decoded": str(include_decode),
        "top_k": "" if top_k is None else str(top_k),
        "keypoint_names": json.dumps(list(model.keypoint_spec.names)),
    }
    if _is_detector(model):
        metadata["strides"] = json.dumps(list(model.config.strides))
        metadata["anchors"] = json.dumps(model.anchor_tensor().tolist())
    onnx.helper.set_model_props(proto, metadata)
    onnx.save(proto, str(out))
    logger.info("exported %s at %s to %s (opset %d)", metadata["model_name"], size, out, opset)
    return out


def _require(*modules: str) -> None:
    require_extra("onnx", modules, "ONNX export")


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU provider.

    Args:
        path: ONNX file.
        threads: Intra-op threads (default: onnxruntime's choice). Spin-waiting is turned off so the process CPU
            time of a run is the work done.
    """
    _require("onnxruntime")
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class OnnxCheckReport:
    """Result of :func:`check_onnx`: the largest absolute difference per output and batch size."""

    max_abs_diff: dict[str, float] = field(default_factory=dict)
    atol: float = 1e-4
    rtol: float = 1e-4
    ok: bool = True


def _expected_outputs(reference: nn.Module, x: torch.Tensor, top_k: int | None, got: list[Any]) -> list[torch.Tensor]:
    """PyTorch outputs matching the ONNX outputs ``got``.

    With ``top_k`` the reference is the full decode: its scores' top-k values must equal the graph's scores, and its
    boxes/keypoints/scores gathered at the graph's ``indices`` must equal the graph's, which holds whatever order
    the two runtimes give candidates with equal scores.
    """
    with torch.no_grad():
        out = reference(x)
    out = [out] if isinstance(out, torch.Tensor) else list(out)
    out = [t.detach().float().cpu() for t in out]
    if top_k is None:
        return out
    boxes, scores, keypoints = out
    index = torch.from_numpy(got[3]).long()
    joints = keypoints.shape[2]
    top_scores = torch.topk(scores, top_k, dim=1).values
    torch.testing.assert_close(torch.gather(scores, 1, index), top_scores, atol=1e-6, rtol=1e-5)
    return [
        torch.gather(boxes, 1, index[..., None].expand(-1, -1, 4)),
        top_scores,
        torch.gather(keypoints, 1, index[..., None, None].expand(-1, -1, joints, 3)),
        index.float(),
    ]


def check_onnx(
    path: str | Path,
    model: PoseModel,
    include_decode: bool = False,
    top_k: int | None = None,
    batch_sizes: Sequence[int] = (1, 3),
    atol: float = 1e-4,
    rtol: float = 1e-4,
    seed: int = 0,
) -> OnnxCheckReport:
    """Run the ONNX file with onnxruntime and ``model`` with PyTorch on the same random inputs and compare.

    The PyTorch side is ``model`` as given (typically unfused), so the check covers fusion and export together.
    For a ``top_k`` graph the candidates are compared through its ``indices`` output (see the module docstring).

    Args:
        path: File written by :func:`export_onnx`.
        model: The model that was exported (same weights).
        include_decode: Whether the file was exported with decoding.
        top_k: The ``top_k`` it was exported with.
        batch_sizes: Batch sizes to run (more than one checks the dynamic batch axis).
        atol: Absolute tolerance.
        rtol: Relative tolerance (``|a - b| <= atol + rtol * |b|`` elementwise, as ``torch.allclose``).
        seed: Seed of the random inputs.

    Returns:
        An :class:`OnnxCheckReport`; ``ok`` is False when any output differs beyond the tolerance (or the graph's
        top-k candidates are not the reference's best-scoring ones).
    """
    session = onnx_session(path)
    feed = session.get_inputs()[0]
    height, width = feed.shape[2], feed.shape[3]
    reference = export_module(model, include_decode, None)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    diffs: dict[str, float] = {}
    ok = True
    try:
        for batch in batch_sizes:
            x = torch.randn(batch, 3, height, width, generator=gen)
            got = session.run(None, {feed.name: x.numpy()})
            try:
                expected = _expected_outputs(reference, x.to(device), top_k, got)
            except AssertionError:
                logger.warning("%s: the graph's top-%s candidates are not the best-scoring ones", path, top_k)
                expected, ok = [], False
            for meta, want, have in zip(session.get_outputs(), expected, got, strict=False):
                have_t = torch.from_numpy(have).float()
                diffs[f"{meta.name}@b{batch}"] = float((have_t - want).abs().max()) if want.numel() else 0.0
                ok = ok and have_t.shape == want.shape and torch.allclose(have_t, want, atol=atol, rtol=rtol)
    finally:
        model.train(was_training)
    return OnnxCheckReport(diffs, atol, rtol, ok)
