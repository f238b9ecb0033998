"""VTTransPose and TransPose-H-S: HRNet-S-W32, a transformer encoder over the 1/4 feature map, a 1x1 heatmap head.

``vttranspose_h_s`` is the paper's model (Sci. Rep. 14:7608, 2024), ``transpose_h_s`` the official TransPose-H-S
it improves on, ``transpose_h_s_twin`` the middle row of the paper's Table 5 (twin-attention encoder, basic
blocks kept).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from posecommon.config import replace_config
from posecommon.data.topdown import TopDownAugmentation, TopDownCocoDataset
from posecommon.errors import InvalidInputError
from posecommon.keypoints import KeypointSpec
from posecommon.layers import FeatureInfo, take_indices
from posecommon.model import PoseModel, build_model
from posecommon.predict import CPU_CHUNK_PIXELS, run_predict
from posecommon.preprocess import PreprocessConfig
from posecommon.registry import ModelInfo, PaperFigures, model_table, register_model
from posecommon.structures import PoseResult
from posecommon.train.recipe import TrainRecipe
from posecommon.train.topdown_task import TopDownTask

from .blocks import (
    AxialPositionEmbedding,
    TransformerEncoder,
    TransformerEncoderLayer,
    TwinEncoder,
    TwinEncoderLayer,
    sine_position_table,
)
from .config import VARIANTS, VTTransPoseConfig
from .hrnet import HRNetSLayers
from .imagenet import BackboneLoadReport, load_backbone_weights
from .predict import TopDownKernel
from .recipe import vttranspose_recipe
from .scratch_init import KAIMING, init_backbone_kaiming

__all__ = ["MODELS", "VTTransPose", "feature_size", "transpose_h_s", "transpose_h_s_twin", "vttranspose_h_s"]


def feature_size(input_size: tuple[int, int]) -> tuple[int, int]:
    """Size ``(h, w)`` of the 1/4 feature map (two 3x3 stride-2 convolutions with padding 1) for ``(H, W)``."""
    return tuple(((n + 1) // 2 + 1) // 2 for n in input_size)  # type: ignore[return-value]


class VTTransPose(HRNetSLayers, PoseModel):
    """VTTransPose / TransPose-H-S top-down pose model.

    HRNet-S-W32 (optionally with V blocks in the 1/16 branch of stage 3) gives a 32-channel map at 1/4 of the
    input; ``reduce`` (1x1 conv) maps it to d channels; ``global_encoder`` refines it (twin attention or full
    self-attention); ``final_layer`` (1x1 conv) predicts K heatmaps. Attribute names are the official
    TransPose-H's, so the official checkpoint loads into ``transpose_h_s`` with identical keys.

    Readings: see :class:`~vttranspose.VTTransPoseConfig` (V-block count and placement), :class:`~vttranspose.VBlock`,
    :class:`~vttranspose.TwinAttention`, :class:`~vttranspose.DWSeparableFFN` and
    :class:`~vttranspose.AxialPositionEmbedding`. Initialisation follows the official code: convolutions
    N(0, 0.001), BatchNorm (1, 0), linear layers Xavier-uniform with zero bias; the official training then starts
    the stem and stages 1-3 from ImageNet HRNet-W32 (:meth:`init_backbone`, ``backbone_weights="imagenet"``).

    Build option (a keyword of the entrypoints beside the config fields): ``backbone_weights``, ``"none"`` (the
    default), ``"imagenet"`` (the official training start: ImageNet HRNet-W32 in the stem and stages 1-3,
    :meth:`init_backbone`), the path of a safetensors file in that layout, or ``"kaiming"`` (He-normal stem and
    stages 1-3, how HRNet trains from scratch: :mod:`vttranspose.scratch_init`); not together with ``pretrained=``.

    Reuse in other networks (timm's interface, :mod:`posecommon.layers.features`): ``feature_info`` lists four
    maps, HRNet's three branches after stage 3 (strides 4, 8, 16, with the V blocks in the 1/16 one,
    :meth:`~vttranspose.hrnet.HRNetSLayers.hrnet_maps`) and the encoder's output (d channels, stride 4);
    :meth:`forward_features` gives the encoder's output (what the head takes), :meth:`forward_intermediates` any
    selection, and ``vttranspose_h_s(features_only=True)`` the model without its head
    (:class:`~posecommon.layers.FeatureListNet`).

    Args:
        config: Architecture (see :data:`~vttranspose.config.VARIANTS`).
        keypoint_spec: Keypoint set; defaults to COCO-17 for 17 joints.

    Shape:
        - Input: ``(B, 3, H, W)`` normalised RGB crops (any size; built for ``config.input_size``)
        - Output: ``(B, K, ceil(H / 4), ceil(W / 4))`` raw heatmaps, in train and eval mode alike
    """

    variants: ClassVar[dict[str, VTTransPoseConfig]] = VARIANTS
    build_options: ClassVar[tuple[str, ...]] = ("backbone_weights",)
    head_prefixes: tuple[str, ...] = ("final_layer.",)
    """State-dict prefixes of the keypoint head (replaced when fine-tuning for another ``num_joints``)."""
    head_modules: tuple[str, ...] = ("final_layer",)

    @property
    def train_recipe(self) -> TrainRecipe:  # type: ignore[override]
        """Paper, "Training details": Adam, cosine annealing from 1e-4 to 1e-5 per epoch, 240 epochs of batch 16 in
        float32, best validation AP kept; batch 32 for ``transpose_h_s`` (:mod:`vttranspose.recipe`)."""
        return vttranspose_recipe(self.model_name)

    def __init__(self, config: VTTransPoseConfig, keypoint_spec: KeypointSpec | None = None) -> None:
        super().__init__(config, keypoint_spec)
        d = config.d_model
        grid_h, grid_w = feature_size(config.input_size)
        if config.pos_embed == "sine":
            # Frozen parameter (not a buffer) as in the official model, so it is in the checkpoint.
            self.pos_embedding: nn.Module | nn.Parameter = nn.Parameter(
                sine_position_table(grid_h, grid_w, d), requires_grad=False
            )
        else:
            self.pos_embedding = AxialPositionEmbedding(d, grid_h, grid_w)
        self.build_hrnet_s(
            config.width,
            config.stage3_modules,
            config.blocks_per_branch,
            config.vblocks_per_module(),
            config.vblock_scales,
        )
        self.reduce = nn.Conv2d(config.width, d, 1, bias=False)
        if config.attention == "full":
            layer_args = (d, config.num_heads, config.dim_feedforward, config.dropout)
            self.global_encoder: nn.Module = TransformerEncoder(
                [TransformerEncoderLayer(*layer_args) for _ in range(config.num_layers)]
            )
        else:
            self.global_encoder = TwinEncoder(
                [
                    TwinEncoderLayer(d, config.num_heads, config.ffn, config.dim_feedforward, config.dropout)
                    for _ in range(config.num_layers)
                ]
            )
        self.final_layer = nn.Conv2d(d, config.num_joints, 1)
        self.feature_info = FeatureInfo(
            [*self.hrnet_feature_info(), {"num_chs": d, "reduction": 4, "module": "global_encoder"}]
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.001)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.MultiheadAttention):
                nn.init.xavier_uniform_(module.in_proj_weight)
                nn.init.zeros_(module.in_proj_bias)

    @property
    def preprocess(self) -> PreprocessConfig:
        """ImageNet mean/std, RGB, top-down affine crop to ``config.input_size``."""
        return PreprocessConfig(input_size=self.config.input_size, resize="affine_crop")

    def _sine_table(self, h: int, w: int, ref: torch.Tensor) -> torch.Tensor:
        """The stored table for the grid it was built for, otherwise the same formula for ``(h, w)``."""
        table = self.pos_embedding
        if table.shape[0] == h * w and feature_size(self.config.input_size) == (h, w):
            return table
        return sine_position_table(h, w, self.config.d_model, device=ref.device, dtype=ref.dtype)

    def forward_encoder(self, x: torch.Tensor) -> torch.Tensor:
        """Position embedding and encoder on the reduced feature map.

        Shape:
            - Input: ``(B, d, h, w)``
            - Output: ``(B, d, h, w)``
        """
        b, d, h, w = x.shape
        sine = self.config.pos_embed == "sine"
        if self.config.attention == "full":
            if not sine:
                x = self.pos_embedding(x)
            seq = x.flatten(2).permute(2, 0, 1)  # (h*w, B, d), row-major tokens, sequence first as official
            seq = self.global_encoder(seq, self._sine_table(h, w, x) if sine else None)
            return seq.permute(1, 2, 0).reshape(b, d, h, w)
        if sine:  # a twin encoder with the sine table: added once, like the axial embeddings
            return self.global_encoder(x + self._sine_table(h, w, x).permute(1, 2, 0).reshape(1, d, h, w))
        return self.global_encoder(self.pos_embedding(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """HRNet, ``reduce`` and the encoder: the map the head takes.

        Shape:
            - Input: ``(B, 3, H, W)``
            - Output: ``(B, d, ceil(H / 4), ceil(W / 4))``
        """
        return self.forward_encoder(self.reduce(self.forward_hrnet(x)))

    def forward_intermediates(
        self, x: torch.Tensor, indices: int | list[int] | None = None, intermediates_only: bool = False
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The maps of ``feature_info`` selected by ``indices``: 0-2 HRNet's branches (strides 4, 8, 16), 3 the
        encoder's output.

        Args:
            x: Input crops.
            indices: ``None`` (all four), an int ``n`` (the last ``n``) or a list of indices
                (:func:`~posecommon.layers.take_indices`).
            intermediates_only: Return only the selected maps (the encoder does not run when none needs it).

        Returns:
            ``(forward_features(x), selected maps)``, or the selected maps alone.

        Shape:
            - Input: ``(B, 3, H, W)``
            - Output: maps ``(B, feature_info.channels()[i], ceil(H / s_i), ceil(W / s_i))``
        """
        chosen, last = take_indices(len(self.feature_info), indices)
        maps = self.hrnet_maps(x)
        if not (intermediates_only and last < 3):
            maps.append(self.forward_encoder(self.reduce(maps[0])))
        selected = [maps[i] for i in chosen]
        return selected if intermediates_only else (maps[3], selected)

    def predict_kernel(
        self,
        flip_test: bool = True,
        use_dark: bool = True,
        padding: float = 1.25,
        input_size: tuple[int, int] | None = None,
        crop_batch_size: int = 32,
    ) -> TopDownKernel:
        """The kernel :meth:`predict` runs (crop per box, flip test, DARK decoding, instance score ``box score x
        mean keypoint confidence > 0.2``); its arguments are this model's prediction options.

        Args:
            flip_test: Average with the mirrored crops' heatmaps (TransPose's flip test).
            use_dark: Decode with DARK (TransPose's default); otherwise argmax + quarter-pixel shift.
            padding: Box padding factor.
            input_size: Crop size ``(H, W)``; ``None``: the size the model was built for.
            crop_batch_size: Crops per forward pass.
        """
        return TopDownKernel(self, flip_test, use_dark, padding, input_size, crop_batch_size)

    def predict(
        self,
        source: Any,
        boxes: torch.Tensor | np.ndarray | list | None = None,
        box_scores: torch.Tensor | np.ndarray | list | None = None,
        **options: Any,
    ) -> PoseResult | list[PoseResult] | Iterator[PoseResult]:
        """Keypoints of the people in the given boxes, or of the whole image (:meth:`PoseModel.predict
        <posecommon.PoseModel.predict>` with per-image boxes).

        Args:
            source: An image, a list of images, a directory, glob, URL, video or generator.
            boxes: Person boxes ``(x1, y1, x2, y2)`` in image pixels: ``(N, 4)`` for a single image, a list with
                one ``(N_i, 4)`` entry per image for a list input; ``None``: the whole image is one box.
            box_scores: Detector scores, shaped like ``boxes`` without the last axis; 1 when omitted.
            **options: The options of :meth:`predict_kernel` and the run options
                (:class:`~posecommon.predict.RunOptions`).

        Returns:
            As :meth:`PoseModel.predict <posecommon.PoseModel.predict>`; keypoints ``(N, K, 3)``
            ``(x, y, heatmap maximum)`` in image pixels.

        Raises:
            InvalidInputError: malformed boxes or scores, boxes for a stream, or a bad option.
            BadImageError: an image cannot be loaded.
        """
        per_image = {"boxes": boxes, "box_scores": box_scores}
        return run_predict(self.predict_kernel, source, per_image=per_image, **options)

    def apply_build_options(self, pretrained: bool, backbone_weights: str | Path = "none") -> None:
        """Initialise the backbone as ``backbone_weights`` says (see the class docstring).

        Raises:
            InvalidInputError: backbone weights together with ``pretrained=`` (which replaces the whole model).
        """
        if str(backbone_weights) == "none":
            return
        if pretrained:
            raise InvalidInputError(
                f"pass pretrained= or backbone_weights=, not both: pretrained weights replace the whole model, "
                f"including the {str(backbone_weights)!r} backbone"
            )
        self.init_backbone(backbone_weights)

    def init_backbone(self, weights: str | Path = "imagenet") -> BackboneLoadReport | None:
        """Initialise the stem and stages 1-3 from ImageNet HRNet-W32, as the official recipe does, or He-normal.

        Args:
            weights: ``"imagenet"`` (``timm/hrnet_w32.ms_in1k`` at a pinned commit, through huggingface_hub) or a
                safetensors file in the same layout (see :func:`~vttranspose.imagenet.load_backbone_weights`);
                ``"kaiming"``: no file, the start of HRNet's own training from scratch
                (:func:`~vttranspose.scratch_init.init_backbone_kaiming`).

        Returns:
            The load report, also kept as ``self.backbone_report``; None for ``"kaiming"`` (nothing is loaded).
        """
        if str(weights) == KAIMING:
            init_backbone_kaiming(self)
            self.backbone_report = None
        else:
            self.backbone_report = load_backbone_weights(self, weights)
        return self.backbone_report

    def training_task(self, global_batch_size: int) -> TopDownTask:
        """Target-weighted heatmap MSE on normalised crops (the batch size does not enter the loss)."""
        return TopDownTask(self.preprocess)

    def training_dataset(
        self, ann_file: str | Path, image_dir: str | Path, train: bool = True, **augmentation: float
    ) -> Dataset:
        """A :class:`~posecommon.data.TopDownCocoDataset` at this model's input size and keypoint set.

        Args:
            ann_file: COCO keypoints JSON.
            image_dir: Its image directory.
            train: Random augmentation on.
            **augmentation: Overrides of :class:`~posecommon.data.TopDownAugmentation` (the TP-H-S recipe), e.g.
                ``rotation=15``.
        """
        return TopDownCocoDataset(
            ann_file,
            image_dir,
            self.config.input_size,
            self.keypoint_spec,
            train=train,
            augmentation=replace_config(TopDownAugmentation(), **augmentation),
            pad_value=0.0,
        )

    @property
    def cpu_chunk_pixels(self) -> int:
        """Largest ``batch x H x W`` per call that :func:`~posecommon.inference_module` runs on CPU.

        The default budget (:data:`~posecommon.predict.CPU_CHUNK_PIXELS`, eight 256x192 crops) for twin attention,
        which gains from batching; one crop per call for the official full attention, whose per-image time grows
        with the batch (measurements: docs/benchmarks.md, "bf16 and batch scaling").
        """
        return 1 if self.config.attention == "full" else CPU_CHUNK_PIXELS

    def fuse(self) -> VTTransPose:
        """Rewrite for inference (eval mode): outputs equal to float rounding, less work.

        Every BatchNorm is folded into its convolution, each AsymmetricConv merged into one 3x3, and the official
        full attention runs without materialising its discarded weights
        (:meth:`~vttranspose.blocks.TransformerEncoderLayer.for_inference_`).
        """
        super().fuse()
        self.fuse_stem_()
        for module in self.modules():
            if isinstance(module, TransformerEncoderLayer):
                module.for_inference_()
        return self


MODELS = model_table(
    ModelInfo(
        "vttranspose_h_s",
        "vttranspose",
        "VTTransPose: HRNet-S-W32 with 8 V blocks + 4-layer twin-attention encoder (d=64)",
        PaperFigures(6.0, 5.4, (256, 192), ap=74.6, source="VTTransPose paper, Table 3 (COCO val2017)"),
    ),
    ModelInfo(
        "transpose_h_s",
        "vttranspose",
        "TransPose-H-S baseline: HRNet-S-W32 + 4-layer full self-attention encoder (official layout)",
        PaperFigures(8.0, 10.2, (256, 192), ap=74.2, source="VTTransPose paper, Table 3 (COCO val2017)"),
    ),
    ModelInfo(
        "transpose_h_s_twin",
        "vttranspose",
        "TransPose-H-S + twin attention (Table 5 ablation): basic blocks kept, twin-attention encoder",
        PaperFigures(8.0, None, (256, 192), ap=76.3, source="VTTransPose paper, Table 5 (COCO val2017, GT boxes)"),
    ),
)
"""Paper figures of the registered models (their architectures: :data:`~vttranspose.config.VARIANTS`)."""


@register_model(MODELS)
def vttranspose_h_s(pretrained: bool | str = False, **kwargs: Any) -> VTTransPose:
    """The paper's VTTransPose, 6.0M params; keywords: :class:`~vttranspose.config.VTTransPoseConfig` fields and
    ``backbone_weights`` (see :class:`VTTransPose` and :func:`~posecommon.build_model`)."""
    return build_model(VTTransPose, "vttranspose_h_s", pretrained, **kwargs)


@register_model(MODELS)
def transpose_h_s(pretrained: bool | str = False, **kwargs: Any) -> VTTransPose:
    """TransPose-H-S in the official layout (the official checkpoint converts into it); keywords as
    :func:`vttranspose_h_s`."""
    return build_model(VTTransPose, "transpose_h_s", pretrained, **kwargs)


@register_model(MODELS)
def transpose_h_s_twin(pretrained: bool | str = False, **kwargs: Any) -> VTTransPose:
    """TransPose-H-S with the twin-attention encoder, basic blocks kept (Table 5, middle row); keywords as
    :func:`vttranspose_h_s`."""
    return build_model(VTTransPose, "transpose_h_s_twin", pretrained, **kwargs)
