"""VTTransPose's COCO training recipe: the paper's "Training details" on TransPose's training code.

The paper gives Adam, 240 epochs, batch 16 and a cosine annealing of the learning rate from 1e-4 to 1e-5, and uses
TransPose's data augmentation. The rest is TransPose's code (github.com/yangsenius/TransPose): the TP-H yaml
``experiments/coco/transpose_h/TP_H_w32_256x192_stage3_1_4_d64_h128_relu_enc4_mh1.yaml`` (TRAIN and DATASET
sections), ``tools/train.py`` (``CosineAnnealingLR(T_max=END_EPOCH, eta_min=LR_END)`` stepped once per epoch) and
``lib/utils/utils.py`` (Adam with torch's default betas and no weight decay).

TransPose trained in float32: ``lib/core/function.py:44-62`` has no autocast or gradient scaler, and the paper's
environment (Table 2) is Torch 1.2.0, which has no automatic mixed precision; so the recipe's ``amp`` is ``"none"``
(``--amp`` opts in). TransPose keeps the checkpoint with the best validation AP (``tools/train.py:208-231``,
``lib/utils/utils.py:79-84``), which ``keep_best`` reproduces. Batch: the paper's 16 for VTTransPose and its
Table 5 ablation; TransPose-H-S's own run used 16 per GPU on two GPUs (:func:`vttranspose_recipe`).
"""

from __future__ import annotations

from posecommon.data.topdown import TopDownAugmentation
from posecommon.train.recipe import TrainRecipe

__all__ = ["TRANSPOSE_H_S_BATCH_SIZE", "VTTRANSPOSE_RECIPE", "vttranspose_recipe"]

_PAPER = 'VTTransPose paper, "Training details"'
_YAML = "TransPose TP_H_w32 yaml"

VTTRANSPOSE_RECIPE = TrainRecipe(
    name="VTTransPose on COCO (paper 'Training details' on TransPose's training code)",
    epochs=240,
    batch_size=16,
    optimizer="adam",
    lr=1e-4,
    lr_final=1e-5,
    momentum=0.9,
    weight_decay=0.0,
    schedule="epoch_cosine",
    amp="none",
    keep_best=True,
    initialisation="ImageNet HRNet-W32 backbone (--backbone-weights imagenet, the default on COCO-format data)",
    # the TP-H-S values, documented in one place (the half-body threshold 8 and padding 1.5 are its defaults too)
    augmentation=tuple(
        (name, getattr(TopDownAugmentation(), name))
        for name in ("flip", "rotation", "rotation_prob", "scale", "half_body")
    ),
    sources=(
        ("epochs", f"{_PAPER}; {_YAML}:88"),
        ("batch_size", f"{_PAPER} (TransPose: 16 per GPU on 2 GPUs, {_YAML}:7, :85)"),
        ("optimizer", f"{_PAPER}; {_YAML}:89; lib/utils/utils.py:70-74"),
        ("lr", f"{_PAPER}; {_YAML}:90"),
        ("lr_final", f"{_PAPER}; {_YAML}:91"),
        ("momentum", "Adam beta1: torch's default, lib/utils/utils.py:71-74 passes no betas"),
        ("weight_decay", "none for Adam: lib/utils/utils.py:71-74 (WD 0.1 of the yaml is SGD's)"),
        ("schedule", "tools/train.py:194-195 (CosineAnnealingLR), :213 (stepped per epoch)"),
        ("amp", "float32: no autocast in lib/core/function.py:44-62; paper Table 2: Torch 1.2.0 (no AMP)"),
        ("keep_best", "tools/train.py:208-231 (model_best.pth when AP >= the best so far), lib/utils/utils.py:79-84"),
        ("initialisation", f"{_YAML}:37 (MODEL.PRETRAINED), :47-56 (PRETRAINED_LAYERS)"),
        (
            "augmentation",
            f"{_PAPER} (TransPose's): posecommon.data.TopDownAugmentation; {_YAML}:17-22 (flip, half body 0.3 above 8 "
            "joints, rotation 45, scale 0.35); lib/dataset/JointsDataset.py:66-109, 146-166",
        ),
    ),
)
"""The recipe of VTTransPose (and of the Table 5 ablation ``transpose_h_s_twin``); :func:`vttranspose_recipe` gives
each registered model's."""

TRANSPOSE_H_S_BATCH_SIZE = 32
"""TransPose-H-S's own batch: 16 per GPU on the two GPUs of its yaml (``GPUS: (0,1)``, line 7;
``TRAIN.BATCH_SIZE_PER_GPU: 16``, line 85)."""


def vttranspose_recipe(model_name: str) -> TrainRecipe:
    """The recipe of a registered VTTransPose-family model: :data:`VTTRANSPOSE_RECIPE`, with batch
    :data:`TRANSPOSE_H_S_BATCH_SIZE` for the ``transpose_h_s`` baseline (the paper gives 16 for its own runs only)."""
    if model_name != "transpose_h_s":
        return VTTRANSPOSE_RECIPE
    sources = dict(VTTRANSPOSE_RECIPE.sources) | {"batch_size": f"TransPose-H-S: 16 per GPU x 2 GPUs, {_YAML}:7, :85"}
    return VTTRANSPOSE_RECIPE.replace(
        name="TransPose-H-S on COCO (TransPose's TP-H-S yaml and training code)",
        batch_size=TRANSPOSE_H_S_BATCH_SIZE,
        sources=tuple(sources.items()),
    )
