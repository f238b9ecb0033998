"""TopDownKernel: geometry end to end with a stand-in model, the real VTTransPose, and bad boxes/images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import vttranspose
from posecommon import BadImageError, HeatmapCodec, InvalidInputError, KeypointSpec, PreprocessConfig, TopDownCodec
from posecommon.media.image import load_image
from posecommon.model import PoseModel
from posecommon.ops.geometry import invert_affine, transform_points
from posecommon.predict import RunOptions
from vttranspose.predict import TopDownKernel

INPUT = (64, 48)
HEATMAP = (16, 12)


def predict_topdown(model, image, boxes, box_scores=None, batch_size=32, **options):
    """The kernel on one image, as ``predict`` runs it (default run options)."""
    kernel = TopDownKernel(model, crop_batch_size=batch_size, **options)
    return kernel([load_image(image)], [{"boxes": boxes, "box_scores": box_scores}], RunOptions())[0]


@dataclass(frozen=True)
class _BlobConfig:
    num_joints: int = 3


class _BlobModel(PoseModel):
    """Heatmaps = the crop's red channel sampled at the crop point of each heatmap pixel centre.

    The crop points come from the official input <-> heatmap relation (:meth:`HeatmapCodec.heatmap_to_input`), so a
    Gaussian blob in the image becomes a heatmap peak exactly where the codec's geometry puts it, and the whole
    crop -> decode -> inverse chain can be checked against the blob's known position.
    """

    def __init__(self) -> None:
        super().__init__(_BlobConfig(), KeypointSpec("three", ("a", "b", "c"), (), (0, 2, 1)))
        self.gain = nn.Parameter(torch.ones(()))

    @property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig(input_size=INPUT, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys, xs = torch.meshgrid(torch.arange(HEATMAP[0]).float(), torch.arange(HEATMAP[1]).float(), indexing="ij")
        points = HeatmapCodec(INPUT, HEATMAP).heatmap_to_input(torch.stack((xs, ys), dim=-1))
        grid = points / torch.tensor([INPUT[1] - 1.0, INPUT[0] - 1.0]) * 2 - 1  # align_corners=True normalisation
        sampled = F.grid_sample(x[:, :1], grid.expand(x.shape[0], -1, -1, -1), align_corners=True)
        return (sampled * self.gain).expand(-1, 3, -1, -1)


def _blob_image(point: torch.Tensor, sigma: float, size=(400, 400)) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size[0]).float(), torch.arange(size[1]).float(), indexing="ij")
    blob = 255 * torch.exp(-((xs - point[0]) ** 2 + (ys - point[1]) ** 2) / (2 * sigma**2))
    return blob.round().to(torch.uint8).expand(3, *size).contiguous()


POINT = torch.tensor([200.3, 190.6])
BOXES = [
    [185.0, 170.0, 215.0, 210.0],  # around the blob
    [170.0, 160.0, 230.0, 220.0],  # larger
    [192.0, 170.0, 200.0, 210.0],  # thin: widened to the aspect ratio
    [190.0, 100.0, 210.0, 450.0],  # partly outside the image
    [-10.0, -10.0, 410.0, 410.0],  # larger than the image
]


@pytest.mark.parametrize(
    ("flip_test", "use_dark", "tolerance"), [(False, False, 0.5), (False, True, 0.1), (True, True, 0.1)]
)
def test_blob_is_found_where_it_is(flip_test, use_dark, tolerance):
    """Errors in heatmap pixels: < 0.5 argmax + quarter shift, < 0.1 DARK, with or without flip test (no shift)."""
    point = POINT
    model = _BlobModel()
    for box in BOXES:
        size = TopDownCodec(INPUT, HEATMAP).regions(torch.tensor([box])).size
        heatmap_pixel = (float(size[0, 0]) - 1) / (HEATMAP[1] - 1)  # image pixels per heatmap pixel
        image = _blob_image(point, sigma=1.5 * heatmap_pixel)  # the blob stays inside the image
        result = predict_topdown(model, image, [box], flip_test=flip_test, use_dark=use_dark)
        error = (result.keypoints[0, :, :2] - point).abs().max() / heatmap_pixel
        assert error < tolerance, (box, float(error))
        assert result.keypoints[0, :, 2].min() > 0.9


def test_scores_batching_and_mode():
    model = _BlobModel().train()
    image = _blob_image(POINT, sigma=30.0)
    boxes = torch.tensor(BOXES)
    one = predict_topdown(model, image, boxes, box_scores=[0.5, 1.0, 0.2, 0.9, 0.3], batch_size=2)
    everything = predict_topdown(model, image, boxes, box_scores=[0.5, 1.0, 0.2, 0.9, 0.3], batch_size=32)
    torch.testing.assert_close(one.keypoints, everything.keypoints)
    assert model.training  # mode restored
    assert torch.equal(one.boxes, boxes)
    confidences = one.keypoints[..., 2]
    expected = torch.tensor([0.5, 1.0, 0.2, 0.9, 0.3]) * confidences.mean(dim=1)  # all confidences > 0.2 here
    assert (confidences > 0.2).all()
    torch.testing.assert_close(one.scores, expected)


@pytest.fixture(scope="module")
def small_vttranspose():
    torch.manual_seed(0)
    return vttranspose.vttranspose_h_s(input_size=INPUT).eval()


def test_real_model_shapes_and_ranges(small_vttranspose):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (90, 120), dtype=np.uint8))  # grayscale input
    boxes = torch.tensor([[10.0, 10.0, 60.0, 80.0], [70.0, 5.0, 115.0, 85.0], [200.0, 200.0, 260.0, 300.0]])
    result = predict_topdown(small_vttranspose, image, boxes, box_scores=torch.tensor([0.9, 0.8, 0.7]))
    assert result.keypoints.shape == (3, 17, 3) and result.boxes.shape == (3, 4) and result.scores.shape == (3,)
    assert torch.isfinite(result.keypoints).all() and torch.isfinite(result.scores).all()
    # keypoints lie inside the image of each box's heatmap rectangle (the third box is wholly outside the image)
    codec = TopDownCodec(INPUT, HEATMAP)
    corners = torch.tensor([[0.0, 0.0], [HEATMAP[1] - 1.0, HEATMAP[0] - 1.0]]).expand(3, 2, 2)
    inverse = invert_affine(codec.heatmap_transform(codec.regions(boxes)))
    low, high = transform_points(corners.double(), inverse).unbind(1)
    points = result.keypoints[..., :2].double()
    assert ((points >= low[:, None] - 1e-3) & (points <= high[:, None] + 1e-3)).all()
    unbatched = predict_topdown(small_vttranspose, image, boxes, box_scores=[0.9, 0.8, 0.7], batch_size=1)
    torch.testing.assert_close(unbatched.keypoints, result.keypoints, atol=1e-3, rtol=1e-4)


def test_zero_boxes_degenerate_boxes_and_tiny_image(small_vttranspose):
    image = np.zeros((1, 1, 3), dtype=np.uint8)
    empty = predict_topdown(small_vttranspose, image, torch.zeros(0, 4))
    assert len(empty) == 0 and empty.keypoints.shape == (0, 17, 3)
    assert len(predict_topdown(small_vttranspose, image, [])) == 0
    # a 1x1 image with a box around it, a point box and a zero-width box: valid, finite results
    boxes = [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 5.0]]
    result = predict_topdown(small_vttranspose, image, boxes)
    assert result.keypoints.shape == (3, 17, 3) and torch.isfinite(result.keypoints).all()


@pytest.mark.parametrize(
    ("boxes", "match"),
    [
        ([[0.0, 0.0, float("nan"), 10.0]], "NaN"),
        ([[0.0, 0.0, 10.0, float("inf")]], "NaN or infinite"),
        ([[10.0, 0.0, 5.0, 10.0]], "inverted"),
        ([[0.0, 0.0, 10.0]], r"\(N, 4\)"),
        ("not boxes", "numeric"),
    ],
)
def test_bad_boxes_are_invalid_input(boxes, match):
    with pytest.raises(InvalidInputError, match=match):
        predict_topdown(_BlobModel(), np.zeros((10, 10, 3), dtype=np.uint8), boxes)


def test_bad_scores_and_images():
    model = _BlobModel()
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    with pytest.raises(InvalidInputError, match="box_scores"):
        predict_topdown(model, image, [[0.0, 0.0, 5.0, 5.0]], box_scores=[0.5, 0.5])
    with pytest.raises(InvalidInputError, match="box_scores"):
        predict_topdown(model, image, [[0.0, 0.0, 5.0, 5.0]], box_scores=[float("nan")])
    with pytest.raises(BadImageError):
        predict_topdown(model, np.full((10, 10, 3), 2.0, dtype=np.float32), [[0.0, 0.0, 5.0, 5.0]])  # not in [0, 1]
    with pytest.raises(BadImageError):
        predict_topdown(model, "/nonexistent/image.jpg", [[0.0, 0.0, 5.0, 5.0]])
