"""Reuse posezoo's building blocks in a network of your own, then train it for a few steps.

The small heatmap network below mixes both papers' blocks: a C3DR stage (DRSI-Net's cross-stage module with DRSI
blocks), a V block (VTTransPose's intra-level fusion), a DRSI block and a Res-gnConv (DRSI-Net), and twin
attention (VTTransPose's column-then-row attention) inside a post-norm residual. It predicts K heatmaps at 1/4 of
the input resolution and is trained on one fixed batch of random images with Gaussian targets from
:class:`posecommon.HeatmapCodec` until the loss falls: the point is the wiring, not the accuracy.

    python examples/custom_block_model.py --steps 20 --input-size 128 96
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from drsinet import C3DR, DRSIBlock, ResGnConv
from posecommon import HeatmapCodec, KeypointMSELoss, count_params
from posecommon.layers import ConvNormAct, LayerNorm2d
from vttranspose import TwinAttention, VBlock


class TinyPoseNet(nn.Module):
    """Stride-4 heatmap network built from posezoo blocks.

    Args:
        num_joints: Heatmaps K.
        width: Channels C of the stride-4 features.

    Shape:
        - Input: ``(B, 3, H, W)`` normalised images, H and W multiples of 4
        - Output: ``(B, K, H / 4, W / 4)`` heatmaps
    """

    def __init__(self, num_joints: int = 17, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvNormAct(3, width // 2, 3, stride=2),  # (B, C/2, H/2, W/2)
            ConvNormAct(width // 2, width, 3, stride=2),  # (B, C, H/4, W/4)
        )
        self.c3dr = C3DR(width, width, num_blocks=1)  # DRSI-Net, eq. 9-11
        self.vblock = VBlock(width)  # VTTransPose, Fig. 5
        self.drsi = DRSIBlock(width)  # DRSI-Net, eq. 7-8
        self.mixer = ResGnConv(width, order=3)  # DRSI-Net, eq. 3-6, third-order interaction
        self.attention = TwinAttention(width, num_heads=2)  # VTTransPose, Fig. 3
        self.norm = LayerNorm2d(width)
        self.head = nn.Conv2d(width, num_joints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.drsi(self.vblock(self.c3dr(x)))
        x = x + self.mixer(x)
        x = self.norm(x + self.attention(x))  # post-norm residual, as in the VTTransPose encoder
        return self.head(x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=(128, 96))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-joints", type=int, default=17)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    height, width = args.input_size
    model = TinyPoseNet(args.num_joints, args.width)
    print(f"TinyPoseNet: {count_params(model):,} parameters")

    images = torch.randn(args.batch_size, 3, height, width)
    # Show the shape after each stage (B, C, H/4, W/4 until the head).
    with torch.no_grad():
        x = model.stem(images)
        print(f"stem      {tuple(x.shape)}")
        for name in ("c3dr", "vblock", "drsi", "mixer", "attention"):
            x = getattr(model, name)(x)
            print(f"{name:<9} {tuple(x.shape)}")
        print(f"head      {tuple(model.head(x).shape)}")

    # Gaussian heatmap targets (sigma 2) for random keypoints inside the input, as the top-down datasets make them.
    codec = HeatmapCodec((height, width), (height // 4, width // 4))
    keypoints = torch.rand(args.batch_size, args.num_joints, 2) * torch.tensor([width - 1.0, height - 1.0])
    targets, target_weight = codec.encode(keypoints)
    criterion = KeypointMSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    model.train()
    losses = []
    for step in range(1, args.steps + 1):
        loss = criterion(model(images), targets, target_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step == 1:
            missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
            if missing:
                raise RuntimeError(f"parameters without a finite gradient: {missing}")
            print(f"backward: all {len(list(model.parameters()))} parameter tensors got finite gradients")
        optimizer.step()
        losses.append(float(loss.detach()))
        print(f"step {step} loss {losses[-1]:.6f}")
    print(f"loss {losses[0]:.6f} -> {losses[-1]:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
