"""Training data: COCO keypoint files, the top-down and multi-person datasets, and the synthetic generator."""

from .coco import CocoKeypoints, ImageRecord, PersonRecord, load_coco_keypoints, split_coco_file
from .multiperson import MultiPersonCocoDataset
from .synthetic import BODY_POINTS, SyntheticCoco, generate_synthetic_coco, generate_synthetic_splits
from .topdown import TopDownAugmentation, TopDownCocoDataset, default_lower_body_joints

__all__ = [
    "BODY_POINTS",
    "CocoKeypoints",
    "ImageRecord",
    "MultiPersonCocoDataset",
    "PersonRecord",
    "SyntheticCoco",
    "TopDownAugmentation",
    "TopDownCocoDataset",
    "default_lower_body_joints",
    "generate_synthetic_coco",
    "generate_synthetic_splits",
    "load_coco_keypoints",
    "split_coco_file",
]
