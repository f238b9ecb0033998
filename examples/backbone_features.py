"""Reuse DRSI-Net's backbone and ASI-PAN neck in a network for another task, as with timm's ``features_only``.

``drsi_net_s(features_only=True, out_indices=(4, 5, 6))`` is DRSI-Net-s without its pose head: its forward returns
the neck's outputs at strides 8, 16 and 32, and ``feature_info`` says their channels and strides. A small
segmentation head (1x1 projections, upsampling to stride 8, a sum, a 3x3 convolution) is built on them from
``feature_info`` alone and trained for a few steps to predict where people are (the synthetic people's boxes,
rasterised at stride 8) on generated images. ``--weights`` starts the features from a saved DRSI-Net
(``save_pretrained`` directory or safetensors file): the pose head's weights in the file are ignored, everything
else must fit.

    python examples/backbone_features.py --steps 20 --input-size 256
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from drsinet import drsi_net_s
from posecommon import count_params
from posecommon.data import generate_synthetic_coco, load_coco_keypoints
from posecommon.layers import ConvNormAct, FeatureInfo
from posecommon.media.image import load_image
from posecommon.ops.letterbox import letterbox, letterbox_points


class SegmentationHead(nn.Module):
    """FPN-style head: every feature map projected to ``width`` channels, upsampled to the finest map, summed.

    Args:
        feature_info: The maps it takes (channels and strides), e.g. a features-only model's ``feature_info``.
        width: Channels after the projections.
        num_classes: Output channels (mask logits).

    Shape:
        - Input: list of ``(B, feature_info.channels()[i], H / s_i, W / s_i)``
        - Output: ``(B, num_classes, H / s_0, W / s_0)`` with ``s_0 = min(feature_info.reduction())``
    """

    def __init__(self, feature_info: FeatureInfo, width: int = 64, num_classes: int = 1) -> None:
        super().__init__()
        self.project = nn.ModuleList(ConvNormAct(c, width, 1) for c in feature_info.channels())
        self.fuse = ConvNormAct(width, width, 3)
        self.out = nn.Conv2d(width, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[-2:]
        x = sum(F.interpolate(p(f), size=size, mode="nearest") for p, f in zip(self.project, features, strict=True))
        return self.out(self.fuse(x))


class PersonSegmenter(nn.Module):
    """DRSI-Net-s features (neck outputs at strides 8, 16, 32) with :class:`SegmentationHead`."""

    def __init__(self, weights: str | None = None, input_size: int = 256) -> None:
        super().__init__()
        self.features = drsi_net_s(
            pretrained=weights or False, features_only=True, out_indices=(4, 5, 6), input_size=(input_size, input_size)
        )
        self.head = SegmentationHead(self.features.feature_info)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _box_masks(ann_file: Path, image_dir: Path, size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Letterboxed images ``(B, 3, size, size)`` in ``[0, 1]`` and person-box masks ``(B, 1, size/s, size/s)``."""
    data = load_coco_keypoints(ann_file, image_dir)
    images, masks = [], []
    cells = (torch.arange(size // stride) + 0.5) * stride - 0.5  # cell centres in input pixels
    for record in data.images:
        padded, info = letterbox(load_image(record.path), (size, size), 114.0)
        mask = torch.zeros(size // stride, size // stride)
        for person in data.persons.get(record.image_id, []):
            corners = letterbox_points(torch.tensor(person.bbox_xyxy).view(2, 2), info).view(-1)
            inside_x = (cells >= corners[0]) & (cells <= corners[2])
            inside_y = (cells >= corners[1]) & (cells <= corners[3])
            mask = torch.maximum(mask, (inside_y[:, None] & inside_x[None, :]).float())
        images.append(padded.float() / 255.0)
        masks.append(mask[None])
    return torch.stack(images), torch.stack(masks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input-size", type=int, default=256, help="square input, a multiple of 64")
    parser.add_argument("--images", type=int, default=8, help="synthetic training images")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weights", default=None, help="a saved DRSI-Net (save_pretrained dir or .safetensors)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    model = PersonSegmenter(args.weights, args.input_size)
    info = model.features.feature_info
    print(f"features: {info.channels()} channels at strides {info.reduction()} ({info.module_name()})")
    print(f"PersonSegmenter: {count_params(model):,} parameters, head {count_params(model.head):,}")

    with tempfile.TemporaryDirectory() as root:
        split = generate_synthetic_coco(root, args.images, image_size=(args.input_size, args.input_size))
        images, masks = _box_masks(split.ann_file, split.image_dir, args.input_size, min(info.reduction()))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    model.train()
    for step in range(1, args.steps + 1):
        logits = model(images)
        loss = F.binary_cross_entropy_with_logits(logits, masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 1 or step == args.steps:
            print(f"step {step}: loss {loss.item():.4f}, masks {tuple(logits.shape)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
