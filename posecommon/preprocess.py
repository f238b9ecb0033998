"""Per-model preprocessing configuration, saved with the model so inference matches training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PreprocessConfig"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessConfig:
    """How images are turned into model inputs.

    Args:
        input_size: Model input ``(H, W)`` in pixels.
        mean: Per-channel mean subtracted after scaling pixels to ``[0, 1]`` (RGB order).
        std: Per-channel standard deviation divided after subtracting the mean (RGB order).
        color_order: Channel order of the input tensor; always ``"RGB"`` in posezoo.
        resize: ``"affine_crop"`` for top-down person crops (box padded to the input aspect ratio) or
            ``"letterbox"`` for whole images scaled to fit and padded at bottom/right.
        pad_value: Pixel value (0-255) used for letterbox padding and for crop areas outside the image.
    """

    input_size: tuple[int, int]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color_order: Literal["RGB"] = "RGB"
    resize: Literal["affine_crop", "letterbox"] = "affine_crop"
    pad_value: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            raise ValueError(f"input_size must be a positive (H, W) pair, got {self.input_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean/std must have 3 entries and std must be positive, got {self.mean}, {self.std}")
        if self.color_order != "RGB":
            raise ValueError(f"color_order must be 'RGB', got {self.color_order!r}")
        if self.resize not in ("affine_crop", "letterbox"):
            raise ValueError(f"resize must be 'affine_crop' or 'letterbox', got {self.resize!r}")

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Scale and normalise RGB images.

        Args:
            images: ``(B, 3, H, W)`` or ``(3, H, W)`` tensor with values in ``[0, 255]`` (any real or uint8 dtype).

        Returns:
            Float tensor of the same shape: ``(images / 255 - mean) / std``.
        """
        if images.dim() not in (3, 4) or images.shape[-3] != 3:
            raise ValueError(f"expected (B, 3, H, W) or (3, H, W) RGB images, got shape {tuple(images.shape)}")
        dtype = images.dtype if images.is_floating_point() else torch.float32
        mean = torch.tensor(self.mean, dtype=dtype, device=images.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=dtype, device=images.device).view(3, 1, 1)
        return (images.to(dtype) / 255.0 - mean) / std

    def to_dict(self) -> dict[str, Any]:
        """JSON-able representation (inverse of :meth:`from_dict`)."""
        return {
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "color_order": self.color_order,
            "resize": self.resize,
            "pad_value": self.pad_value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        """Rebuild a config written by :meth:`to_dict`."""
        return cls(**{**data, "input_size": tuple(data["input_size"])})
