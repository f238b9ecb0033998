"""Tests of DRSI-Net's training-side encoding (drsinet.assign) and YOLO-Pose loss (drsinet.loss) on hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch

from drsinet import drsi_net_s
from drsinet.assign import assign_targets
from drsinet.config import DRSINetConfig
from drsinet.decode import decode_outputs
from drsinet.loss import LOSS_TERMS, DRSILoss, DRSILossWeights, default_balance
from posecommon.box_ops import aligned_box_iou, box_xyxy_to_cxcywh
from posecommon.errors import InvalidInputError
from posecommon.keypoints import COCO17, KeypointSpec

# A small two-level, two-anchor layout with 4 joints (nothing here is specific to COCO's 17).
STRIDES = (8, 16)
ANCHORS = torch.tensor([[[10.0, 10.0], [40.0, 40.0]], [[160.0, 160.0], [30.0, 120.0]]])
GRIDS = ((16, 16), (8, 8))  # a 128 x 128 input
SIGMAS = (0.05, 0.06, 0.07, 0.08)
K = len(SIGMAS)


def _targets() -> torch.Tensor:
    """Two persons in image 0 and 1 of a batch of 2: ``(M, 1 + 4 + 3K)``, boxes xyxy, joints (x, y, v)."""
    person_a = [0.0, 65.0, 28.0, 101.0, 72.0, *(70.0, 35.0, 2.0, 95.0, 40.0, 1.0, 80.0, 60.0, 2.0, 0.0, 0.0, 0.0)]
    person_b = [1.0, 34.0, 83.0, 46.0, 97.0, *(36.0, 85.0, 2.0, 44.0, 86.0, 2.0, 39.0, 95.0, 1.0, 41.0, 90.0, 2.0)]
    return torch.tensor([person_a, person_b])


def _loss(**kwargs: object) -> DRSILoss:
    return DRSILoss(anchors=ANCHORS, strides=STRIDES, num_joints=K, sigmas=SIGMAS, **kwargs)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _perfect_outputs(
    targets: torch.Tensor, batch: int = 2, positive: float = 12.0, negative: float = -20.0
) -> list[torch.Tensor]:
    """Raw outputs that decode exactly to each target at all its assigned slots; objectness very low elsewhere."""
    outputs = []
    boxes = box_xyxy_to_cxcywh(targets[:, 1:5]).double()
    joints = targets[:, 5:].reshape(-1, K, 3).double()
    matches = assign_targets(targets[:, 0], boxes.float(), ANCHORS, STRIDES, GRIDS)
    for (height, width), stride, anchors, match in zip(GRIDS, STRIDES, ANCHORS, matches, strict=True):
        raw = torch.zeros(batch, ANCHORS.shape[1], height, width, 6 + 3 * K, dtype=torch.float64)
        raw[..., 4] = negative
        for t, b, a, gy, gx in zip(
            *(v.tolist() for v in (match.target, match.batch, match.anchor, match.grid_y, match.grid_x)), strict=True
        ):
            cx, cy, w, h = boxes[t].tolist()
            slot = raw[b, a, gy, gx]
            slot[0] = _logit((cx / stride - gx + 0.5) / 2)
            slot[1] = _logit((cy / stride - gy + 0.5) / 2)
            slot[2] = _logit(math.sqrt(w / anchors[a, 0].item()) / 2)
            slot[3] = _logit(math.sqrt(h / anchors[a, 1].item()) / 2)
            slot[4] = positive
            slot[5] = positive
            for k in range(K):
                x, y, v = joints[t, k].tolist()
                slot[6 + 3 * k] = (x / stride - gx + 0.5) / 2
                slot[7 + 3 * k] = (y / stride - gy + 0.5) / 2
                slot[8 + 3 * k] = positive if v > 0 else -positive
        outputs.append(raw.float())
    return outputs


def _first_slot(targets: torch.Tensor, person: int) -> tuple[int, int, int, int]:
    """``(image, anchor, row, column)`` of the first level-0 slot assigned to a target row."""
    match = assign_targets(targets[:, 0], box_xyxy_to_cxcywh(targets[:, 1:5]), ANCHORS, STRIDES, GRIDS)[0]
    index = int((match.target == person).nonzero()[0, 0])
    return tuple(int(v[index]) for v in (match.batch, match.anchor, match.grid_y, match.grid_x))


def test_assignment_level_anchor_and_neighbour_cells() -> None:
    # Box 36 x 44 centred at (83, 50): level 0 (stride 8) centre cell (x 10, y 6), fractions 0.375 / 0.25 -> also the
    # left (9, 6) and upper (10, 5) cells; only anchor 1 (40 x 40) passes the ratio test (10 x 10 gives 4.4 >= 4).
    # Level 1 (stride 16): cell (5, 3), fractions 0.1875 / 0.125 -> left (4, 3) and upper (5, 2); only anchor 1
    # (30 x 120: worst ratio 120 / 44 = 2.7) matches, anchor 0 (160 x 160) gives 4.4.
    boxes = torch.tensor([[83.0, 50.0, 36.0, 44.0]])
    level0, level1 = assign_targets(torch.tensor([3.0]), boxes, ANCHORS, STRIDES, GRIDS)
    assert level0.anchor.tolist() == [1, 1, 1] and level1.anchor.tolist() == [1, 1, 1]
    assert list(zip(level0.grid_x.tolist(), level0.grid_y.tolist(), strict=True)) == [(10, 6), (9, 6), (10, 5)]
    assert list(zip(level1.grid_x.tolist(), level1.grid_y.tolist(), strict=True)) == [(5, 3), (4, 3), (5, 2)]
    assert level0.batch.tolist() == [3, 3, 3] and level0.target.tolist() == [0, 0, 0]


def test_assignment_right_and_lower_neighbours_and_grid_edges() -> None:
    boxes = torch.tensor(
        [
            [14.0, 15.0, 20.0, 20.0],  # cell (1, 1), fractions 0.75 / 0.875: right (2, 1) and lower (1, 2)
            [3.0, 2.0, 20.0, 20.0],  # cell (0, 0), fractions below 0.5 but no left/upper cell exists
            [127.0, 126.0, 20.0, 20.0],  # last cell (15, 15), fractions above 0.5 but no right/lower cell exists
            [60.0, 60.0, 0.0, 20.0],  # empty box: matches nothing
            [60.0, 60.0, 8.0, 100.0],  # matches neither 10 x 10 (100 / 10) nor 40 x 40 (40 / 8 = 5)
        ]
    )
    level0 = assign_targets(torch.zeros(5), boxes, ANCHORS, STRIDES, GRIDS)[0]
    fields = (level0.target, level0.anchor, level0.grid_x, level0.grid_y)
    cells = sorted(zip(*(f.tolist() for f in fields), strict=True))
    expected = sorted(
        [(0, a, x, y) for a in (0, 1) for x, y in ((1, 1), (2, 1), (1, 2))]
        + [(1, a, 0, 0) for a in (0, 1)]
        + [(2, a, 15, 15) for a in (0, 1)]
    )
    assert cells == expected
    only_centre = assign_targets(torch.zeros(5), boxes, ANCHORS, STRIDES, GRIDS, neighbour_offset=0.0)[0]
    assert sorted(set(only_centre.target.tolist())) == [0, 1, 2] and len(only_centre) == 6


def test_assignment_offsets_are_decodable() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.rand(200, 2, generator=generator) * 128 - 0.5
    sizes = torch.rand(200, 2, generator=generator) * 150 + 4
    boxes = torch.cat((centres, sizes), dim=1)
    matches = assign_targets(torch.zeros(200), boxes, ANCHORS, STRIDES, GRIDS)
    assert sum(len(m) for m in matches) > 200
    for match, stride, anchors in zip(matches, STRIDES, ANCHORS, strict=True):
        offset_x = boxes[match.target, 0] / stride - match.grid_x
        offset_y = boxes[match.target, 1] / stride - match.grid_y
        assert ((offset_x > -0.5) & (offset_x < 1.5) & (offset_y > -0.5) & (offset_y < 1.5)).all()
        ratio = boxes[match.target, 2:4] / anchors[match.anchor]
        assert ((ratio > 0.25) & (ratio < 4.0)).all()


def test_perfect_prediction_is_the_minimum() -> None:
    targets = _targets()
    outputs = _perfect_outputs(targets)
    boxes, scores, keypoints = decode_outputs(outputs, ANCHORS, STRIDES)
    for image in range(2):
        positive = scores[image] > 0.99
        row = targets[image]
        assert positive.sum() >= 3
        iou = aligned_box_iou(boxes[image, positive], row[1:5])
        torch.testing.assert_close(iou, torch.ones_like(iou))
        joints = row[5:].reshape(K, 3)
        labelled = joints[:, 2] > 0
        torch.testing.assert_close(
            keypoints[image, positive][:, labelled, :2], joints[labelled, :2].expand(int(positive.sum()), -1, -1)
        )
    loss = _loss()
    total, terms = loss(outputs, targets)
    assert set(terms) == set(LOSS_TERMS)
    assert total.item() < 1e-3 and all(0 <= value.item() < 5e-4 for value in terms.values())

    perturbations = {
        "box": (slice(0, 2), 0.7),  # centre
        "obj": (slice(4, 5), -14.0),  # objectness logit of a positive
        "cls": (slice(5, 6), -14.0),
        "kpt": (slice(6, 8), 0.3),  # first joint's x, y
        "kpt_vis": (slice(8, 9), -20.0),  # first joint's visibility logit
    }
    b, a, gy, gx = _first_slot(targets, person=0)
    for name, (channels, delta) in perturbations.items():
        perturbed = [raw.clone() for raw in outputs]
        perturbed[0][b, a, gy, gx, channels] += delta
        other_total, other_terms = loss(perturbed, targets)
        assert other_total > total + 1e-5, name
        assert other_terms[name] > 3 * terms[name] + 1e-5, name
    wider = [raw.clone() for raw in outputs]
    wider[0][b, a, gy, gx, 2] += 0.5  # box width
    assert loss(wider, targets)[1]["box"] > terms["box"] + 1e-4


def test_total_is_weighted_sum_times_batch_and_weights_scale_like_yolov5() -> None:
    targets = _targets()
    outputs = [raw + 0.3 * torch.randn_like(raw) for raw in _perfect_outputs(targets)]
    total, terms = _loss()(outputs, targets)
    torch.testing.assert_close(total, sum(terms.values()) * 2)
    per_image, same_terms = _loss(scale_by_batch=False)(outputs, targets)
    torch.testing.assert_close(per_image, total / 2)
    assert all(torch.equal(terms[n], same_terms[n]) for n in LOSS_TERMS)
    gains = DRSILossWeights().scaled(num_levels=4, image_size=1280)
    torch.testing.assert_close(
        (gains.box, gains.obj, gains.cls, gains.kpt, gains.kpt_vis), (0.0375, 3.0, 0.375, 0.1, 0.375)
    )
    assert default_balance(4) == (4.0, 1.0, 0.25, 0.06) and default_balance(3) == (4.0, 1.0, 0.4)


def test_gradient_signs() -> None:
    targets = _targets()
    outputs = _perfect_outputs(targets, negative=0.0)
    b, a, gy, gx = _first_slot(targets, person=0)
    slot = outputs[0][b, a, gy, gx]
    slot[4] = -5.0  # low objectness where a person is
    slot[5] = -3.0  # low person-class logit
    slot[2] -= 1.0  # box too narrow
    slot[6] += 0.25  # joint 0 two pixels right of its target (labelled)
    slot[8] = -2.0  # joint 0 (labelled) looks invisible
    slot[6 + 3 * 3 + 2] = 2.0  # joint 3 of person a is unlabelled but looks visible
    for raw in outputs:
        raw.requires_grad_(True)
    total, _ = _loss()(outputs, targets)
    total.backward()
    grad = outputs[0].grad
    assert grad[b, a, gy, gx, 4] < 0  # raise objectness at the matched slot
    unmatched = grad[..., 4] > 0
    assert unmatched.sum() > 0.9 * unmatched.numel()  # objectness logit 0 elsewhere: push down
    assert grad[b, a, gy, gx, 5] < 0  # raise the class logit
    assert grad[b, a, gy, gx, 2] < 0  # widen the box
    assert grad[b, a, gy, gx, 6] > 0  # move the joint left, towards its target
    assert grad[b, a, gy, gx, 8] < 0 and grad[b, a, gy, gx, 6 + 3 * 3 + 2] > 0

    kpt_terms = []
    for shift in (0.5, 0.25, 0.0):  # joint 0 moves towards its target
        moved = [raw.detach().clone() for raw in outputs]
        moved[0][b, a, gy, gx, 6] = outputs[0][b, a, gy, gx, 6].detach() - 0.25 + shift
        kpt_terms.append(_loss()(moved, targets)[1]["kpt"].item())
    assert kpt_terms[0] > kpt_terms[1] > kpt_terms[2]


def test_image_without_persons_and_empty_batch_give_only_objectness() -> None:
    targets = _targets()[:1]  # only image 0 has a person; image 1 of the batch is empty
    outputs = [torch.zeros(2, 2, h, w, 6 + 3 * K, requires_grad=True) for h, w in GRIDS]
    _loss()(outputs, targets)[0].backward()
    for raw in outputs:
        no_person = raw.grad[1]
        assert torch.count_nonzero(torch.cat((no_person[..., :4], no_person[..., 5:]), dim=-1)) == 0
        assert (no_person[..., 4] > 0).all()

    empty = torch.zeros(0, 5 + 3 * K)
    outputs = [torch.zeros(2, 2, h, w, 6 + 3 * K, requires_grad=True) for h, w in GRIDS]
    total, terms = _loss()(outputs, empty)
    assert terms["obj"] > 0 and all(terms[n] == 0 for n in ("box", "cls", "kpt", "kpt_vis"))
    total.backward()
    for raw in outputs:
        assert raw.grad is not None and (raw.grad[..., 4] > 0).all()


def test_duplicate_targets_share_slots_without_double_counting_objectness() -> None:
    targets = _targets()
    outputs = [raw + 0.2 * torch.randn_like(raw) for raw in _perfect_outputs(targets)]
    _, single = _loss()(outputs, targets)
    _, doubled = _loss()(outputs, torch.cat((targets, targets)))
    for name in LOSS_TERMS:
        torch.testing.assert_close(doubled[name], single[name])


def test_config_sigmas_and_errors() -> None:
    loss = DRSILoss(DRSINetConfig())
    assert loss.anchors.shape == (4, 3, 2) and loss.strides == (8, 16, 32, 64) and loss.num_joints == 17
    torch.testing.assert_close(loss.sigmas, torch.tensor(COCO17.sigmas))
    with pytest.raises(InvalidInputError, match="sigmas"):
        DRSILoss(anchors=ANCHORS, strides=STRIDES, num_joints=K)
    spec = KeypointSpec("four", ("a", "b", "c", "d"), (), (0, 1, 2, 3), SIGMAS)
    assert DRSILoss(anchors=ANCHORS, strides=STRIDES, sigmas=spec).num_joints == K
    with pytest.raises(InvalidInputError, match="anchors"):
        DRSILoss(strides=STRIDES, num_joints=K, sigmas=SIGMAS)
    outputs = [torch.zeros(2, 2, h, w, 6 + 3 * K) for h, w in GRIDS]
    with pytest.raises(InvalidInputError, match="targets"):
        _loss()(outputs, torch.zeros(1, 5 + 3 * 17))
    with pytest.raises(InvalidInputError, match="batch indices"):
        _loss()(outputs, _targets() + torch.tensor([2.0] + [0.0] * (4 + 3 * K)))
    with pytest.raises(InvalidInputError, match="output levels"):
        _loss()(outputs[:1], _targets())
    with pytest.raises(InvalidInputError, match="each output"):
        _loss()([torch.zeros(2, 2, 16, 16, 9), outputs[1]], _targets())


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_devices_and_half_precision(device: str) -> None:
    targets = _targets()
    reference, _ = _loss()(_perfect_outputs(targets), targets)
    outputs = [raw.to(device=device, dtype=torch.float16).requires_grad_(True) for raw in _perfect_outputs(targets)]
    total, terms = _loss()(outputs, targets)  # targets stay on the CPU: moved by the loss
    assert total.device.type == device and total.dtype == torch.float32
    assert all(value.device.type == device for value in terms.values())
    total.backward()
    assert all(raw.grad is not None and torch.isfinite(raw.grad).all() for raw in outputs)
    assert abs(total.item() - reference.item()) < 0.05


def test_real_model_every_parameter_gets_a_gradient_without_persons() -> None:
    model = drsi_net_s(input_size=(64, 64))
    outputs = model(torch.rand(2, 3, 64, 64))
    loss = DRSILoss(model.config, sigmas=model.keypoint_spec)
    total, terms = loss(outputs, torch.zeros(0, 5 + 3 * 17))
    assert torch.isfinite(total) and terms["obj"] > 0
    total.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
