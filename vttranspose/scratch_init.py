"""He-normal start of the HRNet backbone for training without the ImageNet weights (``backbone_weights="kaiming"``).

The official TransPose code draws every convolution from N(0, 0.001) and BatchNorm as (1, 0)
(``lib/models/transpose_h.py:652-667``), then overwrites the stem and stages 1-3 with ImageNet HRNet-W32
(``:669-680``): N(0, 0.001) is meant for the layers that the ImageNet file does not replace. Training without that
file (offline, e.g. the synthetic main job) therefore starts the whole backbone at N(0, 0.001). Each of those
convolutions feeds a BatchNorm, so its scale does not change the forward pass, but Adam moves every weight by about
the learning rate per step: at lr 2e-3 that is twice a typical weight, so the first steps rewrite the backbone
rather than train it, and tiny float differences between hosts grow into different runs.

HRNet's own from-scratch training (its ImageNet classification) starts the same layers He-normal, fan-out mode, ReLU
gain, with BatchNorm (1, 0) (github.com/HRNet/HRNet-Image-Classification, ``lib/models/cls_hrnet.py:493-501``).
:func:`init_backbone_kaiming` does that for the modules the ImageNet file would fill
(:data:`~vttranspose.imagenet.PRETRAINED_LAYERS`, V blocks included); ``reduce``, the encoder and ``final_layer``
keep the official initialisation. Measured on the README's synthetic main job (``docs/training.md``, "On the
synthetic default"): after 800 steps AP 0.841-0.842 with AVX-512 and AVX2 kernels against 0.69-0.75 from
N(0, 0.001); the README's 600 steps end at 0.768-0.782 on four kernel settings.
"""

from __future__ import annotations

import torch
from torch import nn

from .imagenet import in_backbone

__all__ = ["KAIMING", "init_backbone_kaiming"]

KAIMING = "kaiming"
"""The ``backbone_weights`` value that selects :func:`init_backbone_kaiming`."""


@torch.no_grad()
def init_backbone_kaiming(model: nn.Module) -> tuple[str, ...]:
    """Re-initialise the stem and stages 1-3 as HRNet's ImageNet training starts them (see the module docstring).

    Every ``nn.Conv2d`` under :data:`~vttranspose.imagenet.PRETRAINED_LAYERS` gets ``kaiming_normal_`` (fan-out,
    ReLU) and a zero bias if it has one; every ``nn.BatchNorm2d`` there is reset (weight 1, bias 0, fresh running
    statistics). Other modules are left as they are.

    Args:
        model: A :class:`~vttranspose.VTTransPose` (any module whose backbone uses the official HRNet names).

    Returns:
        The names of the re-initialised convolutions, in module order.
    """
    convs = []
    for name, module in model.named_modules():
        if not in_backbone(name):
            continue
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
            convs.append(name)
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_parameters()
    return tuple(convs)
