"""Tensor operations shared by the model families (torch only): box formats and IoU (:mod:`.boxes`), the
top-down affine geometry and its inverse (:mod:`.geometry`), letterboxing (:mod:`.letterbox`) and box NMS
(:mod:`.nms`)."""

from .boxes import (
    aligned_box_ciou,
    aligned_box_iou,
    box_cxcywh_to_xyxy,
    box_xyxy_to_cxcywh,
)
from .geometry import (
    box_xywh_to_xyxy,
    box_xyxy_to_xywh,
    clean_coco_boxes,
    crop_images,
    crop_to_image,
    crop_to_image_matrix,
    image_to_crop,
    image_to_crop_matrix,
    invert_affine,
    topdown_affine,
    transform_points,
    warp_affine,
    xywh_to_center_scale,
)
from .letterbox import (
    LetterboxInfo,
    clip_points,
    letterbox,
    letterbox_info,
    letterbox_points,
    unletterbox_boxes,
    unletterbox_points,
)
from .nms import batched_nms, box_iou, nms

__all__ = [
    "LetterboxInfo",
    "aligned_box_ciou",
    "aligned_box_iou",
    "batched_nms",
    "box_cxcywh_to_xyxy",
    "box_iou",
    "box_xywh_to_xyxy",
    "box_xyxy_to_cxcywh",
    "box_xyxy_to_xywh",
    "clean_coco_boxes",
    "clip_points",
    "crop_images",
    "crop_to_image",
    "crop_to_image_matrix",
    "image_to_crop",
    "image_to_crop_matrix",
    "invert_affine",
    "letterbox",
    "letterbox_info",
    "letterbox_points",
    "nms",
    "topdown_affine",
    "transform_points",
    "unletterbox_boxes",
    "unletterbox_points",
    "warp_affine",
    "xywh_to_center_scale",
]
