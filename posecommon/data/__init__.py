"""Training data: COCO keypoint files, YOLO-format label trees, the top-down and multi-person datasets, and the
synthetic generator."""

from .coco import CocoKeypoints, ImageRecord, PersonRecord, load_coco_keypoints, split_coco_file
from .multiperson import MultiPersonCocoDataset
from .synthetic import BODY_POINTS, SyntheticCoco, generate_synthetic_coco, generate_synthetic_splits
from .topdown import TopDownAugmentation, TopDownCocoDataset, default_lower_body_joints
from .yolo_format import YoloSplits, find_yolo_root, prepare_yolo_splits, read_yolo_label_file, yolo_split_to_coco

__all__ = [
    "BODY_POINTS",
    "CocoKeypoints",
    "ImageRecord",
    "MultiPersonCocoDataset",
    "PersonRecord",
    "SyntheticCoco",
    "TopDownAugmentation",
    "TopDownCocoDataset",
    "YoloSplits",
    "default_lower_body_joints",
    "find_yolo_root",
    "generate_synthetic_coco",
    "generate_synthetic_splits",
    "load_coco_keypoints",
    "prepare_yolo_splits",
    "read_yolo_label_file",
    "split_coco_file",
    "yolo_split_to_coco",
]
