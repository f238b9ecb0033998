"""DRSI-Net's COCO training recipe: the paper's optimiser and schedule on YOLO-Pose's training loop.

The paper (Sec. 4.2) gives SGD with lr 3e-3, momentum 0.937, weight decay 5e-4, a cosine schedule, 300 epochs,
batch sizes 36 / 16 / 8 for s / m / l, and mosaic, flip, translation and scale augmentation. Everything else is
YOLO-Pose's code (github.com/TexasInstruments/edgeai-yolov5, branch ``yolo-pose``; ``train.py``,
``data/hyp.scratch.yaml`` and ``utils/`` at the cited lines), which DRSI-Net is built on.

Batch sizes: the paper's 36 / 16 / 8 are read as the total over its four GPUs (YOLOv5's ``--batch-size`` is the
total, ``train.py:468``); the YOLO-Pose layouts ``yolo_pose_s6/m6/l6`` have no batch size in the paper and use
YOLO-Pose's published command, 64 for every size (``README.md:80-82``). Gradients are accumulated to the nominal
batch of 64 (``train.py:110-111``): 2 batches of 36, 4 of 16, 8 of 8, 1 of 64.

The YOLO-Pose layouts train as YOLO-Pose's published models did (:func:`drsi_recipe`): lr0 0.01 (``hyp:7``; the
released checkpoints are named ``..._lr_0p01``, ``README.md:59-62``), starting from a person-detector checkpoint of
the same size (``README.md:64-65, 80``; ``train.py:83-93`` loads ``--weights`` by intersecting names and shapes),
which ``posezoo train --init-weights`` does. DRSI-Net's paper gives lr 3e-3 and does not say how the weights were
initialised; posezoo trains DRSI-Net from scratch (docs/design/drsinet.md, "Model initialisation").

Training persons (``min_keypoints``): YOLO-Pose's label files hold the "person instances in COCO dataset having
keypoint annotation" (``README.md:66``), so persons without any labelled keypoint are not training targets.
"""

from __future__ import annotations

from posecommon.train.recipe import TrainRecipe

__all__ = ["DRSI_RECIPE", "PAPER_BATCH_SIZES", "YOLO_POSE_LR", "drsi_recipe"]

_PAPER = "DRSI-Net paper Sec. 4.2"
_HYP = "yolo-pose data/hyp.scratch.yaml"

DRSI_RECIPE = TrainRecipe(
    name="DRSI-Net on COCO (paper Sec. 4.2 on YOLO-Pose's train.py, branch yolo-pose)",
    epochs=300,
    batch_size=36,
    optimizer="sgd",
    lr=3e-3,
    lr_final=3e-3 * 0.2,
    momentum=0.937,
    weight_decay=5e-4,
    schedule="epoch_cosine",
    nominal_batch_size=64,
    warmup_epochs=3.0,
    warmup_min_steps=1000,
    warmup_bias_lr=0.1,
    warmup_momentum=0.8,
    ema_decay=0.9999,
    ema_ramp=2000.0,
    grad_clip=None,
    amp="auto",
    keep_best=False,
    initialisation="from scratch (the DRSI-Net paper does not say)",
    augmentation=(
        ("mosaic", 1.0),
        ("flip", 0.5),
        ("translate", 0.1),
        ("scale", (0.5, 1.5)),
        ("hsv_h", 0.015),
        ("hsv_s", 0.7),
        ("hsv_v", 0.4),
        ("min_keypoints", 1),
    ),
    sources=(
        ("epochs", f"{_PAPER}; train.py:467"),
        ("batch_size", f"{_PAPER} (s 36, m 16, l 8); yolo_pose_s6/m6/l6: README.md:80-82 (64)"),
        ("optimizer", f"{_PAPER}; Nesterov: train.py:127"),
        ("lr", f"{_PAPER} (YOLO-Pose: lr0 0.01, {_HYP}:7)"),
        ("lr_final", f"lr * lrf, lrf 0.2 ({_HYP}:8); cosine one_cycle per epoch: train.py:139, :348"),
        ("momentum", f"{_PAPER}; {_HYP}:9"),
        ("weight_decay", f"{_PAPER}; {_HYP}:10; x batch * accumulate / 64: train.py:112"),
        ("schedule", "train.py:139 (one_cycle, utils/general.py:220-222), :348 (per epoch), :285-293 (warm-up)"),
        ("nominal_batch_size", "train.py:110-111, :288, :316"),
        ("warmup_epochs", f"{_HYP}:11"),
        ("warmup_min_steps", "train.py:238"),
        ("warmup_bias_lr", f"{_HYP}:13; train.py:291"),
        ("warmup_momentum", f"{_HYP}:12; train.py:293"),
        ("ema_decay", "utils/torch_utils.py:279 (ModelEMA), updated per optimiser step: train.py:320-321"),
        ("ema_ramp", "utils/torch_utils.py:285"),
        ("grad_clip", "none in train.py:313-319"),
        ("amp", "autocast and GradScaler on CUDA: train.py:243, :304"),
        (
            "keep_best",
            "the published weights are weights/last.pt (README.md:59-62); train.py:389-408 keeps best.pt by box-mAP "
            "fitness (utils/metrics.py:12-15)",
        ),
        ("initialisation", "DRSI-Net paper Sec. 4.2 is silent; docs/design/drsinet.md 'Model initialisation'"),
        (
            "augmentation",
            f"{_PAPER} (mosaic 1, flip 0.5, translation, scale [0.5, 1.5]); {_HYP}:24-26 (hsv), :28 (translate), "
            ":29 (scale 0.5), :33 (fliplr), :34 (mosaic); min_keypoints 1: README.md:66 (persons having keypoint "
            "annotation)",
        ),
    ),
)
"""The DRSI-Net-s recipe; :func:`drsi_recipe` gives each registered model's."""

YOLO_POSE_LR = 0.01
"""lr0 of YOLO-Pose's published models (``data/hyp.scratch.yaml:7``; checkpoint names ``..._lr_0p01``,
``README.md:59-62``)."""

_YOLO_POSE_CHANGES = {
    "lr": YOLO_POSE_LR,
    "lr_final": YOLO_POSE_LR * 0.2,
    "initialisation": "person-detector checkpoint of the same size (pass --init-weights)",
}
_YOLO_POSE_SOURCES = {
    "lr": f"{_HYP}:7; released checkpoints are named ..._lr_0p01 (README.md:59-62)",
    "lr_final": f"lr * lrf, lrf 0.2 ({_HYP}:8)",
    "initialisation": "README.md:64-65 (person detectors as pretrained models), :80 (--weights); loaded by "
    "intersecting names and shapes, train.py:83-93",
}

PAPER_BATCH_SIZES = {
    "drsi_net_s": 36,
    "drsi_net_m": 16,
    "drsi_net_l": 8,
    "yolo_pose_s6": 64,
    "yolo_pose_m6": 64,
    "yolo_pose_l6": 64,
}
"""Total batch size per model: the paper's for DRSI-Net s / m / l, YOLO-Pose's published command's for the
YOLO-Pose layout (see the module docstring)."""


def drsi_recipe(model_name: str) -> TrainRecipe:
    """The recipe of a registered DRSI-Net-family model (unknown names get DRSI-Net-s's).

    DRSI-Net s / m / l: the paper's (lr 3e-3, its batch sizes). ``yolo_pose_s6/m6/l6``: YOLO-Pose's published
    recipe, lr 0.01 (:data:`YOLO_POSE_LR`) and batch 64, meant to start from a person-detector checkpoint.
    """
    recipe = DRSI_RECIPE.replace(batch_size=PAPER_BATCH_SIZES.get(model_name, DRSI_RECIPE.batch_size))
    if not model_name.startswith("yolo_pose_"):
        return recipe
    sources = dict(recipe.sources) | _YOLO_POSE_SOURCES
    name = "YOLO-Pose on COCO (README.md:59-62, 80 and train.py, branch yolo-pose)"
    return recipe.replace(name=name, **_YOLO_POSE_CHANGES, sources=tuple(sources.items()))
