"""Box NMS in torch against a brute-force Python reference (random boxes, ties, empty input, groups)."""

import importlib

import pytest
import torch

from posecommon.app.bench.nms import synthetic_candidates
from posecommon.errors import InvalidInputError
from posecommon.ops import batched_nms, box_iou, nms


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _reference(boxes, scores, groups, thr):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(groups[i] != groups[j] or _iou(boxes[i], boxes[j]) <= thr for j in keep):
            keep.append(i)
    return keep


def _random_boxes(n, gen):
    xy = torch.randint(0, 40, (n, 2), generator=gen).double()
    wh = torch.randint(1, 25, (n, 2), generator=gen).double()
    return torch.cat((xy, xy + wh), dim=1)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.7])
def test_nms_matches_bruteforce_with_ties(seed, thr):
    gen = torch.Generator().manual_seed(seed)
    boxes = _random_boxes(60, gen)
    boxes[10] = boxes[3]  # identical boxes
    scores = torch.randint(0, 8, (60,), generator=gen).double() / 8  # many exact score ties
    expected = _reference(boxes.tolist(), scores.tolist(), [0] * 60, thr)
    assert nms(boxes, scores, thr).tolist() == expected


@pytest.mark.parametrize("seed", range(4))
def test_batched_nms_matches_per_group_reference(seed):
    gen = torch.Generator().manual_seed(100 + seed)
    boxes = _random_boxes(80, gen)
    scores = torch.randint(0, 10, (80,), generator=gen).double() / 10
    groups = torch.randint(0, 3, (80,), generator=gen)
    expected = _reference(boxes.tolist(), scores.tolist(), groups.tolist(), 0.5)
    assert batched_nms(boxes, scores, groups, 0.5).tolist() == expected


def test_empty_and_single_inputs():
    empty = torch.zeros(0, 4)
    assert nms(empty, torch.zeros(0), 0.5).shape == (0,)
    assert batched_nms(empty, torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).dtype == torch.long
    assert nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([0.3]), 0.5).tolist() == [0]


def test_iou_values_and_degenerate_boxes():
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 0, 0]])
    b = torch.tensor([[1.0, 1, 3, 3], [0, 0, 0, 0]])
    iou = box_iou(a, b)
    torch.testing.assert_close(iou, torch.tensor([[1 / 7, 0.0], [0.0, 0.0]]))


def test_shape_errors():
    with pytest.raises(InvalidInputError):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(InvalidInputError):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(InvalidInputError):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2, dtype=torch.long), 0.5)


def _dense_nms(boxes, scores, groups, thr):
    """The previous implementation: one N x N IoU matrix and a sweep over it (memory O(N^2); for checking only)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    overlaps = box_iou(boxes[order], boxes[order]) > thr
    overlaps &= groups[order][:, None] == groups[order][None, :]
    suppressed = torch.zeros(order.shape[0], dtype=torch.bool)
    keep = []
    for i in range(order.shape[0]):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= overlaps[i]
    return order[keep].tolist()


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Blocks of 7 and tiles of 20 pairs, so a few dozen boxes cross many block and tile boundaries."""
    nms_module = importlib.import_module("posecommon.ops.nms")  # the package attribute `nms` is the function
    monkeypatch.setattr(nms_module, "BLOCK", 7)
    monkeypatch.setattr(nms_module, "TILE_ELEMENTS", 20)


@pytest.mark.parametrize("seed", range(3))
def test_float_boxes_across_block_and_tile_boundaries(tiny_blocks, seed):
    gen = torch.Generator().manual_seed(200 + seed)
    xy = torch.rand(90, 2, generator=gen, dtype=torch.float64) * 50
    boxes = torch.cat((xy, xy + torch.rand(90, 2, generator=gen, dtype=torch.float64) * 30), dim=1)
    scores = torch.rand(90, generator=gen, dtype=torch.float64)
    scores[::4] = scores[1::4]  # exact ties across the permutation
    for thr in (0.1, 0.45, 0.8):
        assert nms(boxes, scores, thr).tolist() == _reference(boxes.tolist(), scores.tolist(), [0] * 90, thr)
    groups = torch.randint(-2, 3, (90,), generator=gen)  # any integers, negative too
    expected = _reference(boxes.tolist(), scores.tolist(), groups.tolist(), 0.5)
    assert batched_nms(boxes, scores, groups, 0.5).tolist() == expected


def test_adversarial_cases(tiny_blocks):
    # IoU exactly at the threshold is kept (strictly greater suppresses): [0,0,2,1] vs [0,0,1,1] has IoU 1/2.
    pair = torch.tensor([[0.0, 0, 2, 1], [0, 0, 1, 1]])
    assert nms(pair, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert nms(pair, torch.tensor([0.9, 0.8]), 0.49).tolist() == [0]
    # identical boxes with identical scores: only the lowest index survives
    same = torch.tensor([[1.0, 1, 5, 5]]).repeat(30, 1)
    assert nms(same, torch.full((30,), 0.5), 0.5).tolist() == [0]
    # a chain where greedy order matters: A suppresses B, so C (overlapping only B) survives
    chain = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]])
    assert nms(chain, torch.tensor([0.9, 0.8, 0.7]), 0.3).tolist() == [0, 2]
    # zero-area and nested boxes
    odd = torch.tensor([[0.0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 10, 10], [2, 2, 4, 4]])
    scores = torch.tensor([0.5, 0.5, 0.4, 0.3])
    assert nms(odd, scores, 0.0).tolist() == _reference(odd.tolist(), scores.tolist(), [0] * 4, 0.0)
    # integer boxes are accepted
    assert nms(torch.tensor([[0, 0, 4, 4], [0, 0, 4, 4]]), torch.tensor([0.1, 0.2]), 0.5).tolist() == [1]
    # groups keep identical boxes apart
    groups = torch.tensor([0, 1] * 15)
    assert batched_nms(same, torch.full((30,), 0.5), groups, 0.5).tolist() == [0, 1]


def test_many_boxes_equal_the_dense_reference(one_thread):
    boxes, scores = synthetic_candidates(2500, people=12, seed=3)  # 5 blocks of 512, heavy overlap
    scores = (scores * 20).round() / 20  # many ties
    groups = torch.randint(0, 3, (2500,), generator=torch.Generator().manual_seed(4))
    for thr in (0.3, 0.65):
        assert nms(boxes, scores, thr).tolist() == _dense_nms(boxes, scores, torch.zeros(2500), thr)
    assert batched_nms(boxes, scores, groups, 0.5).tolist() == _dense_nms(boxes, scores, groups, 0.5)


@pytest.fixture
def one_thread():
    """One intra-op thread: memory does not depend on it, and a shared 2-core machine runs 10x faster so."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_peak_memory_at_30000_candidates_is_linear(one_thread):
    from posecommon.app.bench.suite import peak_memory_bytes

    boxes, scores = synthetic_candidates(30000)
    peak = peak_memory_bytes(lambda: nms(boxes, scores, 0.65))
    assert peak < 200 * 2**20, f"NMS at 30,000 candidates allocated {peak / 2**20:.0f} MB"  # N x N: 3.4 GB


def test_nms_benchmark_section_of_the_suite(one_thread):
    from posecommon.app.bench.suite import BenchSettings, format_markdown, run_suite

    settings = BenchSettings(models=[], attention_grids=(), gradient_orders=(), nms_sizes=(300, 1000), nms_repeats=1)
    report = run_suite(settings)
    rows = report["nms"]["rows"]
    assert [r["candidates"] for r in rows] == [300, 1000]
    for r in rows:
        boxes, scores = synthetic_candidates(r["candidates"])
        assert r["kept"] == nms(boxes, scores, report["nms"]["iou_threshold"]).numel()
        assert r["ms"] > 0 and 0 < r["peak_mb"] < r["dense_mb"] * 10
    assert "| 1,000 | " in format_markdown(report) and "Box NMS" in format_markdown(report)
    assert "nms" not in run_suite(BenchSettings(models=[], attention_grids=(), gradient_orders=(), nms_sizes=()))
