"""The whole DRSI-Net training path learns: fitting two synthetic images takes their COCO AP from 0 to about 0.4.

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
STEPS = 350


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
    # Measured with YOLO-Pose's loss (one thread): loss 0.771 -> 0.240 (x 0.31) after 350 steps, almost all of it
    # the keypoint term; with one class there is no class term to drive to zero (the old loss's fell to x 0.05).
    assert float(loss) < 0.4 * first_loss
    assert before["AP"] < 0.05
    # Measured AP every 50 steps (this seed): 0 up to step 200, then 0.416 / 0.135 / 0.484 / 0.416 at 250-400; with
    # seeds 1 and 2 it is above 0.3 from step 225 on (two images make the AP coarse). 350 steps leave a margin over
    # the onset near step 200; kpt_loss="paper" reaches 0.63-0.78 over the same steps.
    assert after["AP"] > 0.2, f"AP {before['AP']:.3f} -> {after['AP']:.3f} after {STEPS} steps on the same images"
