"""One predict contract for DRSI-Net, VTTransPose and PosePipeline, on real photos (tests/data/LICENSES.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from drsinet import drsi_net_s
from posecommon import COCO17, InvalidInputError, PosePipeline, PoseResult
from posecommon.media.image import load_image
from posecommon.predict import PredictKernel
from vttranspose import vttranspose_h_s

DATA = Path(__file__).parent / "data"
PHOTOS = sorted(p for p in DATA.iterdir() if p.suffix in (".jpg", ".png"))
PHOTO = DATA / "grace_hopper.jpg"  # 512 wide, 600 high


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: the tiny models gain nothing from two, and a busy shared machine runs them 10x faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _settle_batch_norm(model: torch.nn.Module, size: tuple[int, int]) -> torch.nn.Module:
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(2, 3, *size))
    return model.eval()


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return _settle_batch_norm(drsi_net_s(input_size=(128, 128), width_multiple=0.25, depth_multiple=0.2), (128, 128))


@pytest.fixture(scope="module")
def pose_model():
    torch.manual_seed(0)
    return _settle_batch_norm(vttranspose_h_s(input_size=(64, 48)), (64, 48))


@pytest.fixture(params=["single_stage", "top_down", "pipeline"])
def predictor(request, detector, pose_model):
    """``predict`` of each kind of model, as a user calls it."""
    if request.param == "single_stage":
        return lambda source, **kw: detector.predict(source, score_threshold=0.0, max_people=5, **kw)
    if request.param == "top_down":
        return lambda source, **kw: pose_model.predict(source, flip_test=False, **kw)
    pipeline = PosePipeline(detector, pose_model, score_threshold=0.0, max_people=2, flip_test=False)
    return pipeline.predict


def test_one_input_one_result_a_list_a_list_a_stream_an_iterator(predictor):
    single = predictor(PHOTO)
    assert isinstance(single, PoseResult) and len(single) >= 1
    assert single.image_path == str(PHOTO) and single.image_size == (600, 512) and single.image is None
    assert single.keypoint_names == COCO17.names and single.keypoints.shape[1:] == (17, 3)
    listed = predictor([PHOTO, Image.open(PHOTOS[0])])
    assert isinstance(listed, list) and len(listed) == 2
    assert listed[1].image_path is None and listed[1].image.shape == (3, 512, 512)  # kept for plot()
    assert [r.image_path for r in predictor(DATA)] == [str(p) for p in PHOTOS]
    assert [r.image_path for r in predictor(str(DATA / "*.png"))] == [str(DATA / "camera.png")]
    assert predictor([]) == []
    read = []

    def photos():
        for photo in PHOTOS[:2]:
            read.append(photo)
            yield photo

    stream = predictor(photos())
    assert isinstance(stream, Iterator) and read == []  # nothing is read before the first result is asked for
    assert next(stream).image_path == str(PHOTOS[0]) and read == PHOTOS[:1]
    assert len(list(stream)) == 1
    as_stream = predictor([PHOTO, PHOTO], stream=True)
    assert isinstance(as_stream, Iterator) and len(list(as_stream)) == 2


def test_every_kind_of_image_input_gives_the_same_prediction(detector):
    def run(source, **kw):
        return detector.predict(source, score_threshold=0.0, **kw)

    expected = run(PHOTO)
    rgb = load_image(PHOTO)
    hwc = rgb.permute(1, 2, 0).numpy()
    inputs = {
        "str": (str(PHOTO), {}),
        "PIL": (Image.open(PHOTO), {}),
        "uint8 array": (hwc, {}),
        "float array": (hwc.astype(np.float32) / 255, {}),
        "BGR array": (np.ascontiguousarray(hwc[..., ::-1]), {"bgr": True}),
        "CHW tensor": (rgb, {}),
        "CHW float tensor": (rgb.float() / 255, {}),
    }
    for name, (source, kw) in inputs.items():
        found = run(source, **kw)
        assert torch.equal(found.boxes, expected.boxes) and torch.equal(found.keypoints, expected.keypoints), name
    batch = run(torch.stack((rgb, rgb)))  # BCHW: one result per image
    assert isinstance(batch, list) and all(torch.equal(r.boxes, expected.boxes) for r in batch)
    swapped = run(np.ascontiguousarray(hwc[..., ::-1]))  # the same array without bgr=True is another image
    assert not torch.equal(swapped.scores, expected.scores)


def test_top_down_without_boxes_uses_the_whole_image_and_takes_boxes_per_image(pose_model):
    whole = pose_model.predict(PHOTO, flip_test=False)
    torch.testing.assert_close(whole.boxes, torch.tensor([[-0.5, -0.5, 511.5, 599.5]]))
    explicit = pose_model.predict(PHOTO, [[-0.5, -0.5, 511.5, 599.5]], flip_test=False)
    torch.testing.assert_close(whole.keypoints, explicit.keypoints)
    boxes = [torch.tensor([[100.0, 50.0, 400.0, 560.0]]), torch.tensor([[10.0, 10.0, 200.0, 300.0]] * 2)]
    results = pose_model.predict([PHOTO, PHOTOS[0]], boxes, [[0.5], [0.9, 0.8]], flip_test=False)
    assert [len(r) for r in results] == [1, 2]
    torch.testing.assert_close(results[1].boxes, boxes[1])
    single = pose_model.predict(PHOTOS[0], boxes[1], flip_test=False)
    torch.testing.assert_close(results[1].keypoints, single.keypoints)
    with pytest.raises(InvalidInputError, match="one entry per image"):
        pose_model.predict([PHOTO, PHOTO], boxes[:1])
    with pytest.raises(InvalidInputError, match="stream"):
        pose_model.predict(iter([PHOTO]), boxes)
    with pytest.raises(InvalidInputError, match="without boxes"):
        pose_model.predict(PHOTO, box_scores=[0.5])


def _forward_inputs(model: torch.nn.Module) -> tuple[list[tuple[int, ...]], list[torch.dtype], object]:
    shapes, dtypes = [], []

    def hook(module, args, output):
        shapes.append(tuple(args[0].shape))
        out = output[0] if isinstance(output, list) else output
        dtypes.append(out.dtype)

    return shapes, dtypes, model.register_forward_hook(hook)


def test_batch_size_input_size_and_device_are_honoured(detector, pose_model):
    shapes, _, handle = _forward_inputs(detector)
    try:
        batched = detector.predict(PHOTOS, score_threshold=0.0, batch_size=2, input_size=(64, 128), fuse=False)
        assert shapes == [(2, 3, 64, 128), (1, 3, 64, 128)]
        one_by_one = detector.predict(PHOTOS, score_threshold=0.0, input_size=(64, 128), fuse=False)
        assert len(shapes) == 5
    finally:
        handle.remove()
    for a, b in zip(batched, one_by_one, strict=True):
        torch.testing.assert_close(a.boxes, b.boxes, atol=1e-3, rtol=1e-4)
    shapes, _, handle = _forward_inputs(pose_model)
    try:
        pose_model.predict(PHOTO, input_size=(96, 72), fuse=False, channels_last=False, device="cpu")
    finally:
        handle.remove()
    assert shapes == [(1, 3, 96, 72), (1, 3, 96, 72)]  # the crop and its mirror (flip test)
    with pytest.raises(InvalidInputError, match="device"):
        detector.predict(PHOTO, device="warp-drive")
    with pytest.raises(InvalidInputError, match="multiples of 4"):
        pose_model.predict(PHOTO, input_size=(65, 48))
    with pytest.raises(InvalidInputError, match="batch_size"):
        detector.predict(PHOTO, batch_size=0)


def test_half_runs_bfloat16_on_cpu_and_stays_close_to_float32(detector, pose_model):
    _, dtypes, handle = _forward_inputs(detector)
    try:
        detector.predict(PHOTO, half=True, fuse=False, channels_last=False)
        detector.predict(PHOTO, fuse=False, channels_last=False)
    finally:
        handle.remove()
    assert dtypes == [torch.bfloat16, torch.float32]
    everything = {"score_threshold": 0.0, "iou_threshold": 1.0, "max_people": 10_000}  # every candidate
    full, half = detector.predict(PHOTO, **everything), detector.predict(PHOTO, half=True, **everything)
    assert len(full) == len(half) == 1020
    vectors = [torch.cat((r.boxes, r.keypoints[..., :2].flatten(1)), dim=1) for r in (full, half)]
    _, match = torch.cdist(vectors[0], vectors[1], p=float("inf")).min(dim=1)
    assert match.unique().numel() == 1020  # candidates pair up one to one (the order by score may differ)
    # Pixels, in a 512 x 600 photo. With YOLO-Pose's head wiring the objectness prior of anchors 1 and 2 lands on
    # anchor 0's joint-1 and joint-3 y logits (DRSIHead), which start at -2.5 to -6.7: bfloat16 keeps 8 bits of
    # them, and the decode (2 t - 0.5 + g) * stride turns that into up to ~1 input pixel at stride 64.
    assert (full.boxes - half.boxes[match]).abs().max() < 1.0  # measured 0.08
    error = (full.keypoints[..., :2] - half.keypoints[match][..., :2]).abs()  # (N, K, 2)
    prior = torch.zeros(error.shape[1:], dtype=torch.bool)
    prior[[1, 3], 1] = True
    assert error[:, ~prior].max() < 1.0  # measured 0.16
    assert error[:, prior].max() < 10.0  # measured 4.6
    assert (full.scores - half.scores[match]).abs().max() < 5e-3  # measured 9e-4
    boxes = [[100.0, 50.0, 400.0, 560.0], [0.0, 0.0, 300.0, 300.0]]
    full, half = pose_model.predict(PHOTO, boxes), pose_model.predict(PHOTO, boxes, half=True)
    assert (full.keypoints[..., 2] - half.keypoints[..., 2]).abs().max() < 1e-3  # measured 3e-5
    # An untrained model's heatmaps are nearly flat, so bfloat16 rounding may move an argmax to another peak:
    # require nearly every joint within 4 image pixels (a heatmap pixel is ~31 image pixels here).
    moved = (full.keypoints[..., :2] - half.keypoints[..., :2]).abs().amax(dim=-1)
    assert (moved < 4.0).float().mean() >= 0.9


class _FixedBoxKernel(PredictKernel):
    """One fixed box per image; records the batches it runs and how."""

    def __init__(self, calls: list) -> None:
        super().__init__(COCO17, ())
        self.calls = calls

    def __call__(self, images, inputs, run):
        self.calls.append({"images": len(images), "half": run.half})
        box = torch.tensor([[50.0, 40.0, 400.0, 560.0]])
        return [PoseResult(box, torch.tensor([0.8]), torch.zeros(1, 17, 3)) for _ in images]


class _RecordingDetector:
    """A detector stand-in that records the prediction options its kernel is built with."""

    def __init__(self) -> None:
        self.options: list[dict] = []
        self.calls: list[dict] = []

    def predict_kernel(self, **options):
        self.options.append(options)
        return _FixedBoxKernel(self.calls)


def test_pipeline_passes_its_options_and_checks_them_before_detection(pose_model):
    detector = _RecordingDetector()
    pipeline = PosePipeline(detector, pose_model, 0.3, 0.5, max_people=2, detector_input_size=(64, 64), flip_test=False)
    results = pipeline.predict([PHOTO, PHOTO], half=True, batch_size=2)
    options = {"score_threshold": 0.3, "iou_threshold": 0.5, "max_people": 2, "input_size": (64, 64)}
    assert detector.options == [options] and detector.calls == [{"images": 2, "half": True}]
    assert [len(r) for r in results] == [1, 1]  # the pose model ran on the detector's box of each image
    with pytest.raises(InvalidInputError, match="flip_tset"):
        PosePipeline(detector, pose_model, flip_tset=False)
    with pytest.raises(InvalidInputError, match="without a pose model"):
        PosePipeline(detector, None, flip_test=False)
    with pytest.raises(InvalidInputError, match="detector_pretrained"):
        PosePipeline.from_names(pretrained=True)
    with pytest.raises(InvalidInputError, match="flip_tset"):
        PosePipeline.from_names(pose_kwargs={"input_size": (64, 48)}, flip_tset=False)
    with pytest.raises(InvalidInputError, match="unknown predict option"):
        pipeline.predict(PHOTO, flip_test=True)  # a model option belongs to the pipeline, not to its predict
    assert len(detector.calls) == 1


def test_pipeline_score_threshold_decides_who_is_found(detector, pose_model):
    nobody = PosePipeline(detector, pose_model, score_threshold=1.0, flip_test=False)(PHOTO)
    somebody = PosePipeline(detector, pose_model, score_threshold=0.0, max_people=3, flip_test=False)(PHOTO)
    assert len(nobody) == 0 and len(somebody) == 3
    pipeline = PosePipeline.from_names(
        detector_kwargs={"input_size": (128, 128), "width_multiple": 0.25, "depth_multiple": 0.2},
        pose_kwargs={"input_size": (64, 48)},
        score_threshold=0.0,
        max_people=1,
        flip_test=False,
    )
    assert len(pipeline(PHOTO)) == 1
