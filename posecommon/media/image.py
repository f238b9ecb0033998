"""Turn one user image (path, PIL, numpy, tensor) into an RGB ``uint8`` tensor, with clear errors for anything else.

Collections and streams of images (directories, globs, URLs, videos, lists, generators, batched arrays) are
normalised by :mod:`posecommon.predict.sources`, which calls :func:`load_image` for each image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import BadImageError

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


FLOAT_TOLERANCE = 1e-3
"""Float images may exceed ``[0, 1]`` by this much (resampling overshoot); they are clipped."""


def _float_to_uint8(array: np.ndarray) -> np.ndarray:
    """``[0, 1]`` floats -> ``round(255 x)`` uint8; NaN/inf or values outside the range are a :class:`BadImageError`."""
    if not np.isfinite(array).all():
        raise BadImageError("float image contains NaN or infinite values")
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if low < -FLOAT_TOLERANCE or high > 1.0 + FLOAT_TOLERANCE:
        raise BadImageError(
            f"float images must hold values in [0, 1], got [{low:.4g}, {high:.4g}]; divide 0-255 floats by 255 "
            "(or cast them to uint8)"
        )
    return np.clip(array.astype(np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _from_array(array: np.ndarray, bgr: bool = False) -> np.ndarray:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise BadImageError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 array, got shape {array.shape}")
    if array.dtype == np.uint16:
        array = np.clip(array.astype(np.float64) / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif array.dtype in (np.float16, np.float32, np.float64):
        array = _float_to_uint8(array)
    elif array.dtype != np.uint8:
        raise BadImageError(
            f"expected a uint8, uint16 or float ([0, 1]) image array, got dtype {array.dtype}; scale to 0-255 and "
            "cast to uint8"
        )
    if bgr and array.shape[2] in (3, 4):
        array = np.concatenate((array[..., 2::-1], array[..., 3:]), axis=2)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        alpha = array[..., 3:4].astype(np.float32) / 255.0
        array = (array[..., :3].astype(np.float32) * alpha + 0.5).astype(np.uint8)
    return array


def _from_tensor(image: torch.Tensor, bgr: bool) -> torch.Tensor:
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise BadImageError(
            f"tensor images must be (3, H, W) or (1, H, W) (channels first; a batch (B, 3, H, W) is several "
            f"images), got shape {tuple(image.shape)}"
        )
    if image.is_floating_point():
        pixels = _float_to_uint8(image.detach().cpu().numpy())
        tensor = torch.from_numpy(pixels).to(image.device)
    elif image.dtype == torch.uint8:
        tensor = image
    else:
        raise BadImageError(f"tensor images must be uint8 (0-255) or float (0-1), got dtype {image.dtype}")
    if tensor.shape[0] == 1:
        return tensor.expand(3, -1, -1).contiguous()
    return tensor.flip(0) if bgr else tensor


def load_image(image: ImageInput, bgr: bool = False) -> torch.Tensor:
    """Load one image as an RGB ``uint8`` tensor.

    Grayscale is replicated to three channels, RGBA is composited onto black, 16-bit images are scaled to 8 bits,
    float images in ``[0, 1]`` become ``round(255 x)``.

    Args:
        image: A file path, a PIL image, a numpy ``(H, W)``/``(H, W, C)`` array (uint8, uint16 or float in
            ``[0, 1]``), or a ``(3, H, W)``/``(1, H, W)`` tensor (uint8 or float in ``[0, 1]``).
        bgr: Arrays and tensors are in BGR channel order (OpenCV's); files and PIL images are always read as RGB.

    Returns:
        ``(3, H, W)`` uint8 tensor on the CPU (or on the input tensor's device).

    Raises:
        BadImageError: missing or unreadable file, unsupported mode/dtype/shape, or an empty image.
    """
    if isinstance(image, torch.Tensor):
        tensor = _from_tensor(image, bgr)
    else:
        if isinstance(image, (str, Path)):
            path = Path(image)
            if path.is_dir():
                raise BadImageError(
                    f"{path} is a directory; load_image reads one image (model.predict accepts directories)"
                )
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
            array = _from_array(image, bgr)
        else:
            raise BadImageError(
                f"unsupported image type {type(image).__name__}; pass a path, PIL image, numpy array or tensor"
            )
        tensor = torch.from_numpy(np.require(array, requirements=("C", "W"))).permute(2, 0, 1).contiguous()
    if tensor.shape[1] == 0 or tensor.shape[2] == 0:
        raise BadImageError(f"image is empty: shape {tuple(tensor.shape)}")
    return tensor
