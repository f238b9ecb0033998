"""Worker process of the training-step benchmark (:mod:`posecommon.app.bench.train`): one arm per process.

An *arm* is one model with one set of training options: a posezoo model built through the registry, or an official
model built from an official checkout. :mod:`posecommon.app.bench.train` starts one worker per arm and talks to it
through JSON lines (requests on stdin, replies on stdout prefixed by :data:`REPLY_PREFIX`, so whatever the official
code prints is skipped). Requests, in the order the controller sends them:

- ``memory``: the first training step of the process; replies the peak resident-set growth over the resident set
  before it (Linux: ``/proc/self/clear_refs`` resets the high-water mark, ``VmHWM`` reads it).
- ``profile``: one step under the PyTorch profiler; replies the peak of live CPU tensor bytes during the step over
  those live before it (the allocator's view: activations, gradients, temporaries).
- ``step``: one timed step; replies the seconds of forward + loss, backward and optimiser step.
- ``quit``.

A step is ``zero_grad(set_to_none=True)``, forward, loss, backward, optimiser step (``optimizer_step=False`` in the
spec leaves the last one out).

This module imports only the standard library and torch at import time, so it also runs as a script
(``python path/to/train_worker.py SPEC``) under an interpreter that has the official code's requirements but
not posezoo. The official adapters (:func:`official_yolopose_arm`, :func:`official_transpose_arm`) import the
official code from the checkout the spec names, inside the worker only, and read the batch that the controller
saved (the same images and targets as the posezoo arm of the same family).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "REPLY_PREFIX",
    "StepArm",
    "official_transpose_arm",
    "official_yolopose_arm",
    "peak_rss_growth_bytes",
    "peak_tensor_bytes",
    "posezoo_arm",
    "serve",
    "training_batch",
    "yolo_pose_layout",
]

REPLY_PREFIX = "@@posezoo-bench@@ "
"""Prefix of the worker's reply lines on stdout (other lines are the official code's prints)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class StepArm:
    """One model ready to train: ``forward_loss()`` runs forward and loss on the arm's fixed batch.

    Args:
        model: The trained module (its parameters get the gradients).
        forward_loss: Forward pass and loss on the batch; returns the scalar loss.
        optimizer: Steps after backward (None: no optimiser step).
        info: JSON-able facts reported once (parameter count, layout, ...).
    """

    model: nn.Module
    forward_loss: Callable[[], torch.Tensor]
    optimizer: torch.optim.Optimizer | None
    info: dict[str, Any]

    def zero_grad(self) -> None:
        """Drop the gradients (``set_to_none``), as a training loop does before each step."""
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        else:
            self.model.zero_grad(set_to_none=True)

    def step(self, zero_grad: bool = True) -> dict[str, float]:
        """One training step; returns wall seconds ``forward_loss_s``, ``backward_s``, ``optimizer_s``, ``total_s``
        and the process CPU seconds of the whole step, ``cpu_s`` (all threads).

        Args:
            zero_grad: Drop the previous gradients first (else the caller has).
        """
        if zero_grad:
            self.zero_grad()
        cpu = time.process_time()
        start = time.perf_counter()
        loss = self.forward_loss()
        forward = time.perf_counter()
        loss.backward()
        backward = time.perf_counter()
        if self.optimizer is not None:
            self.optimizer.step()
        end = time.perf_counter()
        if not torch.isfinite(loss.detach()):
            raise FloatingPointError(f"loss is {loss.item()}")
        return {
            "forward_loss_s": forward - start,
            "backward_s": backward - forward,
            "optimizer_s": end - backward,
            "total_s": end - start,
            "cpu_s": time.process_time() - cpu,
        }


# ----------------------------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_growth_bytes(fn: Callable[[], Any]) -> int | None:
    """Peak resident-set growth while ``fn`` runs: ``VmHWM`` after it minus ``VmRSS`` before (Linux; else None).

    The high-water mark is reset first by writing 5 to ``/proc/self/clear_refs``.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        fn()
        return None
    before = _status_kib("VmRSS")
    fn()
    peak = _status_kib("VmHWM")
    return None if before is None or peak is None else (peak - before) * 1024


def peak_tensor_bytes(fn: Callable[[], Any]) -> int:
    """Peak of live CPU tensor bytes while ``fn`` runs, over those live before (profiler allocation events).

    ``fn`` should free nothing that was allocated before it: the profiler reports the release of a block it saw
    allocated in an earlier profiling session but not of one it never saw, so such frees would shift the baseline
    by an amount that depends on what was profiled before (drop gradients before the call, not inside it).

    The same measurement as :func:`posecommon.measure.memory.peak_memory_bytes`, kept here because official arms run
    this file as a script under the official checkout's interpreter, where posecommon is not importable.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.device_type() == torch.autograd.DeviceType.CPU:
            running += event.nbytes()
            peak = max(peak, running)
    return peak


# ----------------------------------------------------------------------------------------------- posezoo models


def training_batch(model: Any, data_root: Path, batch: int, seed: int) -> Any:
    """``batch`` samples of ``model``'s training dataset on the synthetic split under ``data_root``, collated."""
    dataset = model.training_dataset(
        data_root / "annotations" / "person_keypoints_train.json", data_root / "train", train=True
    )
    task = model.training_task(batch)
    torch.manual_seed(seed)
    return task, task.collate([dataset[i % len(dataset)] for i in range(batch)])


def posezoo_arm(spec: dict[str, Any]) -> Any:
    """A :class:`StepArm` of a registered model.

    The model's own training task (loss), dataset (synthetic split at ``spec["data_root"]``) and recipe optimiser;
    ``spec["variant"]`` one of :data:`posecommon.app.bench.train.VARIANTS`.
    """
    from posecommon.registry import create_model
    from posecommon.train.optim import build_optimizer

    size, variant = tuple(spec["size"]), spec.get("variant", "eager")
    torch.manual_seed(int(spec.get("seed", 0)))
    model = create_model(spec["name"], input_size=size)
    task, batch = training_batch(model, Path(spec["data_root"]), int(spec["batch"]), int(spec.get("seed", 0)))
    batch = task.to_device(batch, torch.device("cpu"))
    recipe = model.train_recipe
    optimizer = build_optimizer(model, recipe.optimizer, recipe.lr, recipe.momentum, recipe.weight_decay)
    model.train()
    if variant == "grad_checkpointing":
        model.set_grad_checkpointing(True)
    if variant == "no_memory_lean":
        model.set_memory_lean(False)
    if variant == "channels_last":
        model.to(memory_format=torch.channels_last)
        batch = {k: _channels_last(v) for k, v in batch.items()}
    runner = torch.compile(model) if variant == "compile" else model
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16")

    def forward_loss() -> torch.Tensor:
        with autocast:
            loss, _ = task.loss(runner, batch)
        return loss

    info = {"params": sum(p.numel() for p in model.parameters()), "variant": variant}
    return StepArm(model, forward_loss, optimizer if spec.get("optimizer_step", True) else None, info)


def _channels_last(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.dim() == 4:
        return value.contiguous(memory_format=torch.channels_last)
    return value


# ----------------------------------------------------------------------------------------------- official code


def _import_from(root: Path) -> None:
    """Put ``root`` first on ``sys.path`` and stub ``torchvision`` when it is not installed.

    The YOLO-Pose code imports torchvision at module level for NMS and classifier loading (``utils/general.py:20``,
    ``utils/torch_utils.py:18``), neither of which a training step runs; a CPU build of torchvision matching the
    installed torch is often unavailable, so an empty module stands in.
    """
    sys.path.insert(0, str(root))
    try:
        import torchvision  # noqa: F401
    except ImportError:
        stub = types.ModuleType("torchvision")
        stub.ops = types.ModuleType("torchvision.ops")  # type: ignore[attr-defined]
        stub.models = types.ModuleType("torchvision.models")  # type: ignore[attr-defined]
        sys.modules.update({"torchvision": stub, "torchvision.ops": stub.ops, "torchvision.models": stub.models})


def _integer_clamp_accepts_tensor_bounds() -> None:
    """Let ``Tensor.clamp_`` of an integer tensor take 0-dim float tensor bounds, as torch < 1.12 did.

    ``utils/loss.py:236`` (branch yolo-pose) clamps the long grid indices with ``gain[3] - 1``, a float tensor,
    which newer torch refuses ("result type Float can't be cast to ... long"); a whole-valued 0-dim bound is passed
    on as the Python integer it holds (the grid size minus one). Applied inside the official YOLO-Pose worker only.
    """
    original = torch.Tensor.clamp_

    def as_int(bound: Any) -> Any:
        if isinstance(bound, torch.Tensor) and bound.dim() == 0 and float(bound).is_integer():
            return int(bound)
        return bound

    def clamp_(self: torch.Tensor, min: Any = None, max: Any = None) -> torch.Tensor:
        if not self.is_floating_point():
            min, max = as_int(min), as_int(max)
        return original(self, min, max)

    torch.Tensor.clamp_ = clamp_  # type: ignore[method-assign]


def yolo_pose_layout(targets: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel targets ``(M, 1 + 4 + 3K)`` (image, x1, y1, x2, y2, K x (x, y, v)) -> YOLO-Pose's ``(M, 6 + 2K)``.

    ``[image, class 0, cx / W, cy / H, w / W, h / H, x_k / W, y_k / H ...]`` with unlabelled joints ``(0, 0)``:
    the layout ``ComputeLoss`` reads (``utils/loss.py:182-245`` on branch yolo-pose), the same conversion as
    :func:`drsinet.targets.to_yolo_pose_targets` (this module cannot import posezoo's families).
    """
    scale = targets.new_tensor((width, height))
    top_left, bottom_right = targets[:, 1:3], targets[:, 3:5]
    joints = targets[:, 5:].reshape(targets.shape[0], -1, 3)
    joint_xy = torch.where(joints[..., 2:] > 0, joints[..., :2] / scale, torch.zeros_like(joints[..., :2]))
    centre, size = (top_left + bottom_right) / 2 / scale, (bottom_right - top_left) / scale
    return torch.cat((targets[:, :1], torch.zeros_like(targets[:, :1]), centre, size, joint_xy.flatten(1)), dim=1)


def official_yolopose_arm(spec: dict[str, Any]) -> StepArm:
    """The official YOLO-Pose model (``models/yolo.py`` ``Model`` from ``models/hub/<name>.yaml``, the
    ``dw_conv_kpt`` head those files select) with ``utils/loss.py`` ``ComputeLoss(kpt_label=True)``, the gains of
    ``data/hyp.scratch.yaml`` scaled as ``train.py:226-232`` scales them, and ``train.py:115-129``'s SGD.

    Spec keys: ``source_dir`` (the checkout, branch yolo-pose), ``name`` (``yolov5s6_kpts``, ``yolov5l6_kpts``,
    ...), ``size`` ``[H, W]`` and ``batch_file`` (``images`` uint8 ``(B, 3, H, W)``, pixel ``targets``).
    """
    root = Path(spec["source_dir"])
    _import_from(root)
    _integer_clamp_accepts_tensor_bounds()
    import yaml
    from models.yolo import Model
    from utils.loss import ComputeLoss

    model = Model(str(root / "models" / "hub" / f"{spec['name']}.yaml"), ch=3, nc=1)
    hyp = yaml.safe_load((root / "data" / "hyp.scratch.yaml").read_text())
    num_levels, image_size = model.model[-1].nl, max(spec["size"])
    hyp["box"] *= 3.0 / num_levels
    hyp["cls"] *= 1 / 80.0 * 3.0 / num_levels
    hyp["obj"] *= (image_size / 640) ** 2 * 3.0 / num_levels
    hyp["label_smoothing"] = 0.0
    model.nc, model.hyp, model.gr = 1, hyp, 1.0
    compute_loss = ComputeLoss(model, kpt_label=True)
    batch = torch.load(spec["batch_file"], weights_only=True)
    images = batch["images"].float() / 255.0
    targets = yolo_pose_layout(batch["targets"].float(), *images.shape[-2:])
    norms, weights, biases = [], [], []
    for module in model.modules():
        if hasattr(module, "bias") and isinstance(module.bias, nn.Parameter):
            biases.append(module.bias)
        if isinstance(module, nn.BatchNorm2d):
            norms.append(module.weight)
        elif hasattr(module, "weight") and isinstance(module.weight, nn.Parameter):
            weights.append(module.weight)
    optimizer = torch.optim.SGD(norms, lr=hyp["lr0"], momentum=hyp["momentum"], nesterov=True)
    optimizer.add_param_group({"params": weights, "weight_decay": hyp["weight_decay"]})
    optimizer.add_param_group({"params": biases})
    model.train()

    def forward_loss() -> torch.Tensor:
        loss, _ = compute_loss(model(images), targets)
        return loss

    return StepArm(model, forward_loss, optimizer if spec.get("optimizer_step", True) else None, {})


def official_transpose_arm(spec: dict[str, Any]) -> StepArm:
    """The official TransPose-H-S (``lib/models/transpose_h.py`` ``get_pose_net`` from
    ``experiments/coco/transpose_h/TP_H_w32_256x192_stage3_1_4_d64_h128_relu_enc4_mh1.yaml``, weights from its
    ``init_weights`` without the ImageNet file) with ``lib/core/loss.py`` ``JointsMSELoss(use_target_weight=True)``
    and ``lib/utils/utils.py`` ``get_optimizer`` (Adam, lr 1e-4).

    Spec keys: ``source_dir``, ``size`` ``[H, W]`` and ``batch_file`` (``image`` uint8 ``(B, 3, H, W)``,
    ``heatmaps``, ``target_weight``).
    """
    root = Path(spec["source_dir"])
    _import_from(root / "lib")
    from config import cfg
    from core.loss import JointsMSELoss
    from models.transpose_h import get_pose_net
    from utils.utils import get_optimizer

    config = cfg.clone()
    config.defrost()
    name = spec.get("name") or "TP_H_w32_256x192_stage3_1_4_d64_h128_relu_enc4_mh1"
    config.merge_from_file(str(root / "experiments" / "coco" / "transpose_h" / f"{name}.yaml"))
    height, width = spec["size"]
    config.MODEL.IMAGE_SIZE = [width, height]
    config.MODEL.HEATMAP_SIZE = [width // 4, height // 4]
    config.freeze()
    model = get_pose_net(config, is_train=False)
    model.init_weights("")
    criterion = JointsMSELoss(use_target_weight=True)
    batch = torch.load(spec["batch_file"], weights_only=True)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    images = (batch["image"].float() / 255.0 - mean) / std
    heatmaps, target_weight = batch["heatmaps"].float(), batch["target_weight"].float()
    if target_weight.dim() == 2:
        target_weight = target_weight[..., None]
    optimizer = get_optimizer(config, model)
    model.train()

    def forward_loss() -> torch.Tensor:
        return criterion(model(images), heatmaps, target_weight)

    return StepArm(model, forward_loss, optimizer if spec.get("optimizer_step", True) else None, {})


def _build(spec: dict[str, Any]) -> StepArm:
    kind = spec["kind"]
    if kind == "official_yolopose":
        arm = official_yolopose_arm(spec)
    elif kind == "official_transpose":
        arm = official_transpose_arm(spec)
    elif kind == "posezoo":
        arm = posezoo_arm(spec)
    else:
        raise ValueError(f"unknown arm kind {kind!r}")
    arm.info.setdefault("params", sum(p.numel() for p in arm.model.parameters()))
    return arm


# ----------------------------------------------------------------------------------------------- protocol


def _reply(message: dict[str, Any]) -> None:
    stream = sys.__stdout__  # sys.stdout is stderr while the worker serves (see main)
    stream.write(REPLY_PREFIX + json.dumps(message) + "\n")
    stream.flush()


def serve(spec: dict[str, Any]) -> None:
    """Build the arm of ``spec``, reply ``ready``, then answer requests from stdin until ``quit`` or EOF."""
    torch.set_num_threads(int(spec.get("threads") or torch.get_num_threads()))
    torch.manual_seed(int(spec.get("seed", 0)))
    arm = _build(spec)
    _reply({"ready": True, "info": arm.info, "threads": torch.get_num_threads(), "pid": os.getpid()})
    for line in sys.stdin:
        request = line.strip()
        if request == "quit":
            break
        try:
            if request == "memory":
                _reply({"rss_growth_bytes": peak_rss_growth_bytes(arm.step)})
            elif request == "profile":
                arm.zero_grad()
                _reply({"tensor_peak_bytes": peak_tensor_bytes(lambda: arm.step(zero_grad=False))})
            elif request == "step":
                _reply({"times": arm.step()})
            else:
                _reply({"error": f"unknown request {request!r}"})
        except Exception as err:  # reported to the controller, which raises it with the arm's name
            traceback.print_exc()
            _reply({"error": f"{type(err).__name__}: {err}"})


def main(argv: list[str] | None = None) -> int:
    """``python train_worker.py SPEC_JSON`` (or ``-m posecommon.app.bench.train_worker``); returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: train_worker.py SPEC_JSON", file=sys.stderr)
        return 2
    spec = json.loads(args[0])
    with contextlib.redirect_stdout(sys.stderr):  # what the official code prints goes to stderr, not among replies
        try:
            serve(spec)
        except Exception as err:
            _reply({"error": f"{type(err).__name__}: {err}"})
            raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
