"""DRSI-Net's YOLO-Pose assignment (drsinet.assign) and loss (drsinet.loss), re-derived by hand on small cases.

Layout used throughout: a 128 x 128 input, two levels (strides 8 and 16, grids 16 x 16 and 8 x 8), two anchors per
level, K = 2 joints with sigmas 0.5 and 0.3 (large, so that the keypoint loss is not saturated). Default gains for
2 levels at 128 pixels (train.py:226-228 of yolo-pose): box 0.05 * 3/2, obj 1.0 * (128/640)^2 * 3/2,
cls 0.5 * 1/80 * 3/2 (also the visibility gain), kpt 0.1; objectness balance (4.0, 1.0).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from drsinet import drsi_net_s
from drsinet.assign import build_targets
from drsinet.config import DRSINetConfig
from drsinet.loss import LOSS_TERMS, DRSILoss, DRSILossWeights, default_balance
from drsinet.targets import to_yolo_pose_targets
from drsinet.train_task import DRSITask
from posecommon.errors import InvalidInputError
from posecommon.keypoints import COCO17
from posecommon.preprocess import PreprocessConfig

STRIDES = (8, 16)
ANCHORS = torch.tensor([[[10.0, 10.0], [40.0, 40.0]], [[160.0, 160.0], [30.0, 120.0]]])
GRIDS = ((16, 16), (8, 8))
SIZE = 128.0
SIGMAS = (0.5, 0.3)
K = len(SIGMAS)
GAIN_BOX = 0.05 * 1.5
GAIN_OBJ = (SIZE / 640) ** 2 * 1.5
GAIN_CLS = 0.5 / 80 * 1.5
GAIN_KPT = 0.1
BALANCE = (4.0, 1.0)


def _loss(**kwargs: object) -> DRSILoss:
    return DRSILoss(anchors=ANCHORS, strides=STRIDES, num_joints=K, sigmas=SIGMAS, **kwargs)


def _row(image: int, box_px: tuple[float, ...], joints_px: tuple[float, ...]) -> list[float]:
    """A YOLO-Pose target row from a pixel box ``(cx, cy, w, h)`` and pixel joints ``(x, y, ...)`` (0 = unlabelled)."""
    return [float(image), 0.0, *(v / SIZE for v in box_px), *(v / SIZE for v in joints_px)]


def _zeros(batch: int = 1) -> list[torch.Tensor]:
    return [torch.zeros(batch, 2, h, w, 6 + 3 * K) for h, w in GRIDS]


def _ciou(pred: tuple[float, ...], true: tuple[float, ...]) -> float:
    """Complete IoU of two (cx, cy, w, h) boxes, written out from the CIoU paper (utils/general.py:407-444)."""
    (px, py, pw, ph), (tx, ty, tw, th) = pred, true
    inter_w = max(0.0, min(px + pw / 2, tx + tw / 2) - max(px - pw / 2, tx - tw / 2))
    inter_h = max(0.0, min(py + ph / 2, ty + th / 2) - max(py - ph / 2, ty - th / 2))
    inter = inter_w * inter_h
    iou = inter / (pw * ph + tw * th - inter)
    enclose_w = max(px + pw / 2, tx + tw / 2) - min(px - pw / 2, tx - tw / 2)
    enclose_h = max(py + ph / 2, ty + th / 2) - min(py - ph / 2, ty - th / 2)
    rho2 = (tx - px) ** 2 + (ty - py) ** 2
    v = 4 / math.pi**2 * (math.atan(tw / th) - math.atan(pw / ph)) ** 2
    alpha = v / (v - iou + 1)
    return iou - (rho2 / (enclose_w**2 + enclose_h**2) + alpha * v)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _cells(level) -> list[tuple[int, int, int]]:
    return list(zip(level.anchor.tolist(), level.grid_x.tolist(), level.grid_y.tolist(), strict=True))


# One person, centre (83, 50) px, 36 x 44 px; joint 0 at (70, 35) px, joint 1 unlabelled.
ONE = torch.tensor([_row(0, (83.0, 50.0, 36.0, 44.0), (70.0, 35.0, 0.0, 0.0))])
# Slots derived by hand. Level 0 (grid units = px / 8): centre (10.375, 6.25), size (4.5, 5.5); anchor 0
# (1.25 x 1.25) fails (5.5 / 1.25 = 4.4), anchor 1 (5 x 5) matches. Fractions 0.375 / 0.25 < 0.5 and centre > 1:
# left and upper neighbours; 16 - 10.375 = 5.625 and 9.75 have fractions >= 0.5: no right/lower one.
# Level 1 (px / 16): centre (5.1875, 3.125), size (2.25, 2.75); anchor 0 (10 x 10) fails, anchor 1 (1.875 x 7.5)
# matches (worst ratio 7.5 / 2.75 = 2.7); left and upper neighbours again.
ONE_SLOTS = (
    [(1, 10, 6), (1, 9, 6), (1, 10, 5)],
    [(1, 5, 3), (1, 4, 3), (1, 5, 2)],
)
ONE_CENTRES = ((10.375, 6.25), (5.1875, 3.125))
ONE_SIZES = ((4.5, 5.5), (2.25, 2.75))
ONE_JOINT = ((70 / 8, 35 / 8), (70 / 16, 35 / 16))
ANCHOR_1 = ((5.0, 5.0), (1.875, 7.5))  # anchor 1 of each level in grid units


def test_build_targets_one_target_by_hand() -> None:
    levels = build_targets(ONE, ANCHORS, STRIDES, GRIDS)
    for level, slots, (cx, cy), (w, h), (jx, jy) in zip(
        levels, ONE_SLOTS, ONE_CENTRES, ONE_SIZES, ONE_JOINT, strict=True
    ):
        assert _cells(level) == slots
        assert level.batch.tolist() == [0, 0, 0] and level.target.tolist() == [0, 0, 0]
        expected_box = [[cx - gx, cy - gy, w, h] for _, gx, gy in slots]
        torch.testing.assert_close(level.box, torch.tensor(expected_box))
        expected_kpt = [[[jx - gx, jy - gy], [0.0, 0.0]] for _, gx, gy in slots]
        torch.testing.assert_close(level.keypoints, torch.tensor(expected_kpt))


def test_build_targets_cell_edges() -> None:
    targets = torch.tensor(
        [
            _row(0, (80.0, 52.0, 36.0, 44.0), (0.0,) * 4),  # level 0: x = 10.0 exactly, y = 6.5
            _row(0, (8.0, 52.0, 36.0, 44.0), (0.0,) * 4),  # level 0: x = 1.0 exactly
            _row(0, (128.0, 52.0, 36.0, 44.0), (0.0,) * 4),  # level 0: x = 16.0, the far image edge
        ]
    )
    level = build_targets(targets, ANCHORS, STRIDES, GRIDS)[0]
    order = [(t, a, x, y) for t, (a, x, y) in zip(level.target.tolist(), _cells(level), strict=True)]
    # Centres first (targets 0, 1, 2), then left neighbours (0: 10 - 0.5 -> 9; 2: 16 - 0.5 -> 15; not 1, since
    # x = 1.0 is not > 1), then right "neighbours" (0: 10 + 0.5 -> 10, the centre cell again; 1: 1 + 0.5 -> 1).
    # y = 6.5 has fraction 0.5 on both sides: no vertical neighbour. Target 2's centre cell 16 is clamped to 15.
    assert order == [
        (0, 1, 10, 6),
        (1, 1, 1, 6),
        (2, 1, 15, 6),
        (0, 1, 9, 6),
        (2, 1, 15, 6),
        (0, 1, 10, 6),
        (1, 1, 1, 6),
    ]
    # x offsets use the clamped cell: target 2 sits at 1.0 from cell 15 in both of its slots.
    torch.testing.assert_close(level.box[:, 0], torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]))


def _set_slot(outputs: list[torch.Tensor], level: int, slot: tuple[int, int, int], values: dict[int, float]) -> None:
    anchor, gx, gy = slot
    for channel, value in values.items():
        outputs[level][0, anchor, gy, gx, channel] = value


def test_one_target_every_term_by_hand() -> None:
    outputs = _zeros()
    for level, slots in enumerate(ONE_SLOTS):
        for slot in slots:
            _set_slot(outputs, level, slot, {8: 1.0, 11: -2.0})  # visibility logits of joints 0 and 1
    for raw in outputs:
        raw.requires_grad_(True)
    total, terms = _loss()(outputs, ONE)

    # Raw 0 decodes to the box (0.5, 0.5, anchor) and the joint (-0.5, -0.5) relative to the slot's cell.
    box = kpt = 0.0
    for slots, (cx, cy), (w, h), (jx, jy), (aw, ah) in zip(
        ONE_SLOTS, ONE_CENTRES, ONE_SIZES, ONE_JOINT, ANCHOR_1, strict=True
    ):
        box += sum(1 - _ciou((0.5, 0.5, aw, ah), (cx - gx, cy - gy, w, h)) for _, gx, gy in slots) / 3
        for _, gx, gy in slots:  # joint 0 only (joint 1 unlabelled): official 1 - exp(-d / (4 sigma^2 s))
            d = (jx - gx + 0.5) ** 2 + (jy - gy + 0.5) ** 2
            kpt += (1 - math.exp(-d / (4 * SIGMAS[0] ** 2 * w * h))) / 3
    visibility = 2 * (_softplus(-1.0) + _softplus(-2.0)) / 2  # per level: mean of BCE(1, 1) and BCE(-2, 0)
    objectness = sum(BALANCE) * math.log(2.0)  # every objectness logit is 0: BCE = log 2 whatever the target
    expected = {
        "box": GAIN_BOX * box,
        "obj": GAIN_OBJ * objectness,
        "cls": 0.0,
        "kpt": GAIN_KPT * kpt,
        "kpt_vis": GAIN_CLS * visibility,
    }
    for name in LOSS_TERMS:
        assert terms[name].item() == pytest.approx(expected[name], rel=1e-5, abs=1e-7), name
    assert total.item() == pytest.approx(sum(expected.values()), rel=1e-5)

    # The objectness target of each slot, read from the gradient of BCE: d/dz = balance * gain * (sigmoid(z) - t) / N
    # (times the batch size 1), is the CIoU of the slot's prediction, clamped at 0.
    total.backward()
    for level, (raw, slots, (cx, cy), (w, h), (aw, ah)) in enumerate(
        zip(outputs, ONE_SLOTS, ONE_CENTRES, ONE_SIZES, ANCHOR_1, strict=True)
    ):
        scale = BALANCE[level] * GAIN_OBJ / raw[..., 4].numel()
        for anchor, gx, gy in slots:
            target = 0.5 - raw.grad[0, anchor, gy, gx, 4].item() / scale
            assert target == pytest.approx(max(_ciou((0.5, 0.5, aw, ah), (cx - gx, cy - gy, w, h)), 0.0), abs=1e-5)
        assert raw.grad[..., 5].abs().sum() == 0  # one class: the class logit is not trained


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# Non-zero raw outputs per slot (tx, ty, tw, th, joint-0 x, joint-0 y): at 0 the official decodes coincide with
# wrong ones (2 sigmoid(0) - 0.5 = sigmoid(0), (2 sigmoid(0))^2 = exp(0), 2 * 0 = 3 * 0), so these cases tell them
# apart. Values differ per slot so that a formula applied to the wrong slot or channel is also caught.
RAW = (
    [(0.3, -0.4, 0.2, -0.5, 0.7, -0.2), (-0.6, 0.5, -0.3, 0.4, -0.8, 0.9), (1.1, 0.2, 0.6, -0.1, 0.3, 0.6)],
    [(-0.2, 0.9, -0.7, 0.3, 0.5, -0.5), (0.4, -1.0, 0.1, 0.8, -0.3, 0.2), (0.8, 0.1, -0.4, -0.6, 1.2, -0.9)],
)


def test_one_target_every_term_by_hand_at_nonzero_outputs() -> None:
    outputs = _zeros()
    for level, slots in enumerate(ONE_SLOTS):
        for slot, (tx, ty, tw, th, kx, ky) in zip(slots, RAW[level], strict=True):
            _set_slot(outputs, level, slot, {0: tx, 1: ty, 2: tw, 3: th, 4: -1.5, 6: kx, 7: ky, 8: 1.0, 11: -2.0})
    for raw in outputs:
        raw.requires_grad_(True)
    total, terms = _loss()(outputs, ONE)

    # utils/loss.py:132-133, 139-140: box (2 sigmoid(t_xy) - 0.5, (2 sigmoid(t_wh))^2 * anchor), joint 2 t - 0.5.
    box = kpt = 0.0
    cious = []
    for slots, raws, (cx, cy), (w, h), (jx, jy), (aw, ah) in zip(
        ONE_SLOTS, RAW, ONE_CENTRES, ONE_SIZES, ONE_JOINT, ANCHOR_1, strict=True
    ):
        level_cious = []
        for (_, gx, gy), (tx, ty, tw, th, kx, ky) in zip(slots, raws, strict=True):
            pred = (
                2 * _sigmoid(tx) - 0.5,
                2 * _sigmoid(ty) - 0.5,
                (2 * _sigmoid(tw)) ** 2 * aw,
                (2 * _sigmoid(th)) ** 2 * ah,
            )
            level_cious.append(_ciou(pred, (cx - gx, cy - gy, w, h)))
            d = (2 * kx - 0.5 - (jx - gx)) ** 2 + (2 * ky - 0.5 - (jy - gy)) ** 2
            kpt += (1 - math.exp(-d / (4 * SIGMAS[0] ** 2 * w * h))) / 3
        box += sum(1 - c for c in level_cious) / 3
        cious.append(level_cious)
    for name, expected in (("box", GAIN_BOX * box), ("kpt", GAIN_KPT * kpt)):
        assert terms[name].item() == pytest.approx(expected, rel=1e-5, abs=1e-7), name
    assert box > 0.05 and kpt > 0.05  # far from the optimum: the terms are sensitive to the decode

    # Objectness targets (CIoU of each slot's decoded box, clamped at 0), read from the gradient as above.
    total.backward()
    for level, (raw, slots) in enumerate(zip(outputs, ONE_SLOTS, strict=True)):
        scale = BALANCE[level] * GAIN_OBJ / raw[..., 4].numel()
        for (anchor, gx, gy), ciou in zip(slots, cious[level], strict=True):
            target = _sigmoid(-1.5) - raw.grad[0, anchor, gy, gx, 4].item() / scale
            assert target == pytest.approx(max(ciou, 0.0), abs=1e-5)


def test_paper_keypoint_form_halves_the_exponent() -> None:
    outputs = _zeros()
    _, official = _loss()(outputs, ONE)
    _, paper = _loss(kpt_loss="paper")(outputs, ONE)
    expected = 0.0
    for slots, (w, h), (jx, jy) in zip(ONE_SLOTS, ONE_SIZES, ONE_JOINT, strict=True):
        for _, gx, gy in slots:
            d = (jx - gx + 0.5) ** 2 + (jy - gy + 0.5) ** 2
            expected += (1 - math.exp(-d / (2 * w * h * (2 * SIGMAS[0]) ** 2))) / 3
    assert paper["kpt"].item() == pytest.approx(GAIN_KPT * expected, rel=1e-5)
    assert paper["kpt"] < official["kpt"]
    assert all(torch.equal(paper[n], official[n]) for n in LOSS_TERMS if n != "kpt")


def test_target_on_cell_edge_counts_its_repeated_slot_twice() -> None:
    # Centre (80, 52) px: level 0 slots (10, 6) [centre], (9, 6) [left], (10, 6) [right = centre cell again].
    targets = torch.tensor([_row(0, (80.0, 52.0, 36.0, 44.0), (0.0,) * 4)])
    _, terms = _loss()(_zeros(), targets)
    level0 = [1 - _ciou((0.5, 0.5, 5.0, 5.0), (x, 0.5, 4.5, 5.5)) for x in (0.0, 1.0, 0.0)]
    # Level 1: centre (5.0, 3.25): left (4, 3) and right (5, 3, again) neighbours, upper (5, 2); size 2.25 x 2.75.
    level1 = [
        1 - _ciou((0.5, 0.5, 1.875, 7.5), (x, y, 2.25, 2.75)) for x, y in ((0, 0.25), (1, 0.25), (0, 1.25), (0, 0.25))
    ]
    expected = GAIN_BOX * (sum(level0) / 3 + sum(level1) / 4)
    assert terms["box"].item() == pytest.approx(expected, rel=1e-5)


def _objectness_targets(targets: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
    for raw in outputs:
        raw.requires_grad_(True)
    _loss()(outputs, targets)[0].backward()
    return [
        0.5 - raw.grad[..., 4] * raw[..., 4].numel() / (balance * GAIN_OBJ)
        for raw, balance in zip(outputs, BALANCE, strict=True)
    ]


def test_two_targets_in_one_slot_last_write_wins() -> None:
    # Both centred at (84, 52) px (level 0: (10.5, 6.5), fractions 0.5: only the centre cell (10, 6), anchor 1).
    # A: 36 x 44 px, IoU with the raw-0 prediction 5 x 5 is 0.83; B: 30 x 40 px, IoU 0.75. The target of the
    # shared slot is the CIoU of the *last* of them, not the larger.
    a = _row(0, (84.0, 52.0, 36.0, 44.0), (0.0,) * 4)
    b = _row(0, (84.0, 52.0, 30.0, 40.0), (0.0,) * 4)
    ciou_a = _ciou((0.5, 0.5, 5.0, 5.0), (0.5, 0.5, 4.5, 5.5))
    ciou_b = _ciou((0.5, 0.5, 5.0, 5.0), (0.5, 0.5, 3.75, 5.0))
    assert ciou_a > ciou_b + 0.05
    for order, expected in (((a, b), ciou_b), ((b, a), ciou_a)):
        target = _objectness_targets(torch.tensor(order), _zeros())[0]
        assert target[0, 1, 6, 10].item() == pytest.approx(expected, abs=1e-5)
        assert torch.count_nonzero(target.abs() > 1e-5) == 1


def test_unlabelled_joints_are_masked_as_official() -> None:
    # Joint 0 at x = 80 px (grid 10.0 at level 0, 5.0 at level 1): labelled, but minus the cell's x it becomes 0 in
    # every slot of column 10 (level 0) or 5 (level 1), so the official mask (shifted x != 0) drops it there and
    # keeps it only in the left neighbours (9, 6) and (4, 3). Joint 1 has x = 0, y = 40: unlabelled everywhere.
    targets = torch.tensor([_row(0, (83.0, 50.0, 36.0, 44.0), (80.0, 30.0, 0.0, 40.0))])
    level0 = build_targets(targets, ANCHORS, STRIDES, GRIDS)[0]
    assert _cells(level0) == ONE_SLOTS[0]
    outputs = _zeros()
    for raw in outputs:
        raw.requires_grad_(True)
    total, terms = _loss()(outputs, targets)
    total.backward()
    # d/dv BCE(v, mask) = gain * (sigmoid(v) - mask) / (n K); v = 0 -> 0.5 - mask.
    scale = GAIN_CLS / (3 * K)
    grads = [outputs[0].grad[0, a, gy, gx, [8, 11]] / scale for a, gx, gy in ONE_SLOTS[0]]
    masks = [(0.5 - g).round().tolist() for g in grads]
    assert masks == [[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]  # centre (10, 6), left (9, 6), up (10, 5)
    assert math.isfinite(total.item())
    # The keypoint term of each level is the loss of its one kept slot-joint (the left neighbour, x offset 1).
    expected = 0.0
    for (w, h), stride, (gx, gy) in zip(ONE_SIZES, STRIDES, ((9, 6), (4, 3)), strict=True):
        jx, jy = 80 / stride - gx, 30 / stride - gy
        assert jx == 1.0
        expected += 1 - math.exp(-((jx + 0.5) ** 2 + (jy + 0.5) ** 2) / (4 * SIGMAS[0] ** 2 * w * h))
    assert terms["kpt"].item() == pytest.approx(GAIN_KPT * expected, rel=1e-5)


def test_nothing_labelled_gives_zero_keypoint_term_not_nan() -> None:
    targets = torch.tensor([_row(0, (83.0, 50.0, 36.0, 44.0), (0.0,) * 4)])
    outputs = [raw.requires_grad_(True) for raw in _zeros()]
    total, terms = _loss()(outputs, targets)
    assert terms["kpt"].item() == 0.0 and torch.isfinite(total)
    assert terms["kpt_vis"].item() == pytest.approx(GAIN_CLS * 2 * math.log(2.0), rel=1e-6)
    total.backward()
    assert all(torch.isfinite(raw.grad).all() for raw in outputs)


def test_total_is_batch_times_weighted_sum_and_gains_scale_as_train_py() -> None:
    torch.manual_seed(0)
    targets = torch.cat((ONE, torch.tensor([_row(2, (40.0, 90.0, 20.0, 50.0), (38.0, 80.0, 45.0, 100.0))])))
    outputs = [0.5 * torch.randn_like(raw) for raw in _zeros(batch=3)]
    total, terms = _loss()(outputs, targets)
    torch.testing.assert_close(total, sum(terms.values()) * 3)
    gains = DRSILossWeights().scaled(num_levels=4, image_size=960)
    torch.testing.assert_close((gains.box, gains.obj, gains.cls, gains.kpt), (0.0375, 1.6875, 0.5 / 80 * 0.75, 0.1))
    assert round(DRSILossWeights().scaled(4, 640).cls, 4) == 0.0047  # the visibility gain of the issue
    assert default_balance(4) == (4.0, 1.0, 0.25, 0.06) and default_balance(3) == (4.0, 1.0, 0.4)


def test_image_without_persons_and_empty_batch_give_only_objectness() -> None:
    outputs = [raw.requires_grad_(True) for raw in _zeros(batch=2)]
    _loss()(outputs, ONE)[0].backward()  # only image 0 has a person
    for raw in outputs:
        no_person = raw.grad[1]
        assert torch.count_nonzero(torch.cat((no_person[..., :4], no_person[..., 5:]), dim=-1)) == 0
        assert (no_person[..., 4] > 0).all()
    outputs = [raw.requires_grad_(True) for raw in _zeros(batch=2)]
    total, terms = _loss()(outputs, torch.zeros(0, 6 + 2 * K))
    assert terms["obj"] > 0 and all(terms[n] == 0 for n in ("box", "cls", "kpt", "kpt_vis"))
    total.backward()
    assert all((raw.grad[..., 4] > 0).all() for raw in outputs)


def test_to_yolo_pose_targets_by_hand() -> None:
    pixel = torch.tensor([[1.0, 10.0, 20.0, 50.0, 100.0, 30.0, 40.0, 2.0, 7.0, 9.0, 0.0]])  # K = 2, joint 1 v = 0
    converted = to_yolo_pose_targets(pixel, (200, 100))  # H 200, W 100
    expected = [[1.0, 0.0, 30 / 100, 60 / 200, 40 / 100, 80 / 200, 30 / 100, 40 / 200, 0.0, 0.0]]
    torch.testing.assert_close(converted, torch.tensor(expected))
    assert to_yolo_pose_targets(torch.zeros(0, 11), (64, 64)).shape == (0, 10)
    with pytest.raises(InvalidInputError, match="1 \\+ 4 \\+ 3K"):
        to_yolo_pose_targets(torch.zeros(1, 10), (64, 64))


class _FixedOutputs(nn.Module):
    def __init__(self, outputs: list[torch.Tensor]) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.outputs


def test_training_task_converts_targets_and_scales_by_global_batch() -> None:
    torch.manual_seed(1)
    outputs = [0.3 * torch.randn_like(raw) for raw in _zeros(batch=2)]
    pixel = torch.tensor([[1.0, 65.0, 28.0, 101.0, 72.0, 70.0, 35.0, 2.0, 0.0, 0.0, 0.0]])
    batch = {"images": torch.zeros(2, 3, 128, 128, dtype=torch.uint8), "targets": pixel}
    task = DRSITask(_loss(), PreprocessConfig(input_size=(128, 128), mean=(0, 0, 0), std=(1, 1, 1)), 8)
    loss, terms = task.loss(_FixedOutputs(outputs), batch)
    reference, reference_terms = _loss()(outputs, to_yolo_pose_targets(pixel, (128, 128)))
    torch.testing.assert_close(loss, reference / 2 * 8)
    assert all(torch.equal(terms[n], reference_terms[n]) for n in LOSS_TERMS)
    assert terms["kpt"] > 0


def test_config_sigmas_and_errors() -> None:
    loss = DRSILoss(DRSINetConfig())
    assert loss.anchors.shape == (4, 3, 2) and loss.strides == (8, 16, 32, 64) and loss.num_joints == 17
    torch.testing.assert_close(loss.sigmas, torch.tensor(COCO17.sigmas))
    with pytest.raises(InvalidInputError, match="sigmas"):
        DRSILoss(anchors=ANCHORS, strides=STRIDES, num_joints=K)
    with pytest.raises(InvalidInputError, match="kpt_loss"):
        _loss(kpt_loss="oks")
    outputs = _zeros(batch=2)
    for bad, match in (
        (torch.zeros(1, 5 + 3 * K), "targets must be"),
        (ONE + torch.tensor([2.0] + [0.0] * (5 + 2 * K)), "image indices"),
        (ONE + torch.tensor([0.0, 1.0] + [0.0] * (4 + 2 * K)), "classes"),
        (ONE * torch.tensor([1.0] * 4 + [-1.0] + [1.0] * (1 + 2 * K)), "non-negative"),
        (ONE * float("nan"), "NaN"),
    ):
        with pytest.raises(InvalidInputError, match=match):
            _loss()(outputs, bad)
    with pytest.raises(InvalidInputError, match="output levels"):
        _loss()(outputs[:1], ONE)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_devices_and_half_precision_computed_in_float32(device: str) -> None:
    torch.manual_seed(0)
    outputs = [(0.5 * torch.randn_like(raw)).to(device=device, dtype=torch.float16) for raw in _zeros()]
    half = [raw.clone().requires_grad_(True) for raw in outputs]
    total, terms = _loss()(half, ONE)  # targets stay on the CPU: moved by the loss
    assert total.device.type == device and total.dtype == torch.float32
    assert all(value.device.type == device for value in terms.values())
    # float16 outputs are upcast before any arithmetic: the same values given as float32 give the same loss.
    reference, _ = _loss()([raw.float() for raw in outputs], ONE)
    torch.testing.assert_close(total, reference, rtol=1e-6, atol=0.0)
    total.backward()
    assert all(raw.grad is not None and torch.isfinite(raw.grad).all() for raw in half)


def test_real_model_every_parameter_gets_a_gradient_without_persons() -> None:
    model = drsi_net_s(input_size=(64, 64), width_multiple=0.25, depth_multiple=0.2)
    outputs = model(torch.rand(2, 3, 64, 64))
    total, terms = DRSILoss(model.config, sigmas=model.keypoint_spec)(outputs, torch.zeros(0, 6 + 2 * 17))
    assert torch.isfinite(total) and terms["obj"] > 0
    total.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
