"""DRSI-Net training loss, as YOLO-Pose (YOLOv5 detection losses plus an OKS keypoint loss).

Targets are matched to anchors and cells by :func:`drsinet.assign.assign_targets` (YOLOv5: size ratio below 4,
centre cell plus the two nearest neighbours). At every matched slot ``(image, anchor, row, column)`` of level ``l``
(stride ``s``), the raw prediction is decoded exactly as :mod:`drsinet.decode` does, in input pixels:

- **box**: ``1 - CIoU(decoded box, target box)``, averaged over the level's slots;
- **cls**: BCE of the person logit against 1, averaged over the level's slots (one class; YOLOv5 skips this term
  when there is one class, the spec asks for it, and at inference the score is ``sigmoid(obj) * sigmoid(cls)``);
- **kpt**: ``1 - exp(-d^2 / (2 s^2 k^2))`` per labelled joint (``v > 0``), with ``d`` the pixel distance between
  the decoded and the target joint, ``s^2`` the target box area ``w * h`` (the targets carry no segmentation area)
  and ``k = 2 sigma`` (COCO's OKS constant), averaged over all labelled joints of the level's slots (1 - OKS);
- **kpt_vis**: BCE of each joint's visibility logit against ``v > 0``, averaged over the level's slots and joints;
- **obj** (every slot of the level): BCE of the objectness logit against the IoU of the decoded and the target
  box at matched slots (detached, clamped at 0; the largest one when several targets share a slot) and 0
  elsewhere, averaged over the level and multiplied by the level's balance weight (YOLOv5: 4.0, 1.0, 0.25, 0.06
  for P3-P6; 4.0, 1.0, 0.4 for three levels). YOLOv5 uses the CIoU value as this target; the spec says IoU.

Each term is summed over levels, then multiplied by its gain (:class:`DRSILossWeights`, scaled as YOLOv5's
``train.py`` does). The total is the sum of the five weighted terms times the batch size ``B`` (YOLOv5's
convention, which its SGD recipe of lr 1e-2 / momentum 0.937 / weight decay 5e-4 and the paper's 3e-3 assume);
pass ``scale_by_batch=False`` for the per-image mean. An image without persons contributes only objectness. The
objectness term reads every output element, so every parameter of the model receives a gradient (zero where
unused) even for a batch without persons, as DDP requires.

Target layout (what :meth:`posecommon.data.MultiPersonCocoDataset.collate` produces): ``(M, 1 + 4 + 3K)``,
one row per person of the batch, column 0 the image index in the batch, columns 1-4 the box ``(x1, y1, x2, y2)``,
then ``(x, y, v)`` per joint with ``v`` the COCO flag (0 unlabelled, then ``x, y`` are ignored); coordinates in
input pixels, in the frame the decoder outputs (no half-pixel shift is applied).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from posecommon.box_ops import aligned_box_ciou, aligned_box_iou, box_cxcywh_to_xyxy, box_xyxy_to_cxcywh
from posecommon.errors import InvalidInputError
from posecommon.evaluation.oks import resolve_sigmas
from posecommon.keypoints import KeypointSpec

from .assign import assign_targets
from .config import DRSINetConfig

__all__ = ["LOSS_TERMS", "DRSILoss", "DRSILossWeights", "default_balance"]

LOSS_TERMS = ("box", "obj", "cls", "kpt", "kpt_vis")
"""Names of the loss terms, in the order of the returned dict."""

_BALANCE_3 = (4.0, 1.0, 0.4)
_BALANCE_5 = (4.0, 1.0, 0.25, 0.06, 0.02)


def default_balance(num_levels: int) -> tuple[float, ...]:
    """YOLOv5's per-level objectness weights: ``(4, 1, 0.4)`` for 3 levels, else ``(4, 1, 0.25, 0.06, 0.02)[:L]``.

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
    """Gains of the five loss terms before YOLOv5's scaling (:meth:`scaled`).

    Defaults: YOLOv5's ``hyp.scratch`` box 0.05, obj 1.0, cls 0.5, and YOLO-Pose's keypoint gain 0.1. YOLO-Pose
    reuses the class gain for keypoint visibility; here it has its own field with the same default.
    """

    box: float = 0.05
    obj: float = 1.0
    cls: float = 0.5
    kpt: float = 0.1
    kpt_vis: float = 0.5

    def scaled(self, num_levels: int, image_size: float) -> DRSILossWeights:
        """Gains for ``num_levels`` output levels and a ``image_size``-pixel input, as YOLOv5's ``train.py``.

        box, cls and kpt_vis are multiplied by ``3 / L``; obj by ``(image_size / 640)^2 * 3 / L``; kpt is left
        as is (YOLO-Pose). YOLOv5 also multiplies cls by ``num_classes / 80``; with one class that would make the
        person-class and visibility gains about 0.005, so that factor is not applied.
        """
        levels = 3.0 / num_levels
        return replace(
            self,
            box=self.box * levels,
            obj=self.obj * (image_size / 640.0) ** 2 * levels,
            cls=self.cls * levels,
            kpt_vis=self.kpt_vis * levels,
        )


class DRSILoss:
    """YOLO-Pose loss of DRSI-Net's raw head outputs (see the module docstring for every term).

    Args:
        config: Takes anchors, strides and the number of joints from this config. Either it or ``anchors`` and
            ``strides`` must be given; explicit arguments win over the config.
        anchors: Per level, the anchor ``(w, h)`` pairs in input pixels, as ``(L, A, 2)`` or as L flat sequences
            ``(w0, h0, w1, h1, ...)`` (the config's layout).
        strides: L strides.
        num_joints: K; defaults to the config's, else to the number of sigmas of a :class:`KeypointSpec`.
        sigmas: Per-joint OKS sigmas: a :class:`~posecommon.KeypointSpec` with sigmas, K floats, or ``None`` for
            the COCO sigmas (only when K = 17).
        weights: Base gains; scaled per call by :meth:`DRSILossWeights.scaled`.
        balance: Per-level objectness weights (default :func:`default_balance`).
        image_size: Input side used to scale the objectness gain; ``None`` infers it per call from the outputs
            (``max(H_0, W_0) * stride_0``).
        anchor_threshold: Anchor matching size ratio (YOLOv5 ``anchor_t``).
        neighbour_offset: Neighbour-cell rule of :func:`~drsinet.assign.assign_targets` (YOLOv5: 0.5).
        scale_by_batch: Multiply the total by the batch size (YOLOv5), else return the per-image mean.

    Shape:
        - outputs: L tensors ``(B, A, H_l, W_l, 6 + 3K)`` of raw values (:class:`~drsinet.head.DRSIHead`), any
          float dtype, on any device.
        - targets: ``(M, 1 + 4 + 3K)``, see the module docstring; moved to the outputs' device.
        - Returns: the total, a scalar float32 tensor with gradient, and a dict of the five weighted terms
          (:data:`LOSS_TERMS`, per image, i.e. before the batch-size factor) as detached scalars.

    Raises:
        InvalidInputError: no anchors/strides, no sigmas for K != 17, or outputs/targets that do not fit.
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
        neighbour_offset: float = 0.5,
        scale_by_batch: bool = True,
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
        self.neighbour_offset = neighbour_offset
        self.scale_by_batch = scale_by_batch

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
        if targets.dim() != 2 or targets.shape[1] != 5 + 3 * self.num_joints:
            raise InvalidInputError(
                f"targets must be (M, {5 + 3 * self.num_joints}) = (batch index, x1, y1, x2, y2, K x (x, y, v)), "
                f"got {tuple(targets.shape)}"
            )
        if targets.shape[0] and not ((targets[:, 0] >= 0) & (targets[:, 0] < batch)).all():
            raise InvalidInputError(f"target batch indices (column 0) must lie in [0, {batch})")

    def __call__(
        self, outputs: Sequence[torch.Tensor], targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Compute the loss; see the class docstring for shapes and the module docstring for the terms."""
        self._check(outputs, targets)
        device = outputs[0].device
        batch_size = outputs[0].shape[0]
        num_joints = self.num_joints
        targets = targets.to(device=device, dtype=torch.float32)
        target_boxes = targets[:, 1:5]
        target_kpts = targets[:, 5:].reshape(-1, num_joints, 3)
        anchors = self.anchors.to(device)
        variances = (2.0 * self.sigmas.to(device)) ** 2  # (K,) = k^2
        assignments = assign_targets(
            targets[:, 0],
            box_xyxy_to_cxcywh(target_boxes),
            anchors,
            self.strides,
            [(raw.shape[2], raw.shape[3]) for raw in outputs],
            self.anchor_threshold,
            self.neighbour_offset,
        )
        image_size = self.image_size or max(outputs[0].shape[2], outputs[0].shape[3]) * self.strides[0]
        gains = self.weights.scaled(len(outputs), image_size)
        zero = torch.zeros((), device=device)
        terms = dict.fromkeys(LOSS_TERMS, zero)
        for raw, match, stride, level_anchors, balance in zip(
            outputs, assignments, self.strides, anchors, self.balance, strict=True
        ):
            raw = raw.float()
            obj_target = torch.zeros(raw.shape[:4], device=device)
            if len(match):
                pred = raw[match.batch, match.anchor, match.grid_y, match.grid_x]  # (n, 6 + 3K)
                grid = torch.stack((match.grid_x, match.grid_y), dim=-1).float()  # (n, 2) (x, y)
                centre = (2.0 * torch.sigmoid(pred[:, 0:2]) - 0.5 + grid) * stride
                size = (2.0 * torch.sigmoid(pred[:, 2:4])) ** 2 * level_anchors[match.anchor]
                pred_box = box_cxcywh_to_xyxy(torch.cat((centre, size), dim=-1))
                true_box = target_boxes[match.target]
                terms["box"] = terms["box"] + (1.0 - aligned_box_ciou(pred_box, true_box)).mean()
                with torch.no_grad():
                    quality = aligned_box_iou(pred_box, true_box).clamp(min=0)
                    _, num_anchors, height, width = obj_target.shape
                    slot = ((match.batch * num_anchors + match.anchor) * height + match.grid_y) * width + match.grid_x
                    obj_target.view(-1).scatter_reduce_(0, slot, quality, reduce="amax")
                terms["cls"] = terms["cls"] + F.binary_cross_entropy_with_logits(
                    pred[:, 5], torch.ones_like(pred[:, 5])
                )
                joints = pred[:, 6:].reshape(-1, num_joints, 3)
                joint_xy = (2.0 * joints[..., 0:2] - 0.5 + grid[:, None, :]) * stride
                true_joints = target_kpts[match.target]
                labelled = true_joints[..., 2] > 0  # (n, K)
                distance_sq = ((joint_xy - true_joints[..., 0:2]) ** 2).sum(dim=-1)
                area = ((true_box[:, 2] - true_box[:, 0]) * (true_box[:, 3] - true_box[:, 1]))[:, None]
                similarity = torch.exp(-distance_sq / (2.0 * area * variances + 1e-9))
                terms["kpt"] = terms["kpt"] + ((1.0 - similarity) * labelled).sum() / labelled.sum().clamp(min=1)
                terms["kpt_vis"] = terms["kpt_vis"] + F.binary_cross_entropy_with_logits(
                    joints[..., 2], labelled.float()
                )
            terms["obj"] = terms["obj"] + balance * F.binary_cross_entropy_with_logits(raw[..., 4], obj_target)
        weighted = {name: value * getattr(gains, name) for name, value in terms.items()}
        total = torch.stack(list(weighted.values())).sum()
        if self.scale_by_batch:
            total = total * batch_size
        return total, {name: value.detach() for name, value in weighted.items()}
