"""The whole DRSI-Net training path learns: fitting two synthetic images takes their COCO AP from 0 to about 0.3.

Data -> letterbox targets -> anchor assignment -> YOLO-Pose loss -> optimiser -> decode -> NMS -> unletterbox ->
OKS / COCOeval all have to agree on coordinates for this to pass; an off-by-a-stride or swapped-axis bug anywhere
keeps the keypoints off and the AP at zero.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from drsinet import drsi_net_s
from posecommon.data import MultiPersonCocoDataset
from posecommon.data.synthetic import generate_synthetic_coco
from posecommon.evaluation.runner import evaluate_model

SIZE = 128
STEPS = 250


@pytest.mark.slow
def test_drsi_net_fits_two_images(tmp_path: Path) -> None:
    generate_synthetic_coco(
        tmp_path, 2, image_size=(SIZE, SIZE), max_people=2, seed=3, split="train", person_scale=(0.6, 0.9)
    )
    ann, images = tmp_path / "annotations" / "person_keypoints_train.json", tmp_path / "train"
    torch.manual_seed(0)
    model = drsi_net_s(input_size=(SIZE, SIZE), width_multiple=0.25, depth_multiple=0.2)
    dataset = model.training_dataset(ann, images, train=False)
    batch = MultiPersonCocoDataset.collate([dataset[i] for i in range(len(dataset))])
    task = model.training_task(len(dataset))
    before, _ = evaluate_model(model, ann, images, progress=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    first_loss = None
    for _ in range(STEPS):
        model.train()
        loss, _ = task.loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first_loss = first_loss if first_loss is not None else float(loss)
    after, _ = evaluate_model(model, ann, images, progress=False)
    assert float(loss) < 0.2 * first_loss
    assert before["AP"] < 0.05
    # Measured: 0.000 -> 0.322 after 250 steps (0.333 after 400: the tiny model plateaus there).
    assert after["AP"] > 0.2, f"AP {before['AP']:.3f} -> {after['AP']:.3f} after {STEPS} steps on the same images"
