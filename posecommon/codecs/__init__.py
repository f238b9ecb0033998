"""Keypoint codecs: turn keypoints into training targets and model outputs back into keypoints."""

from .heatmap import (
    HeatmapCodec,
    decode_heatmaps,
    flip_average,
    flip_back,
    gaussian_blur_heatmaps,
    generate_gaussian_heatmaps,
    get_heatmap_maximum,
    refine_dark,
    refine_quarter_offset,
)
from .topdown import TopDownCodec, TopDownRegions

__all__ = [
    "HeatmapCodec",
    "TopDownCodec",
    "TopDownRegions",
    "decode_heatmaps",
    "flip_average",
    "flip_back",
    "gaussian_blur_heatmaps",
    "generate_gaussian_heatmaps",
    "get_heatmap_maximum",
    "refine_dark",
    "refine_quarter_offset",
]
