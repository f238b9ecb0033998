"""Base class of every posezoo model: carries its config, preprocessing and keypoint set."""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from .config_utils import config_to_dict
from .keypoints import COCO17, KeypointSpec, generic_keypoint_spec
from .layers.fuse import fuse_model
from .preprocess import PreprocessConfig

__all__ = ["PoseModel"]

logger = logging.getLogger(__name__)


class PoseModel(nn.Module):
    """Common base of the model classes of :mod:`vttranspose` and :mod:`drsinet`.

    Subclasses take one frozen config dataclass with at least a ``num_joints`` field and implement
    :attr:`preprocess`. ``forward`` returns raw tensors, the same in train and eval mode; decoding lives outside
    the model.

    Args:
        config: The family's config dataclass.
        keypoint_spec: Keypoint set the model predicts; defaults to :data:`~posecommon.COCO17` when
            ``config.num_joints == 17`` and to a generic spec (no flip pairs, no sigmas) otherwise.

    Raises:
        ValueError: ``keypoint_spec`` has a different number of joints than ``config.num_joints``.
    """

    model_name: str = ""

    def __init__(self, config: Any, keypoint_spec: KeypointSpec | None = None) -> None:
        super().__init__()
        num_joints = int(config.num_joints)
        if keypoint_spec is None:
            keypoint_spec = COCO17 if num_joints == COCO17.num_joints else generic_keypoint_spec(num_joints)
            if num_joints != COCO17.num_joints:
                logger.info("no KeypointSpec given for %d joints: flip test will not swap joints", num_joints)
        if keypoint_spec.num_joints != num_joints:
            raise ValueError(
                f"keypoint_spec {keypoint_spec.name!r} has {keypoint_spec.num_joints} joints but the config asks "
                f"for num_joints={num_joints}"
            )
        self.config = config
        self.keypoint_spec = keypoint_spec

    @property
    def preprocess(self) -> PreprocessConfig:
        """How raw images become this model's input (input size, mean/std, crop or letterbox)."""
        raise NotImplementedError

    def config_dict(self) -> dict[str, Any]:
        """JSON-able description: registry name, config, keypoint spec and preprocessing."""
        return {
            "model_name": self.model_name,
            "config": config_to_dict(self.config),
            "keypoint_spec": self.keypoint_spec.to_dict(),
            "preprocess": self.preprocess.to_dict(),
        }

    def fuse(self) -> PoseModel:
        """Fold BatchNorm into convolutions (and merge re-parameterisable convs) in place for inference.

        Switches the model to eval mode; returns ``self``. Outputs agree with the unfused model to float rounding.
        """
        fuse_model(self)
        return self
