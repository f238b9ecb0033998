"""Turn user images (path, PIL, numpy, tensor) into RGB ``uint8`` tensors, with clear errors for anything else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import BadImageError

__all__ = ["ImageInput", "load_image"]

ImageInput = str | Path | Image.Image | np.ndarray | torch.Tensor
"""Anything :func:`load_image` accepts."""


def _from_pil(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if image.mode == "F":
        raise BadImageError("float ('F' mode) PIL images are not supported; convert to 8-bit RGB first")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGB", image.size, (0, 0, 0))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return np.asarray(background)
    return np.asarray(image.convert("RGB"))


def _from_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise BadImageError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 array, got shape {array.shape}")
    if array.dtype == np.uint16:
        array = np.clip(array.astype(np.float64) / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise BadImageError(
            f"expected a uint8 (or uint16) image array, got dtype {array.dtype}; scale to 0-255 and cast to uint8"
        )
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        alpha = array[..., 3:4].astype(np.float32) / 255.0
        array = (array[..., :3].astype(np.float32) * alpha + 0.5).astype(np.uint8)
    return array


def load_image(image: ImageInput) -> torch.Tensor:
    """Load one image as an RGB ``uint8`` tensor.

    Grayscale is replicated to three channels, RGBA is composited onto black, 16-bit images are scaled to 8 bits.

    Args:
        image: A file path, a PIL image, a numpy ``(H, W)``/``(H, W, C)`` uint8 or uint16 array (RGB order), or a
            ``(3, H, W)`` uint8 tensor.

    Returns:
        ``(3, H, W)`` uint8 tensor on the CPU (or on the input tensor's device).

    Raises:
        BadImageError: missing or unreadable file, unsupported mode/dtype/shape, or an empty image.
    """
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3 or image.dtype != torch.uint8:
            raise BadImageError(
                f"tensor images must be (3, H, W) uint8 RGB, got shape {tuple(image.shape)} dtype {image.dtype}"
            )
        tensor = image
    else:
        if isinstance(image, (str, Path)):
            path = Path(image)
            if not path.is_file():
                raise BadImageError(f"image file not found: {path}")
            try:
                with Image.open(path) as opened:
                    opened.load()
                    array = _from_pil(opened)
            except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as err:
                raise BadImageError(f"cannot read image {path}: {err}") from err
        elif isinstance(image, Image.Image):
            array = _from_pil(image)
        elif isinstance(image, np.ndarray):
            array = _from_array(image)
        else:
            raise BadImageError(
                f"unsupported image type {type(image).__name__}; pass a path, PIL image, numpy array or tensor"
            )
        tensor = torch.from_numpy(np.require(array, requirements=("C", "W"))).permute(2, 0, 1).contiguous()
    if tensor.shape[1] == 0 or tensor.shape[2] == 0:
        raise BadImageError(f"image is empty: shape {tuple(tensor.shape)}")
    return tensor
