"""PoseResult as users of ultralytics' Results expect it: a flag for "empty", numpy/cpu/to all giving results,
normalised and pixel coordinates (xyxy and centre-based xywh), summary / to_df, show() without a display, speed per
image from the predict door, and one name per plotting option (issue 26)."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posecommon import InvalidInputError, MissingDependencyError, PoseResult
from posecommon.keypoints import generic_keypoint_spec
from posecommon.predict import PhaseTimer, PredictKernel, predict_frames, run_predict
from posecommon.predict.sources import Frame
from posecommon.structures import SPEED_PHASES
from posecommon.visualize import draw_pose

DATA = Path(__file__).parent / "data"
PHOTO = DATA / "astronaut.jpg"  # 512 x 512
PHOTOS = [DATA / "astronaut.jpg", DATA / "grace_hopper.jpg", DATA / "camera.png"]


def _result(**fields) -> PoseResult:
    boxes = torch.tensor([[-0.5, -0.5, 639.5, 479.5], [10.0, 20.0, 110.0, 220.0]])
    keypoints = torch.zeros(2, 17, 3)
    keypoints[:, :, 0] = torch.linspace(-0.5, 639.5, 17)
    keypoints[:, :, 1] = 239.5
    keypoints[:, :, 2] = torch.linspace(0, 1, 17)
    return PoseResult(boxes, torch.tensor([0.9, 0.4]), keypoints, **{"image_size": (480, 640), **fields})


def test_empty_is_a_flag_and_bool_and_len_count_people():
    nobody = PoseResult.no_people(17)
    assert nobody.empty is True and len(nobody) == 0 and not nobody
    two = _result()
    assert two.empty is False and len(two) == 2 and bool(two)
    assert two[two.scores > 0.95].empty  # a selection of nobody reads as empty too


def test_numpy_cpu_and_to_all_return_results():
    result = _result(image_path=str(PHOTO))
    arrays = result.numpy()
    assert isinstance(arrays, PoseResult) and arrays.image_path == result.image_path
    assert all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in (arrays.boxes, arrays.scores))
    assert arrays.keypoints.shape == (2, 17, 3)
    assert isinstance(arrays[0], PoseResult) and arrays[0].boxes.shape == (1, 4)
    assert len(arrays[arrays.scores > 0.5]) == 1 and len(arrays[torch.tensor([True, True])]) == 2
    for back in (arrays.cpu(), arrays.to("cpu"), result.cpu(), result.to(torch.device("cpu"))):
        assert isinstance(back, PoseResult) and isinstance(back.keypoints, torch.Tensor)
        torch.testing.assert_close(back.keypoints, result.keypoints)
    assert "numpy" in repr(arrays)


def test_pixel_and_normalised_coordinates_of_boxes_and_keypoints():
    result = _result()
    torch.testing.assert_close(result.boxes_xyxy, result.boxes)
    # centre-based xywh, as ultralytics' boxes.xywh
    torch.testing.assert_close(result.boxes_xywh[1], torch.tensor([60.0, 120.0, 100.0, 200.0]))
    # the whole-image box [-0.5, W - 0.5] normalises to the image's edges
    torch.testing.assert_close(result.boxes_xyxyn[0], torch.tensor([0.0, 0.0, 1.0, 1.0]))
    torch.testing.assert_close(result.boxes_xywhn[0], torch.tensor([0.5, 0.5, 1.0, 1.0]))
    torch.testing.assert_close(result.boxes_xywhn[1], torch.tensor([60.5 / 640, 120.5 / 480, 100 / 640, 200 / 480]))
    assert result.keypoints_xy.shape == (2, 17, 2) and result.keypoints_conf.shape == (2, 17)
    xyn = result.keypoints_xyn
    assert xyn.shape == (2, 17, 2)
    torch.testing.assert_close(xyn[0, [0, -1], 0], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(xyn[0, :, 1], torch.full((17,), 0.5))
    arrays = result.numpy()  # the same numbers from numpy fields
    np.testing.assert_allclose(arrays.boxes_xywhn, result.boxes_xywhn.numpy(), rtol=1e-6)
    np.testing.assert_allclose(arrays.keypoints_xyn, xyn.numpy(), rtol=1e-6)
    # COCO's bbox stays top-left based
    assert result.to_coco(image_id=1)[1]["bbox"] == pytest.approx([10.0, 20.0, 100.0, 200.0])
    with pytest.raises(InvalidInputError, match="image size"):
        _ = _result(image_size=None).keypoints_xyn


def test_summary_is_plain_dicts_in_ultralytics_layout():
    result = _result(image_path=str(PHOTO))
    rows = result.summary()
    assert json.loads(json.dumps(rows)) == rows
    assert [r["confidence"] for r in rows] == pytest.approx([0.9, 0.4])
    assert rows[1]["name"] == "person" and rows[1]["class"] == 0
    assert rows[1]["box"] == pytest.approx({"x1": 10.0, "y1": 20.0, "x2": 110.0, "y2": 220.0})
    assert set(rows[0]["keypoints"]) == {"x", "y", "visible"} and len(rows[0]["keypoints"]["x"]) == 17
    normalised = result.summary(normalize=True)
    assert normalised[0]["box"] == pytest.approx({"x1": 0.0, "y1": 0.0, "x2": 1.0, "y2": 1.0})
    assert PoseResult.no_people(17).summary() == []


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="pandas (the pandas extra) not installed")
def test_to_df_has_one_row_per_person_and_named_joint_columns():
    result = _result(image_path=str(PHOTO))
    frame = result.to_df()
    assert len(frame) == 2
    assert list(frame.columns[:9]) == ["image", "frame_index", "name", "class", "confidence", "x1", "y1", "x2", "y2"]
    assert {"nose_x", "nose_y", "nose_conf", "right_ankle_conf"} <= set(frame.columns)
    assert frame["confidence"].tolist() == pytest.approx([0.9, 0.4])
    assert frame.loc[1, "x2"] == pytest.approx(110.0) and frame.loc[0, "image"] == str(PHOTO)
    assert len(PoseResult.no_people(17).to_df()) == 0


def test_to_df_without_pandas_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pandas" else real(name, *a))
    with pytest.raises(MissingDependencyError) as error:
        _result().to_df()
    message = str(error.value)
    assert "\n" not in message and "pandas" in message and "pip install" in message


def test_show_without_a_display_warns_and_returns_false(monkeypatch, caplog):
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with caplog.at_level(logging.WARNING):
        assert _result(image_path=str(PHOTO), image_size=(512, 512)).show() is False
    assert "no display" in caplog.text


def test_show_with_a_display_hands_the_drawn_picture_to_the_viewer(monkeypatch):
    shown = []
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr("PIL.ImageShow.show", lambda image, title=None, **kw: shown.append((image, title)) or True)
    result = _result(image_path=str(PHOTO), image_size=(512, 512))
    assert result.show(draw_boxes=False) is True
    ((image, title),) = shown
    assert title == "astronaut" and np.array_equal(np.asarray(image), np.asarray(result.plot(draw_boxes=False)))


def test_plot_save_and_draw_pose_share_one_name_per_option(tmp_path):
    result = _result(image_path=str(PHOTO), image_size=(512, 512))
    options = {"keypoint_threshold": 0.5, "draw_boxes": False, "show_scores": False, "radius": 3, "line_width": 2}
    expected = np.asarray(draw_pose(PHOTO, result, **options))
    assert np.array_equal(np.asarray(result.plot(**options)), expected)
    picture, _ = result.save(tmp_path, **options)
    assert np.array_equal(np.asarray(Image.open(picture)), expected)
    with pytest.raises(TypeError):
        result.plot(boxes=False)  # the old name is gone


class _TimedKernel(PredictKernel):
    """Spends known phases per call: preprocess 2, inference 6, postprocess 4 (in timer seconds, faked)."""

    def __init__(self) -> None:
        super().__init__(generic_keypoint_spec(17), ())

    def __call__(self, images, inputs, run):
        for phase, seconds in zip(SPEED_PHASES, (2.0, 6.0, 4.0), strict=True):
            with self.timer(phase):
                pass
            self.timer.seconds[phase] += seconds
        return [PoseResult.no_people(17) for _ in images]


class _UntimedKernel(PredictKernel):
    """A kernel that does not time its phases."""

    def __init__(self) -> None:
        super().__init__(generic_keypoint_spec(17), ())

    def __call__(self, images, inputs, run):
        return [PoseResult.no_people(17) for _ in images]


def test_speed_is_the_batch_phase_time_divided_by_its_images():
    from posecommon.predict import RunOptions

    frames = [Frame(torch.zeros(3, 8, 8, dtype=torch.uint8), i, None, None, False) for i in range(4)]
    results = predict_frames(_TimedKernel(), frames, RunOptions(batch_size=4))
    for result in results:
        assert set(result.speed) == set(SPEED_PHASES)
        assert result.speed["preprocess"] == pytest.approx(500.0, rel=1e-3)  # 2 s / 4 images in ms
        assert result.speed["inference"] == pytest.approx(1500.0, rel=1e-3)
        assert result.speed["postprocess"] == pytest.approx(1000.0, rel=1e-3)
    plain = predict_frames(_UntimedKernel(), frames[:2], RunOptions())
    assert plain[0].speed["preprocess"] == 0.0 and plain[0].speed["inference"] > 0.0  # the whole call


def test_phase_timer_rejects_unknown_phases():
    timer = PhaseTimer()
    with pytest.raises(ValueError, match="phase"), timer("decode"):
        pass


def test_predict_on_the_test_photos_fills_speed_for_both_families(tiny_models):
    detector, pose = tiny_models
    for model in (detector, pose):
        results = model.predict([str(p) for p in PHOTOS], batch_size=2)
        assert len(results) == 3
        for result in results:
            assert set(result.speed) == set(SPEED_PHASES)
            assert all(v >= 0.0 for v in result.speed.values()) and result.speed["inference"] > 0.0
        assert results[0].speed == results[1].speed  # one batch of two: the same share each
    from posecommon import PosePipeline

    (result,) = run_predict(PosePipeline(detector, pose, score_threshold=0.0, max_people=2).kernel, [str(PHOTO)])
    assert set(result.speed) == set(SPEED_PHASES) and result.speed["inference"] > 0.0
    assert result.image_size == (512, 512) and result.boxes_xyxyn.shape == (len(result), 4)


@pytest.fixture(scope="module")
def tiny_models():
    from drsinet import drsi_net_s
    from vttranspose import vttranspose_h_s

    torch.manual_seed(0)
    return drsi_net_s(input_size=(128, 128)).eval(), vttranspose_h_s(input_size=(64, 48)).eval()
