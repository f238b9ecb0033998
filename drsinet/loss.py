"""DRSI-Net training loss: YOLO-Pose's ``ComputeLoss``, term by term.

DRSI-Net trains with the losses of the YOLO-Pose code it builds on (TexasInstruments/edgeai-yolov5, branch
``yolo-pose``; file:line below refer to it). :class:`DRSILoss` takes what the official ``ComputeLoss.__call__``
takes, raw head outputs and YOLO-Pose targets (see its docstring), and returns what it returns: the total times
the batch size and the five weighted terms.
:func:`drsinet.targets.to_yolo_pose_targets` converts our datasets' pixel targets to that layout.

Targets are matched to slots by :func:`drsinet.assign.build_targets` (``utils/loss.py:182-245``). At the ``n``
matched slots of level ``l``, in grid units of the level (``utils/loss.py:129-151``):

- **box** (``loss.py:132-136``): ``mean(1 - CIoU)`` between the decoded box ``(2 sigmoid(t_xy) - 0.5,
  (2 sigmoid(t_wh))^2 * anchor)`` and the target box (offset from the cell, size); CIoU as ``bbox_iou`` in
  ``utils/general.py:407-444`` (the 1e-7 guards sit in slightly different places, a difference below 1e-6).
- **kpt** (``loss.py:139-151``): ``2 t - 0.5`` is the predicted joint (no sigmoid), ``d`` its squared distance to
  the target joint, ``s = w * h`` the target box area, and a joint counts as labelled when its target x is non-zero
  (:mod:`drsinet.assign`). With ``kpt_loss="official"`` (default) the term is ``sum over labelled joints of
  (1 - exp(-d / (4 sigma^2 s + 1e-9)))`` divided by the number of labelled joints (the official
  ``kpt_loss_factor * mean``, ``loss.py:150-151``). ``kpt_loss="paper"`` uses the OKS of the paper's eq. 12 with
  COCO's ``k = 2 sigma`` instead, ``1 - exp(-d / (2 s (2 sigma)^2))``, whose exponent is half as large. When a level
  has matched slots but no labelled joint, the official code divides by zero (NaN); here the term is 0 then.
- **kpt_vis** (``loss.py:141-144``): BCE of each joint's visibility logit against "labelled", averaged over the
  ``n * K`` joints.
- **cls** (``loss.py:155-159``): skipped when there is one class, as here (person), so it is always 0. The class
  logit is then trained by nothing; its bias starts at ``log(0.6 / 0.01)`` (:class:`~drsinet.head.DRSIHead`).
- **obj** (``loss.py:125, 153, 165-166``), over every slot of the level: BCE of the objectness logit against
  ``(1 - gr) + gr * CIoU`` (``gr = 1.0``, ``train.py:232``: the CIoU itself, detached and clamped at 0) at matched
  slots and 0 elsewhere, times the level's balance weight (``loss.py:110``: 4.0, 1.0, 0.25, 0.06 for 4 levels).
  Where several matches name the same slot, the last one in :mod:`drsinet.assign`'s order wins, as the official
  index assignment does on the CPU (on CUDA the official result is undefined; ours is the same on every device).

Each term is summed over levels and multiplied by its gain (``loss.py:172-176``): box by ``box``, obj by ``obj``,
cls by ``cls``, keypoints by ``kpt`` and, as official, visibility by the *class* gain. The gains are
``data/hyp.scratch.yaml``'s, scaled as ``train.py:226-228`` does (:meth:`DRSILossWeights.scaled`); with one class
and 4 levels the visibility gain is ``0.5 * 1/80 * 3/4 = 0.0047``. The total is the sum of the five weighted terms
times the batch size (``loss.py:177-180``), which the SGD recipe's learning rate assumes.

An image without persons contributes only objectness. The objectness term reads every output element, so every
parameter receives a gradient (zero where unused) even for a batch without persons, as DDP requires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from posecommon.errors import InvalidInputError
from posecommon.evaluation.oks import resolve_sigmas
from posecommon.keypoints import KeypointSpec
from posecommon.ops.boxes import aligned_box_ciou, box_cxcywh_to_xyxy

from .assign import LevelTargets, build_targets
from .config import DRSINetConfig

__all__ = ["KPT_LOSS_FORMS", "LOSS_TERMS", "DRSILoss", "DRSILossWeights", "default_balance"]

LOSS_TERMS = ("box", "obj", "cls", "kpt", "kpt_vis")
"""Names of the loss terms, in the order of the returned dict (official ``lbox, lobj, lcls, lkpt, lkptv``)."""
KPT_LOSS_FORMS = ("official", "paper")
"""Keypoint loss forms of :class:`DRSILoss`: YOLO-Pose's code (``4 sigma^2 s``) or the paper's OKS (``8 sigma^2 s``)."""

_BALANCE_3 = (4.0, 1.0, 0.4)
_BALANCE_5 = (4.0, 1.0, 0.25, 0.06, 0.02)


def default_balance(num_levels: int) -> tuple[float, ...]:
    """YOLOv5's per-level objectness weights (``utils/loss.py:110``).

    ``(4, 1, 0.4)`` for 3 levels, else ``(4, 1, 0.25, 0.06, 0.02)[:L]``.

    Raises:
        InvalidInputError: more than 5 levels (pass ``balance`` explicitly then).
    """
    if num_levels == 3:
        return _BALANCE_3
    if not 1 <= num_levels <= len(_BALANCE_5):
        raise InvalidInputError(f"no default objectness balance for {num_levels} levels; pass balance=(...) per level")
    return _BALANCE_5[:num_levels]


@dataclass(frozen=True)
class DRSILossWeights:
    """Gains of the loss terms before YOLOv5's scaling (:meth:`scaled`), ``data/hyp.scratch.yaml`` of yolo-pose.

    Defaults: box 0.05 (line 14), kpt 0.10 (line 15), cls 0.5 (line 16), obj 1.0 (line 18). The keypoint
    visibility term uses the class gain (``utils/loss.py:175``).
    """

    box: float = 0.05
    obj: float = 1.0
    cls: float = 0.5
    kpt: float = 0.10

    def scaled(self, num_levels: int, image_size: float, num_classes: int = 1) -> DRSILossWeights:
        """Gains for ``num_levels`` output levels, a ``image_size``-pixel input and ``num_classes`` classes.

        As ``train.py:226-228``: box times ``3 / L``; cls times ``num_classes / 80 * 3 / L``; obj times
        ``(image_size / 640)^2 * 3 / L``; kpt unchanged.
        """
        levels = 3.0 / num_levels
        return replace(
            self,
            box=self.box * levels,
            obj=self.obj * (image_size / 640.0) ** 2 * levels,
            cls=self.cls * num_classes / 80.0 * levels,
        )


class DRSILoss:
    """YOLO-Pose's loss of DRSI-Net's raw head outputs (see the module docstring for every term).

    Call it as ``total, terms = loss(outputs, targets)``, with exactly what the official ``ComputeLoss`` receives.

    Args:
        config: Takes anchors, strides and the number of joints from this config. Either it or ``anchors`` and
            ``strides`` must be given; explicit arguments win over the config.
        anchors: Per level, the anchor ``(w, h)`` pairs in input pixels, as ``(L, A, 2)`` or as L flat sequences
            ``(w0, h0, w1, h1, ...)`` (the config's layout).
        strides: L strides.
        num_joints: K; defaults to the config's, else to the number of sigmas of a :class:`KeypointSpec`.
        sigmas: Per-joint OKS sigmas: a :class:`~posecommon.KeypointSpec` with sigmas, K floats, or ``None`` for
            the COCO sigmas (only when K = 17; the official code hard-codes them, ``utils/loss.py:119``).
        weights: Base gains; scaled per call by :meth:`DRSILossWeights.scaled`.
        balance: Per-level objectness weights (default :func:`default_balance`).
        image_size: Training input side used to scale the objectness gain (official ``imgsz``); ``None`` infers it
            per call from the outputs (``max(H_0, W_0) * stride_0``).
        anchor_threshold: Anchor matching size ratio (``anchor_t``).
        kpt_loss: ``"official"`` or ``"paper"`` (:data:`KPT_LOSS_FORMS`).

    Shape:
        - outputs: L tensors ``(B, A, H_l, W_l, 6 + 3K)`` of raw values (:class:`~drsinet.head.DRSIHead`), any
          float dtype, on any device.
        - targets: ``(n, 6 + 2K)`` float ``[image, class, cx, cy, w, h, x_1, y_1, ..., x_K, y_K]``: one row per
          person, ``image`` its index in the batch, ``class`` 0 (person), box centre and size and joint
          coordinates normalised to ``[0, 1]`` by the input width (x) and height (y), ``x_k = y_k = 0`` for an
          unlabelled joint (YOLO-Pose's collated targets, ``utils/datasets.py:600-650``). Moved to the outputs'
          device.
        - Returns: the total ``B * sum(terms)``, a scalar float32 tensor with gradient, and a dict of the five
          weighted terms (:data:`LOSS_TERMS`, per image, i.e. before the batch-size factor) as detached scalars.

    Raises:
        InvalidInputError: no anchors/strides, no sigmas for K != 17, an unknown ``kpt_loss``, or outputs/targets
            that do not fit.
    """

    def __init__(
        self,
        config: DRSINetConfig | None = None,
        *,
        anchors: torch.Tensor | Sequence[Sequence[float]] | None = None,
        strides: Sequence[int] | None = None,
        num_joints: int | None = None,
        sigmas: KeypointSpec | Sequence[float] | torch.Tensor | None = None,
        weights: DRSILossWeights | None = None,
        balance: Sequence[float] | None = None,
        image_size: int | None = None,
        anchor_threshold: float = 4.0,
        kpt_loss: str = "official",
    ) -> None:
        if anchors is None and config is not None:
            anchors = config.anchors
        if strides is None and config is not None:
            strides = config.strides
        if anchors is None or strides is None:
            raise InvalidInputError("DRSILoss needs a DRSINetConfig or both anchors= and strides=")
        if num_joints is None:
            if config is not None:
                num_joints = config.num_joints
            elif isinstance(sigmas, KeypointSpec):
                num_joints = sigmas.num_joints
            else:
                raise InvalidInputError("DRSILoss needs num_joints= (or a config / KeypointSpec that gives it)")
        if kpt_loss not in KPT_LOSS_FORMS:
            raise InvalidInputError(f"kpt_loss must be one of {KPT_LOSS_FORMS}, got {kpt_loss!r}")
        self.strides = tuple(int(s) for s in strides)
        self.anchors = torch.as_tensor(anchors, dtype=torch.float32).reshape(len(self.strides), -1, 2)
        self.num_joints = int(num_joints)
        self.sigmas = resolve_sigmas(sigmas, self.num_joints, dtype=torch.float32)
        self.weights = weights if weights is not None else DRSILossWeights()
        num_levels = len(self.strides)
        self.balance = tuple(float(b) for b in balance) if balance is not None else default_balance(num_levels)
        if len(self.balance) != num_levels:
            raise InvalidInputError(f"balance has {len(self.balance)} entries for {num_levels} levels")
        self.image_size = image_size
        self.anchor_threshold = anchor_threshold
        self.kpt_loss = kpt_loss
        # Denominator factor of d / (factor * sigma^2 * s): 4 in the official code, 2 * (2 sigma)^2 = 8 sigma^2 in
        # the paper's OKS.
        self._sigma_factor = 4.0 if kpt_loss == "official" else 8.0

    def _check(self, outputs: Sequence[torch.Tensor], targets: torch.Tensor) -> None:
        if len(outputs) != len(self.strides):
            raise InvalidInputError(f"expected {len(self.strides)} output levels, got {len(outputs)}")
        channels = 6 + 3 * self.num_joints
        batch = outputs[0].shape[0]
        expected = (batch, self.anchors.shape[1], channels)
        for raw in outputs:
            if raw.dim() != 5 or (raw.shape[0], raw.shape[1], raw.shape[4]) != expected:
                raise InvalidInputError(
                    f"each output must be (B, {self.anchors.shape[1]}, H, W, {channels}), got {tuple(raw.shape)}"
                )
        if targets.dim() != 2 or targets.shape[1] != 6 + 2 * self.num_joints:
            raise InvalidInputError(
                f"targets must be (n, {6 + 2 * self.num_joints}) = (image, class, cx, cy, w, h, K x (x, y)) "
                f"normalised by the input size, got {tuple(targets.shape)}"
            )
        if not targets.shape[0]:
            return
        if not torch.isfinite(targets).all():
            raise InvalidInputError("targets contain NaN or infinite values")
        image = targets[:, 0]
        if not ((image >= 0) & (image < batch) & (image == image.round())).all():
            raise InvalidInputError(f"target image indices (column 0) must be integers in [0, {batch})")
        if (targets[:, 1] != 0).any():
            raise InvalidInputError("target classes (column 1) must be 0: DRSI-Net has one class, person")
        if (targets[:, 4:6] < 0).any():
            raise InvalidInputError("target boxes must have non-negative width and height (columns 4, 5)")

    def __call__(
        self, outputs: Sequence[torch.Tensor], targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Compute the loss; see the class docstring for shapes and the module docstring for the terms."""
        self._check(outputs, targets)
        device = outputs[0].device
        batch_size = outputs[0].shape[0]
        targets = targets.to(device=device, dtype=torch.float32)
        sigmas_sq = self.sigmas.to(device) ** 2  # (K,)
        levels = build_targets(
            targets,
            self.anchors,
            self.strides,
            [(raw.shape[2], raw.shape[3]) for raw in outputs],
            self.anchor_threshold,
        )
        image_size = self.image_size or max(outputs[0].shape[2], outputs[0].shape[3]) * self.strides[0]
        gains = self.weights.scaled(len(outputs), image_size)
        zero = torch.zeros((), device=device)
        terms = dict.fromkeys(LOSS_TERMS, zero)
        for raw, level, balance in zip(outputs, levels, self.balance, strict=True):
            raw = raw.float()
            obj_target = torch.zeros(raw.shape[:4], device=device)
            if len(level):
                pred = raw[level.batch, level.anchor, level.grid_y, level.grid_x]  # (n, 6 + 3K)
                pred_xy = 2.0 * torch.sigmoid(pred[:, 0:2]) - 0.5
                pred_wh = (2.0 * torch.sigmoid(pred[:, 2:4])) ** 2 * level.anchor_wh
                ciou = aligned_box_ciou(
                    box_cxcywh_to_xyxy(torch.cat((pred_xy, pred_wh), dim=-1)), box_cxcywh_to_xyxy(level.box)
                )
                terms["box"] = terms["box"] + (1.0 - ciou).mean()
                joints = pred[:, 6:].reshape(-1, self.num_joints, 3)
                labelled = level.keypoints[..., 0] != 0  # (n, K), loss.py:143
                terms["kpt_vis"] = terms["kpt_vis"] + F.binary_cross_entropy_with_logits(
                    joints[..., 2], labelled.float()
                )
                distance_sq = ((2.0 * joints[..., 0:2] - 0.5 - level.keypoints) ** 2).sum(dim=-1)
                area = (level.box[:, 2] * level.box[:, 3])[:, None]
                similarity = torch.exp(-distance_sq / (area * self._sigma_factor * sigmas_sq + 1e-9))
                count = labelled.sum()
                if count:
                    terms["kpt"] = terms["kpt"] + ((1.0 - similarity) * labelled).sum() / count
                self._write_objectness(obj_target, level, ciou.detach().clamp(min=0))
            terms["obj"] = terms["obj"] + balance * F.binary_cross_entropy_with_logits(raw[..., 4], obj_target)
        gain = {"box": gains.box, "obj": gains.obj, "cls": gains.cls, "kpt": gains.kpt, "kpt_vis": gains.cls}
        weighted = {name: value * gain[name] for name, value in terms.items()}
        total = torch.stack(list(weighted.values())).sum() * batch_size
        return total, {name: value.detach() for name, value in weighted.items()}

    @staticmethod
    def _write_objectness(obj_target: torch.Tensor, level: LevelTargets, quality: torch.Tensor) -> None:
        """``obj_target[slot] = quality``, the last match winning where slots repeat (deterministic on any device)."""
        _, num_anchors, height, width = obj_target.shape
        slot = ((level.batch * num_anchors + level.anchor) * height + level.grid_y) * width + level.grid_x
        order = torch.arange(slot.shape[0], device=slot.device)
        last = torch.full((obj_target.numel(),), -1, dtype=torch.long, device=slot.device)
        last.scatter_reduce_(0, slot, order, reduce="amax")
        keep = last[slot] == order
        obj_target.view(-1)[slot[keep]] = quality[keep]
