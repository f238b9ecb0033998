"""Keypoint codecs: turn keypoints into training targets and model outputs back into keypoints."""

from .heatmap import (
    HeatmapCodec,
    flip_average,
    flip_back,
    gaussian_blur_heatmaps,
    generate_gaussian_heatmaps,
    get_heatmap_maximum,
    refine_dark,
    refine_quarter_offset,
    shift_heatmaps,
)

__all__ = [
    "HeatmapCodec",
    "flip_average",
    "flip_back",
    "gaussian_blur_heatmaps",
    "generate_gaussian_heatmaps",
    "get_heatmap_maximum",
    "refine_dark",
    "refine_quarter_offset",
    "shift_heatmaps",
]
