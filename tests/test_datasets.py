"""Dataset targets must agree with the pixels and with each other.

Most tests use "dot" images: black pictures with a white disc of radius 2.5 at every labelled keypoint, so that after
any crop, rotation, scale, mosaic or flip the output image must be white where the output keypoints are.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from posecommon import HeatmapCodec, KeypointSpec
from posecommon.codecs import TopDownRegions
from posecommon.data import MultiPersonCocoDataset, TopDownCocoDataset, generate_synthetic_coco
from posecommon.ops.geometry import clean_coco_boxes, invert_affine, transform_points
from posecommon.ops.letterbox import unletterbox_boxes, unletterbox_points

SPEC6 = KeypointSpec.from_flip_pairs(
    "dots6",
    ("left_hand", "right_hand", "head", "left_hip", "right_hip", "pelvis"),
    ((0, 2), (1, 2), (3, 5), (4, 5)),
    ((0, 1), (3, 4)),
)


@pytest.fixture(scope="module")
def dots(tmp_path_factory):
    root = tmp_path_factory.mktemp("dots")
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for image_id in range(1, 7):
        w, h = int(rng.integers(64, 97)), int(rng.integers(48, 81))
        picture = Image.new("RGB", (w, h))
        draw = ImageDraw.Draw(picture)
        for person in range(2):
            kpts = np.zeros((6, 3))
            kpts[:, 0] = rng.uniform(6, w - 7, 6).round(2)
            kpts[:, 1] = rng.uniform(6, h - 7, 6).round(2)
            kpts[:, 2] = 2
            if person == 1:
                kpts[int(rng.integers(0, 6))] = 0  # one unlabelled joint: not drawn, must stay (0, 0, 0)
            for x, y, v in kpts:
                if v:
                    draw.ellipse((x - 2.5, y - 2.5, x + 2.5, y + 2.5), fill=(255, 255, 255))
            labelled = kpts[kpts[:, 2] > 0]
            x1, y1 = np.maximum(labelled[:, :2].min(0) - 6, -0.5)
            x2, y2 = labelled[:, 0].max() + 6, labelled[:, 1].max() + 6
            x2, y2 = min(x2, w - 0.5), min(y2, h - 0.5)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "keypoints": kpts.ravel().tolist(),
                }
            )
        picture.save(root / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": w, "height": h})
    ann = root / "dots.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1}]}))
    return ann, root


def _assert_white_at_labelled(image: torch.Tensor, keypoints: torch.Tensor) -> int:
    """The image is white at every labelled keypoint at least a pixel inside it; returns how many were checked."""
    h, w = image.shape[-2:]
    kpts = keypoints.reshape(-1, 3)
    px, py = torch.floor(kpts[:, 0] + 0.5).long(), torch.floor(kpts[:, 1] + 0.5).long()
    inside = (kpts[:, 2] > 0) & (px >= 1) & (px < w - 1) & (py >= 1) & (py < h - 1)
    values = image[:, py[inside], px[inside]].float().amin(dim=0)
    assert (values > 150).all(), values
    return int(inside.sum())


def _original_keypoints(dataset: TopDownCocoDataset, index: int) -> torch.Tensor:
    return torch.from_numpy(dataset.persons[index].keypoints)


def _assert_heatmaps_decode_to_keypoints(dataset: TopDownCocoDataset, sample: dict) -> None:
    codec = HeatmapCodec(dataset.input_size, dataset.codec.heatmap_size)  # crop-space view of the same geometry
    decoded, _ = codec.decode(sample["heatmaps"][None])
    kpts, weight = sample["keypoints"], sample["target_weight"]
    height, width = dataset.input_size
    inside = (kpts[:, 0] >= 0) & (kpts[:, 0] <= width - 1) & (kpts[:, 1] >= 0) & (kpts[:, 1] <= height - 1)
    assert torch.equal(weight[kpts[:, 2] == 0], torch.zeros(int((kpts[:, 2] == 0).sum())))
    assert (weight[inside & (kpts[:, 2] > 0)] == 1).all()
    # decoding can only return positions on the heatmap grid [0, w - 1] x [0, h - 1]
    low_res_h, low_res_w = codec.heatmap_size
    on_map = codec.input_to_heatmap(kpts[:, :2])
    check = (weight > 0) & (on_map[:, 0] >= 0) & (on_map[:, 1] >= 0)
    check &= (on_map[:, 0] <= low_res_w - 1) & (on_map[:, 1] <= low_res_h - 1)
    error = (codec.input_to_heatmap(decoded[0, check]) - on_map[check]).abs()
    assert check.any() and (error <= 0.5).all(), error  # heatmap pixels (quarter-pixel decoding, 0.5 at borders)


def _crop_to_image(dataset: TopDownCocoDataset, sample: dict, points: torch.Tensor) -> torch.Tensor:
    regions = TopDownRegions(
        sample["center"][None], sample["size"][None], sample["rotation"][None], sample["flipped"][None]
    )
    inverse = invert_affine(dataset.codec.input_transform(regions))
    return transform_points(points[None].double(), inverse)[0].float()


def test_topdown_eval_sample(dots):
    dataset = TopDownCocoDataset(*dots, input_size=(64, 48), keypoint_spec=SPEC6, train=False)
    assert len(dataset) == 12
    for index in range(len(dataset)):
        sample = dataset[index]
        assert sample["image"].shape == (3, 64, 48) and sample["image"].dtype == torch.uint8
        assert sample["heatmaps"].shape == (6, 16, 12) and sample["target_weight"].shape == (6,)
        assert float(sample["rotation"]) == 0 and not bool(sample["flipped"]) and float(sample["score"]) == 1
        # the meta maps crop keypoints back onto the annotation exactly
        back = _crop_to_image(dataset, sample, sample["keypoints"][:, :2])
        original = _original_keypoints(dataset, index)
        labelled = original[:, 2] > 0
        assert torch.allclose(back[labelled], original[labelled, :2], atol=1e-3)
        assert (sample["keypoints"][~labelled] == 0).all()
        # the crop region is the sanitised box grown to 3:4 and padded by 1.25, centred at x + (w - 1) / 2
        person = dataset.persons[index]
        record = dataset.data.image(person.image_id)
        raw = torch.tensor([dataset.data.coco.anns[person.annotation_id]["bbox"]], dtype=torch.float64)
        x, y, w, h = clean_coco_boxes(raw, record.width, record.height)[0][0].tolist()
        assert sample["center"].tolist() == pytest.approx([x + (w - 1) / 2, y + (h - 1) / 2], abs=1e-4)
        assert sample["size"][0] / sample["size"][1] == pytest.approx(48 / 64)
        assert min(float(sample["size"][0]) / w, float(sample["size"][1]) / h) == pytest.approx(1.25)
        _assert_white_at_labelled(sample["image"], sample["keypoints"])
        _assert_heatmaps_decode_to_keypoints(dataset, sample)


def test_topdown_boxes_are_sanitised_like_the_official_loader(tmp_path, dots):
    ann, root = dots
    dataset = json.loads(ann.read_text())
    width = next(image["width"] for image in dataset["images"] if image["id"] == 1)
    dataset["annotations"][0]["bbox"] = [-4.0, -2.0, width + 10.0, 30.0]  # starts left of and ends right of the image
    dataset["annotations"][1]["area"] = 0.0  # the official loader keeps only area > 0
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(dataset))
    topdown = TopDownCocoDataset(path, root, input_size=(64, 48), keypoint_spec=SPEC6, train=False)
    assert len(topdown) == 11 and topdown.skipped == {"box_or_area": 1}
    # moved to x1 = y1 = 0, x2 = min(W - 1, 0 + w - 1) = W - 1: clean box [0, 0, W, 30], centre x + (w - 1) / 2
    assert topdown[0]["center"].tolist() == pytest.approx([(width - 1) / 2, 14.5])
    assert float(topdown[0]["size"][0]) == pytest.approx(max(width, 30 * 0.75) * 1.25)


def test_topdown_train_augmentation_keeps_pixels_and_targets_together(dots):
    augmentation = {"half_body": 0.5, "half_body_min_joints": 3, "rotation_prob": 1.0}
    dataset = TopDownCocoDataset(*dots, input_size=(64, 48), keypoint_spec=SPEC6, augmentation=augmentation)
    torch.manual_seed(0)
    checked, rotations, flips = 0, set(), 0
    for _ in range(3):
        for index in range(len(dataset)):
            sample = dataset[index]
            checked += _assert_white_at_labelled(sample["image"], sample["keypoints"])
            _assert_heatmaps_decode_to_keypoints(dataset, sample)
            rotations.add(round(float(sample["rotation"]), 3))
            flips += int(sample["flipped"])
    assert checked > 100 and len(rotations) > 30 and 5 < flips < 31


def test_topdown_flip_swaps_left_and_right(dots):
    plain = TopDownCocoDataset(*dots, input_size=(64, 48), keypoint_spec=SPEC6, train=False)
    augmentation = {"flip": 1.0, "rotation_prob": 0.0, "scale": 0.0, "half_body": 0.0}
    flipped = TopDownCocoDataset(*dots, input_size=(64, 48), keypoint_spec=SPEC6, augmentation=augmentation)
    for index in range(len(plain)):
        a, b = plain[index], flipped[index]
        assert bool(b["flipped"])
        assert torch.equal(b["image"], a["image"].flip(-1))
        swap = list(SPEC6.flip_indices)
        expected = a["keypoints"][swap].clone()
        labelled = expected[:, 2] > 0
        expected[labelled, 0] = 47 - expected[labelled, 0]
        assert torch.allclose(b["keypoints"], expected, atol=1e-4)
        assert torch.equal(b["target_weight"], a["target_weight"][swap])
        # left hand of the flipped crop is the mirrored right hand: it moved from x to 47 - x
        if labelled[0] and a["keypoints"][1, 2] > 0:
            assert float(b["keypoints"][0, 0]) == pytest.approx(47 - float(a["keypoints"][1, 0]), abs=1e-4)


def test_topdown_half_body_crops_one_half(dots):
    augmentation = {"half_body": 1.0, "half_body_min_joints": 3, "flip": 0.0, "rotation_prob": 0.0, "scale": 0.0}
    dataset = TopDownCocoDataset(*dots, input_size=(64, 48), keypoint_spec=SPEC6, augmentation=augmentation)
    full = TopDownCocoDataset(*dots, input_size=(64, 48), keypoint_spec=SPEC6, train=False)
    torch.manual_seed(1)
    for index in range(len(dataset)):
        sample, reference = dataset[index], full[index]
        kpts = sample["keypoints"]
        inside = (kpts[:, 0] >= -0.5) & (kpts[:, 0] <= 47.5) & (kpts[:, 1] >= -0.5) & (kpts[:, 1] <= 63.5)
        inside &= kpts[:, 2] > 0
        assert not torch.allclose(sample["center"], reference["center"])  # every person has > 3 labelled joints
        assert bool(inside[:3].all()) or bool(inside[3:].all())  # the whole upper or lower half is in the crop


def test_topdown_skips_persons_without_keypoints(tmp_path, dots):
    ann, root = dots
    dataset = json.loads(ann.read_text())
    dataset["annotations"][0]["keypoints"] = [0] * 18
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(dataset))
    topdown = TopDownCocoDataset(path, root, input_size=(64, 48), keypoint_spec=SPEC6)
    assert len(topdown) == 11 and topdown.data.skipped == {"too_few_keypoints": 1}
    multi = MultiPersonCocoDataset(path, root, input_size=96, keypoint_spec=SPEC6, train=False)
    assert sum(int(multi[i]["boxes"].shape[0]) for i in range(len(multi))) == 12  # evaluation keeps every person


def test_multiperson_training_targets_are_persons_with_keypoints_as_yolo_pose(tmp_path, dots):
    # YOLO-Pose's labels hold the "person instances ... having keypoint annotation" (README.md:66): a person without
    # any labelled keypoint is no training target (it was a box target before), unless min_keypoints=0 asks for it.
    from drsinet import drsi_net_s

    ann, root = dots
    dataset = json.loads(ann.read_text())
    dataset["annotations"][0]["keypoints"] = [0] * 18
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(dataset))
    plain = dict(input_size=96, keypoint_spec=SPEC6, mosaic=0.0, scale=(1.0, 1.0), translate=0.0, flip=0.0)
    train = MultiPersonCocoDataset(path, root, **plain)
    assert train.min_keypoints == 1 and train.data.skipped == {"too_few_keypoints": 1}
    assert [int(train[i]["boxes"].shape[0]) for i in range(len(train))] == [1, 2, 2, 2, 2, 2]
    every = MultiPersonCocoDataset(path, root, min_keypoints=0, **plain)
    assert [int(every[i]["boxes"].shape[0]) for i in range(len(every))] == [2] * 6
    model = drsi_net_s(width_multiple=0.25, depth_multiple=0.2, input_size=(128, 128), num_joints=6)
    assert model.train_recipe.augmentation_kwargs()["min_keypoints"] == 1  # printed with its README line
    recipe_dataset = model.training_dataset(path, root, **model.train_recipe.augmentation_kwargs())
    assert recipe_dataset.data.skipped == {"too_few_keypoints": 1}
    with pytest.raises(ValueError, match="min_keypoints"):
        MultiPersonCocoDataset(path, root, min_keypoints=-1, **plain)


def test_multiperson_eval_letterbox_maps_back(dots):
    dataset = MultiPersonCocoDataset(*dots, input_size=96, keypoint_spec=SPEC6, train=False)
    for index in range(len(dataset)):
        sample = dataset[index]
        info = sample["letterbox"]
        assert sample["image"].shape == (3, 96, 96) and sample["image"].dtype == torch.uint8
        assert max(info.resized_size) == 96 and info.pad[:2] == (0, 0)
        persons = dataset.data.persons[dataset.image_ids[index]]
        original = torch.stack([torch.from_numpy(p.keypoints) for p in persons])
        labelled = original[..., 2] > 0
        back = unletterbox_points(sample["keypoints"], info)
        assert torch.allclose(back[labelled], original[labelled], atol=1e-3)
        boxes = torch.tensor([p.bbox_xyxy for p in persons])
        assert torch.allclose(unletterbox_boxes(sample["boxes"], info), boxes, atol=1e-3)
        _assert_white_at_labelled(sample["image"], sample["keypoints"])
        h, w = info.resized_size
        assert (sample["image"][:, h:, :] == 114).all() and (sample["image"][:, :, w:] == 114).all()


def _assert_valid_targets(sample: dict, size: int) -> None:
    boxes, kpts = sample["boxes"], sample["keypoints"]
    assert boxes.shape[0] == kpts.shape[0]
    assert (boxes >= -0.5).all() and (boxes <= size - 0.5).all()
    assert ((boxes[:, 2:] - boxes[:, :2]) > 2).all()
    labelled = kpts[..., 2] > 0
    x, y = kpts[..., 0], kpts[..., 1]
    in_box = (x >= boxes[:, None, 0]) & (x <= boxes[:, None, 2]) & (y >= boxes[:, None, 1]) & (y <= boxes[:, None, 3])
    assert in_box[labelled].all()
    assert (kpts[~labelled] == 0).all()


@pytest.mark.parametrize("mosaic", [1.0, 0.0])
def test_multiperson_train_targets_follow_pixels(dots, mosaic):
    dataset = MultiPersonCocoDataset(*dots, input_size=96, keypoint_spec=SPEC6, mosaic=mosaic)
    torch.manual_seed(0)
    checked = persons = 0
    for _ in range(2):
        for index in range(len(dataset)):
            sample = dataset[index]
            assert sample["image"].shape == (3, 96, 96) and sample["letterbox"] is None
            _assert_valid_targets(sample, 96)
            checked += _assert_white_at_labelled(sample["image"], sample["keypoints"])
            persons += sample["boxes"].shape[0]
    assert checked > 60
    if mosaic:
        assert persons > 2 * 2 * len(dataset)  # mosaics hold people from several images


def test_multiperson_flip_mirrors_and_swaps(dots):
    kwargs = {"input_size": 96, "keypoint_spec": SPEC6}
    for seed in range(4):
        torch.manual_seed(seed)
        a = MultiPersonCocoDataset(*dots, flip=0.0, **kwargs)[seed]
        torch.manual_seed(seed)
        b = MultiPersonCocoDataset(*dots, flip=1.0, **kwargs)[seed]
        assert torch.equal(b["image"], a["image"].flip(-1))
        expected = a["keypoints"][:, list(SPEC6.flip_indices)].clone()
        labelled = expected[..., 2] > 0
        expected[..., 0][labelled] = 95 - expected[..., 0][labelled]
        assert torch.allclose(b["keypoints"], expected, atol=1e-4)
        assert torch.allclose(b["boxes"][:, [0, 2]], 95 - a["boxes"][:, [2, 0]], atol=1e-4)


def test_multiperson_collate_layout(dots):
    dataset = MultiPersonCocoDataset(*dots, input_size=96, keypoint_spec=SPEC6, train=False)
    samples = [dataset[i] for i in range(3)]
    batch = MultiPersonCocoDataset.collate(samples)
    assert batch["images"].shape == (3, 3, 96, 96) and batch["images"].dtype == torch.uint8
    assert batch["targets"].shape == (6, 1 + 4 + 3 * 6)
    assert batch["image_ids"].tolist() == [1, 2, 3] and len(batch["letterbox"]) == 3
    for b, sample in enumerate(samples):
        rows = batch["targets"][batch["targets"][:, 0] == b]
        assert torch.equal(rows[:, 1:5], sample["boxes"])
        assert torch.equal(rows[:, 5:].view(-1, 6, 3), sample["keypoints"])


def test_datasets_on_synthetic_people(tmp_path):
    result = generate_synthetic_coco(tmp_path, 5, image_size=(96, 80), max_people=3, seed=1)
    multi = MultiPersonCocoDataset(result.ann_file, result.image_dir, input_size=128)
    topdown = TopDownCocoDataset(result.ann_file, result.image_dir, input_size=(64, 48))
    torch.manual_seed(0)
    for index in range(len(multi)):
        sample = multi[index]
        assert sample["keypoints"].shape[1:] == (17, 3)
        _assert_valid_targets(sample, 128)
    for index in range(len(topdown)):
        _assert_heatmaps_decode_to_keypoints(topdown, topdown[index])


def test_multiperson_collate_keeps_images_without_persons(dots):
    dataset = MultiPersonCocoDataset(*dots, input_size=96, keypoint_spec=SPEC6, train=False)
    sample = dataset[0]
    empty = {**sample, "boxes": sample["boxes"][:0], "keypoints": sample["keypoints"][:0]}
    batch = MultiPersonCocoDataset.collate([empty, sample])
    assert batch["images"].shape[0] == 2
    assert batch["targets"].shape == (sample["boxes"].shape[0], 1 + 4 + 3 * 6)
    assert (batch["targets"][:, 0] == 1).all()
