"""Gaussian heatmaps of top-down pose models (TransPose / VTTransPose), batched in torch.

Shape key:
    - N: instances (person crops), K: joints.
    - Heatmap points: ``(N, K, 2)`` float ``(x, y)`` in **heatmap pixels**; integer coordinates are pixel centres
      (column ``x``, row ``y``).
    - Heatmaps: ``(N, K, h, w)`` tensors. Sizes are given as ``(H, W)`` / ``(h, w)`` pairs, height first, like
      :attr:`posecommon.PreprocessConfig.input_size` and tensor shapes.

The functions here work in heatmap pixels: :func:`generate_gaussian_heatmaps` draws the training targets,
:func:`decode_heatmaps` finds each map's maximum and refines it (DARK by default), :func:`flip_average` merges the
flip test. :class:`~posecommon.codecs.TopDownCodec` maps original-image pixels to heatmap pixels and back with the
official top-down transform; :class:`HeatmapCodec` does the same for keypoints given in model-input (crop) pixels.

Encoding draws an unnormalised Gaussian (peak 1) centred at the exact sub-pixel heatmap position, over the whole
heatmap, as TransPose's ``generate_target`` (``lib/dataset/JointsDataset.py:239-280``). Decoding is the official
``get_final_preds`` (``lib/core/inference.py:90-112``): argmax (``get_max_preds``, with coordinates set to 0 where
the maximum is not positive, ``inference.py:44-47``), then DARK (Zhang et al., CVPR 2020): Gaussian blur with an
11x11 kernel rescaled to keep each map's maximum, log, one Newton (second-order Taylor) step from the argmax. The
argmax plus a quarter-pixel shift towards the higher neighbour (HRNet) is available as the alternative. No function
here modifies its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "HeatmapCodec",
    "decode_heatmaps",
    "flip_average",
    "flip_back",
    "gaussian_blur_heatmaps",
    "generate_gaussian_heatmaps",
    "get_heatmap_maximum",
    "refine_dark",
    "refine_quarter_offset",
]


def generate_gaussian_heatmaps(
    points: torch.Tensor,
    visible: torch.Tensor,
    heatmap_size: tuple[int, int],
    sigma: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian target heatmaps and target weights, as TransPose's ``generate_target``.

    The weight of a joint starts as its visibility ``min(v, 1)`` (``lib/dataset/coco.py:191-194``; any ``v > 0``
    counts) and becomes 0 when its ``3 * sigma`` window misses the heatmap: with ``ul = int(mu - 3 sigma)`` and
    ``br = int(mu + 3 sigma + 1)`` (``int`` truncating towards zero), per axis, when ``ul >= size`` or ``br < 0``
    (``adjust_target_weight``, ``JointsDataset.py:283-295``). A joint with weight 1 gets
    ``exp(-((x - mu_x)^2 + (y - mu_y)^2) / (2 sigma^2))`` over the whole map (``JointsDataset.py:263-275``), so a
    joint just outside the heatmap keeps weight 1 and its Gaussian tail; a joint with weight 0 gets an all-zero map.
    Joints with a non-finite coordinate get weight 0.

    Args:
        points: ``(N, K, 2)`` joint positions in heatmap pixels.
        visible: ``(N, K)`` visibility; any value ``> 0`` counts as visible (COCO ``v = 1`` and ``v = 2``).
        heatmap_size: Heatmap ``(h, w)``.
        sigma: Gaussian standard deviation in heatmap pixels.

    Returns:
        ``(heatmaps, weights)``: ``(N, K, h, w)`` heatmaps with peak value 1 at the joint, and ``(N, K)`` weights
        in ``{0, 1}``, both float32 (or the points' floating dtype).
    """
    if points.dim() != 3 or points.shape[-1] != 2:
        raise ValueError(f"points must be (N, K, 2), got {tuple(points.shape)}")
    if visible.shape != points.shape[:2]:
        raise ValueError(f"visible must be {tuple(points.shape[:2])}, got {tuple(visible.shape)}")
    dtype = points.dtype if points.is_floating_point() else torch.float32
    h, w = heatmap_size
    mu = points.to(dtype)
    finite = torch.isfinite(mu).all(dim=-1)
    mu = torch.where(finite[..., None], mu, torch.zeros_like(mu))
    radius = 3.0 * sigma
    upper_left = torch.trunc(mu - radius)
    bottom_right = torch.trunc(mu + radius + 1.0)
    outside = (upper_left[..., 0] >= w) | (upper_left[..., 1] >= h) | (bottom_right[..., 0] < 0)
    outside |= bottom_right[..., 1] < 0
    weights = (finite & ~outside & (visible > 0)).to(dtype)
    xs = torch.arange(w, dtype=dtype, device=points.device)
    ys = torch.arange(h, dtype=dtype, device=points.device)
    gauss_x = torch.exp(-((xs - mu[..., 0:1]) ** 2) / (2 * sigma**2))  # (N, K, w)
    gauss_y = torch.exp(-((ys - mu[..., 1:2]) ** 2) / (2 * sigma**2))  # (N, K, h)
    heatmaps = gauss_y[..., :, None] * gauss_x[..., None, :] * weights[..., None, None]
    return heatmaps, weights


def get_heatmap_maximum(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer location and value of each heatmap's maximum (first one in row-major order on ties).

    Args:
        heatmaps: ``(N, K, h, w)`` heatmaps.

    Returns:
        ``(coords, maxvals)``: ``(N, K, 2)`` float ``(x, y)`` in heatmap pixels and ``(N, K)`` maxima.
    """
    w = heatmaps.shape[-1]
    maxvals, index = heatmaps.flatten(2).max(dim=-1)
    coords = torch.stack((index % w, torch.div(index, w, rounding_mode="floor")), dim=-1)
    return coords.to(maxvals.dtype if maxvals.is_floating_point() else torch.float32), maxvals


def _gather(maps: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``maps[n, k, y[n, k, j], x[n, k, j]]`` for ``(N, K, h, w)`` maps and ``(N, K, J)`` integer indices."""
    w = maps.shape[-1]
    return maps.flatten(2).gather(-1, y * w + x)


def refine_quarter_offset(heatmaps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Move integer maxima a quarter pixel towards the higher neighbour, per axis (HRNet without DARK).

    TransPose itself always refines with DARK (:func:`refine_dark`); this is the cheaper alternative.

    An axis is refined only where both neighbours along it exist (``0 < x < w - 1``); HRNet's ``1 < x`` test also
    skips column 1, which we do not copy. Equal neighbours give no shift.

    Args:
        heatmaps: ``(N, K, h, w)`` heatmaps.
        coords: ``(N, K, 2)`` integer-valued ``(x, y)`` maxima in heatmap pixels, e.g. from
            :func:`get_heatmap_maximum`.

    Returns:
        ``(N, K, 2)`` refined coordinates in heatmap pixels (a new tensor).
    """
    h, w = heatmaps.shape[-2:]
    x = coords[..., 0].long()
    y = coords[..., 1].long()
    x_ok = (x > 0) & (x < w - 1)
    y_ok = (y > 0) & (y < h - 1)
    xs = torch.stack(((x + 1).clamp(max=w - 1), (x - 1).clamp(min=0), x, x), dim=-1)
    ys = torch.stack((y, y, (y + 1).clamp(max=h - 1), (y - 1).clamp(min=0)), dim=-1)
    values = _gather(heatmaps, xs, ys)
    dx = torch.where(x_ok, torch.sign(values[..., 0] - values[..., 1]), torch.zeros_like(values[..., 0]))
    dy = torch.where(y_ok, torch.sign(values[..., 2] - values[..., 3]), torch.zeros_like(values[..., 2]))
    return coords + 0.25 * torch.stack((dx, dy), dim=-1).to(coords.dtype)


def _gaussian_kernel_1d(kernel_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """OpenCV's ``getGaussianKernel(kernel_size, 0)``: sigma = 0.3 * ((kernel_size - 1) / 2 - 1) + 0.8."""
    sigma = 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8
    offsets = torch.arange(kernel_size, dtype=torch.float64, device=device) - (kernel_size - 1) / 2
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return (kernel / kernel.sum()).to(dtype)


def gaussian_blur_heatmaps(heatmaps: torch.Tensor, kernel_size: int = 11) -> torch.Tensor:
    """DARK's heatmap smoothing: Gaussian blur with zero padding, rescaled so each map keeps its maximum.

    The kernel is OpenCV's default Gaussian for ``kernel_size`` (sigma 2 for 11), as in TransPose's
    ``gaussian_blur``. Maps whose blurred maximum is not positive are returned blurred but not rescaled.

    Args:
        heatmaps: ``(N, K, h, w)`` heatmaps.
        kernel_size: Odd kernel size.

    Returns:
        ``(N, K, h, w)`` blurred heatmaps (a new tensor).
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    n, k, h, w = heatmaps.shape
    kernel = _gaussian_kernel_1d(kernel_size, heatmaps.dtype, heatmaps.device)
    pad = kernel_size // 2
    flat = heatmaps.reshape(n * k, 1, h, w)
    blurred = F.conv2d(flat, kernel.view(1, 1, 1, -1), padding=(0, pad))
    blurred = F.conv2d(blurred, kernel.view(1, 1, -1, 1), padding=(pad, 0)).reshape(n, k, h, w)
    old_max = heatmaps.amax(dim=(-2, -1), keepdim=True)
    new_max = blurred.amax(dim=(-2, -1), keepdim=True)
    scale = torch.where(new_max > 0, old_max / new_max.clamp(min=torch.finfo(heatmaps.dtype).tiny), 1.0)
    return blurred * scale


def refine_dark(heatmaps: torch.Tensor, coords: torch.Tensor, kernel_size: int = 11) -> torch.Tensor:
    """DARK sub-pixel refinement (TransPose's ``gaussian_blur`` + ``log`` + ``taylor``), batched.

    Steps: :func:`gaussian_blur_heatmaps`, ``log(max(blurred, 1e-10))``, then at each maximum the Newton step
    ``offset = -H^-1 g`` with the gradient ``g`` from central differences and the Hessian ``H`` from differences
    over two pixels (exactly TransPose's ``taylor``). A joint is left unrefined where the two-pixel stencil does not
    fit (``x < 2``, ``x > w - 3``, same for y) or the Hessian is singular. The zero-padded blur biases maxima
    within about 3 pixels of the border (as in TransPose); elsewhere a Gaussian target of sigma 2 is recovered to
    about 0.01 heatmap pixel.

    Args:
        heatmaps: ``(N, K, h, w)`` heatmaps (not yet blurred).
        coords: ``(N, K, 2)`` integer-valued ``(x, y)`` maxima in heatmap pixels.
        kernel_size: Blur kernel size.

    Returns:
        ``(N, K, 2)`` refined coordinates in heatmap pixels (a new tensor).
    """
    h, w = heatmaps.shape[-2:]
    logs = torch.log(gaussian_blur_heatmaps(heatmaps, kernel_size).clamp(min=1e-10))
    x = coords[..., 0].long()
    y = coords[..., 1].long()
    valid = (x >= 2) & (x <= w - 3) & (y >= 2) & (y <= h - 3)
    # stencil offsets (dx, dy): centre, x+-1, x+-2, y+-1, y+-2, four diagonals
    offsets = torch.tensor(
        [
            (0, 0),
            (1, 0),
            (-1, 0),
            (2, 0),
            (-2, 0),
            (0, 1),
            (0, -1),
            (0, 2),
            (0, -2),
            (1, 1),
            (1, -1),
            (-1, 1),
            (-1, -1),
        ],
        device=heatmaps.device,
    )
    xs = (x[..., None] + offsets[:, 0]).clamp(0, w - 1)
    ys = (y[..., None] + offsets[:, 1]).clamp(0, h - 1)
    v = _gather(logs, xs, ys).unbind(dim=-1)
    centre, xp1, xm1, xp2, xm2, yp1, ym1, yp2, ym2, pp, pm, mp, mm = v
    dx = 0.5 * (xp1 - xm1)
    dy = 0.5 * (yp1 - ym1)
    dxx = 0.25 * (xp2 - 2 * centre + xm2)
    dyy = 0.25 * (yp2 - 2 * centre + ym2)
    dxy = 0.25 * (pp - pm - mp + mm)
    det = dxx * dyy - dxy**2
    valid = valid & (det != 0)
    safe_det = torch.where(valid, det, torch.ones_like(det))
    offset_x = -(dyy * dx - dxy * dy) / safe_det
    offset_y = -(dxx * dy - dxy * dx) / safe_det
    offset = torch.stack((offset_x, offset_y), dim=-1)
    return coords + torch.where(valid[..., None], offset, torch.zeros_like(offset)).to(coords.dtype)


def flip_back(heatmaps: torch.Tensor, flip_indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Turn heatmaps predicted on a horizontally mirrored crop back into the original crop's frame.

    Mirrors the width axis and swaps left/right joints: output joint ``k`` is input joint ``flip_indices[k]``
    (:attr:`posecommon.KeypointSpec.flip_indices`).

    Args:
        heatmaps: ``(N, K, h, w)`` heatmaps of the mirrored crops.
        flip_indices: ``K`` joint permutation.

    Returns:
        ``(N, K, h, w)`` heatmaps (a new tensor).
    """
    index = torch.as_tensor(flip_indices, dtype=torch.long, device=heatmaps.device)
    if index.shape != (heatmaps.shape[1],):
        raise ValueError(f"flip_indices must have {heatmaps.shape[1]} entries, got {tuple(index.shape)}")
    return heatmaps.index_select(1, index).flip(-1)


def flip_average(
    heatmaps: torch.Tensor, flipped_heatmaps: torch.Tensor, flip_indices: Sequence[int] | torch.Tensor
) -> torch.Tensor:
    """Flip-test averaging: ``(heatmaps + flip_back(flipped_heatmaps)) / 2``, with no shift.

    As TransPose's ``validate`` (``lib/core/function.py:127-143``). Its config's ``SHIFT_HEATMAP`` is read
    nowhere in the code, and under the official top-down transform (:func:`posecommon.ops.geometry.topdown_affine`)
    mirroring the input crop mirrors the heatmap exactly (``x -> w - 1 - x``), so no shift is needed.

    Args:
        heatmaps: ``(N, K, h, w)`` heatmaps of the crops.
        flipped_heatmaps: ``(N, K, h, w)`` heatmaps the model produced for the horizontally mirrored crops.
        flip_indices: ``K`` joint permutation of the keypoint set.

    Returns:
        ``(N, K, h, w)`` averaged heatmaps.
    """
    if heatmaps.shape != flipped_heatmaps.shape:
        raise ValueError(f"shape mismatch: {tuple(heatmaps.shape)} vs {tuple(flipped_heatmaps.shape)}")
    return (heatmaps + flip_back(flipped_heatmaps, flip_indices)) * 0.5


def decode_heatmaps(
    heatmaps: torch.Tensor, use_dark: bool = True, blur_kernel_size: int = 11
) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum location (refined) and value of each heatmap, as TransPose's ``get_final_preds`` before its
    transform back (``lib/core/inference.py:90-101``).

    The argmax of a map whose maximum is not positive is set to ``(0, 0)`` (``get_max_preds``,
    ``inference.py:44-47``) and then left unrefined (DARK's stencil does not fit at the border).

    Args:
        heatmaps: ``(N, K, h, w)`` heatmaps (after flip averaging, if any).
        use_dark: Refine with :func:`refine_dark` (TransPose); otherwise :func:`refine_quarter_offset`.
        blur_kernel_size: DARK's blur kernel (``TEST.BLUR_KERNEL`` = 11 in the TP-H-S yaml, line 104).

    Returns:
        ``(coords, maxvals)``: ``(N, K, 2)`` ``(x, y)`` in heatmap pixels and ``(N, K)`` maxima of the unblurred
        heatmaps, float32 or the heatmaps' dtype if wider.
    """
    if heatmaps.dim() != 4:
        raise ValueError(f"heatmaps must be (N, K, h, w), got {tuple(heatmaps.shape)}")
    maps = heatmaps if heatmaps.dtype in (torch.float32, torch.float64) else heatmaps.float()
    coords, maxvals = get_heatmap_maximum(maps)
    coords = coords * (maxvals > 0)[..., None]
    refine = refine_dark(maps, coords, blur_kernel_size) if use_dark else refine_quarter_offset(maps, coords)
    return refine, maxvals


@dataclass(frozen=True)
class HeatmapCodec:
    """Encode keypoints given in model-input (crop) pixels as Gaussian heatmaps, and decode heatmaps back to them.

    The relation between input pixels and heatmap pixels is the one the official top-down transform gives when the
    crop and its heatmap are made from the same region (:func:`posecommon.ops.geometry.topdown_affine` at the input and
    at the heatmap size): heatmap point = ``c_h + f * (p - c_in)`` with ``c_in = ((W - 1) / 2, (H - 1) / 2)``,
    ``c_h = ((w - 1) / 2, (h - 1) / 2)`` and **one** factor ``f = (w - 1) / (W - 1)`` for both axes. For
    256x192 -> 64x48 that is ``f = 47 / 191``, not ``1 / 4``: heatmaps are not input coordinates divided by 4.
    It is exactly :class:`~posecommon.codecs.TopDownCodec` with the whole crop as the region, so keypoints decoded
    here and mapped to the image with the crop's transform agree with :meth:`TopDownCodec.decode`.

    Args:
        input_size: Model input ``(H, W)`` in pixels, e.g. ``(256, 192)``.
        heatmap_size: Heatmap ``(h, w)``, e.g. ``(64, 48)``.
        sigma: Gaussian standard deviation of the targets, in heatmap pixels.
        use_dark: Decode with DARK refinement instead of the quarter-pixel shift.
        blur_kernel_size: DARK's Gaussian blur kernel size (odd).

    Example:
        >>> codec = HeatmapCodec(input_size=(256, 192), heatmap_size=(64, 48), use_dark=True)
        >>> heatmaps, weights = codec.encode(torch.tensor([[[100.3, 60.7]]]), torch.ones(1, 1))
        >>> keypoints, scores = codec.decode(heatmaps)
    """

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0
    use_dark: bool = False
    blur_kernel_size: int = 11

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "heatmap_size", tuple(int(v) for v in self.heatmap_size))
        if len(self.input_size) != 2 or min(self.input_size) <= 1:
            raise ValueError(f"input_size must be an (H, W) pair larger than 1, got {self.input_size}")
        if len(self.heatmap_size) != 2 or min(self.heatmap_size) <= 1:
            raise ValueError(f"heatmap_size must be an (h, w) pair larger than 1, got {self.heatmap_size}")
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError(f"sigma must be positive, got {self.sigma}")
        if self.blur_kernel_size < 1 or self.blur_kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be a positive odd integer, got {self.blur_kernel_size}")

    @property
    def factor(self) -> float:
        """Heatmap pixels per input pixel, ``(w - 1) / (W - 1)``, on both axes."""
        return (self.heatmap_size[1] - 1) / (self.input_size[1] - 1)

    def _centres(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (in_h, in_w), (hm_h, hm_w) = self.input_size, self.heatmap_size
        c_in = torch.tensor(((in_w - 1) / 2, (in_h - 1) / 2), dtype=like.dtype, device=like.device)
        c_hm = torch.tensor(((hm_w - 1) / 2, (hm_h - 1) / 2), dtype=like.dtype, device=like.device)
        return c_in, c_hm

    def input_to_heatmap(self, points: torch.Tensor) -> torch.Tensor:
        """``(..., 2)`` input pixels -> heatmap pixels (a new tensor)."""
        points = points if points.is_floating_point() else points.float()
        c_in, c_hm = self._centres(points)
        return c_hm + (points - c_in) * self.factor

    def heatmap_to_input(self, points: torch.Tensor) -> torch.Tensor:
        """``(..., 2)`` heatmap pixels -> input pixels (a new tensor; inverse of :meth:`input_to_heatmap`)."""
        points = points if points.is_floating_point() else points.float()
        c_in, c_hm = self._centres(points)
        return c_in + (points - c_hm) / self.factor

    def encode(self, keypoints: torch.Tensor, visible: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian targets for keypoints given in input pixels.

        Args:
            keypoints: ``(N, K, 2)`` keypoints in input pixels.
            visible: ``(N, K)`` visibility (``> 0`` = labelled); all visible when omitted.

        Returns:
            ``(heatmaps, weights)``: ``(N, K, h, w)`` and ``(N, K)``; see :func:`generate_gaussian_heatmaps`.
        """
        if visible is None:
            visible = torch.ones(keypoints.shape[:2], device=keypoints.device)
        return generate_gaussian_heatmaps(self.input_to_heatmap(keypoints), visible, self.heatmap_size, self.sigma)

    def decode(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints in input pixels and their scores from heatmaps.

        Args:
            heatmaps: ``(N, K, h, w)`` heatmaps (after flip averaging, if any); ``h, w`` must match
                :attr:`heatmap_size`.

        Returns:
            ``(keypoints, scores)``: ``(N, K, 2)`` ``(x, y)`` in input pixels and ``(N, K)`` heatmap maxima (of the
            unblurred heatmaps), float32 or the heatmaps' dtype if wider.
        """
        if heatmaps.dim() != 4 or tuple(heatmaps.shape[-2:]) != self.heatmap_size:
            raise ValueError(
                f"heatmaps must be (N, K, {self.heatmap_size[0]}, {self.heatmap_size[1]}), got {tuple(heatmaps.shape)}"
            )
        coords, scores = decode_heatmaps(heatmaps, self.use_dark, self.blur_kernel_size)
        return self.heatmap_to_input(coords), scores
