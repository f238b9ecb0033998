"""Keypoint set metadata: joint names, skeleton, left/right flip permutation and OKS sigmas.

Nothing downstream hard-codes 17 joints: codecs, flip test, OKS, losses and drawing all read a
:class:`KeypointSpec`. :data:`COCO17` is the default instance (the COCO person keypoints, 0-based indices).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["COCO17", "KeypointSpec", "default_keypoint_spec", "generic_keypoint_spec"]


@dataclass(frozen=True)
class KeypointSpec:
    """Metadata of a keypoint set.

    Args:
        name: Short name of the set, e.g. ``"coco17"``.
        names: One name per joint; ``len(names)`` is the number of joints K.
        skeleton: Pairs of 0-based joint indices joined by a limb when drawing.
        flip_indices: Permutation applied to the joint axis when an image is mirrored left/right: joint ``k`` of
            the flipped image is joint ``flip_indices[k]`` of the original. It must be its own inverse.
        sigmas: Per-joint OKS falloff constants (COCO convention, already divided by 10), or ``None`` when the set
            has none; OKS-based evaluation, NMS and losses then require the caller to pass sigmas.

    Raises:
        ValueError: lengths disagree, an index is out of range, or ``flip_indices`` is not an involution.
    """

    name: str
    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    flip_indices: tuple[int, ...]
    sigmas: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "skeleton", tuple((int(a), int(b)) for a, b in self.skeleton))
        object.__setattr__(self, "flip_indices", tuple(int(i) for i in self.flip_indices))
        if self.sigmas is not None:
            object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        k = len(self.names)
        if k == 0:
            raise ValueError(f"KeypointSpec {self.name!r}: needs at least one joint name")
        if len(set(self.names)) != k:
            raise ValueError(f"KeypointSpec {self.name!r}: joint names must be unique, got {self.names}")
        if len(self.flip_indices) != k:
            raise ValueError(
                f"KeypointSpec {self.name!r}: flip_indices has {len(self.flip_indices)} entries for {k} joints"
            )
        if sorted(self.flip_indices) != list(range(k)):
            raise ValueError(
                f"KeypointSpec {self.name!r}: flip_indices must be a permutation of 0..{k - 1}, got {self.flip_indices}"
            )
        not_involution = [i for i in range(k) if self.flip_indices[self.flip_indices[i]] != i]
        if not_involution:
            raise ValueError(
                f"KeypointSpec {self.name!r}: flip_indices must be its own inverse (flipping twice is the "
                f"identity), but fails at joints {not_involution}"
            )
        bad_limbs = [limb for limb in self.skeleton if not (0 <= limb[0] < k and 0 <= limb[1] < k)]
        if bad_limbs:
            raise ValueError(f"KeypointSpec {self.name!r}: skeleton indices out of range 0..{k - 1}: {bad_limbs}")
        if self.sigmas is not None:
            if len(self.sigmas) != k:
                raise ValueError(f"KeypointSpec {self.name!r}: {len(self.sigmas)} sigmas for {k} joints")
            if any(not s > 0 for s in self.sigmas):
                raise ValueError(f"KeypointSpec {self.name!r}: sigmas must be positive, got {self.sigmas}")

    @property
    def num_joints(self) -> int:
        """Number of joints K."""
        return len(self.names)

    @classmethod
    def from_flip_pairs(
        cls,
        name: str,
        names: Sequence[str],
        skeleton: Sequence[tuple[int, int]],
        flip_pairs: Sequence[tuple[int, int]],
        sigmas: Sequence[float] | None = None,
    ) -> KeypointSpec:
        """Build a spec from left/right pairs (joints not in any pair map to themselves).

        Raises:
            ValueError: a joint appears in two pairs, or any check of the constructor fails.
        """
        flip = list(range(len(names)))
        seen: set[int] = set()
        for a, b in flip_pairs:
            if a in seen or b in seen:
                raise ValueError(f"KeypointSpec {name!r}: joint in more than one flip pair: {(a, b)}")
            seen.update((a, b))
            flip[a], flip[b] = b, a
        return cls(name, tuple(names), tuple(skeleton), tuple(flip), None if sigmas is None else tuple(sigmas))

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        """The left/right pairs ``(i, j)`` with ``i < j`` encoded by ``flip_indices``."""
        return tuple((i, j) for i, j in enumerate(self.flip_indices) if i < j)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able representation (inverse of :meth:`from_dict`)."""
        return {
            "name": self.name,
            "names": list(self.names),
            "skeleton": [list(limb) for limb in self.skeleton],
            "flip_indices": list(self.flip_indices),
            "sigmas": None if self.sigmas is None else list(self.sigmas),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeypointSpec:
        """Rebuild a spec written by :meth:`to_dict` (validated again)."""
        return cls(
            name=data["name"],
            names=tuple(data["names"]),
            skeleton=tuple(tuple(limb) for limb in data["skeleton"]),
            flip_indices=tuple(data["flip_indices"]),
            sigmas=None if data.get("sigmas") is None else tuple(data["sigmas"]),
        )


COCO17 = KeypointSpec.from_flip_pairs(
    name="coco17",
    names=(
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ),
    skeleton=(
        (15, 13),
        (13, 11),
        (16, 14),
        (14, 12),
        (11, 12),
        (5, 11),
        (6, 12),
        (5, 6),
        (5, 7),
        (6, 8),
        (7, 9),
        (8, 10),
        (1, 2),
        (0, 1),
        (0, 2),
        (1, 3),
        (2, 4),
        (3, 5),
        (4, 6),
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    sigmas=(
        0.026,
        0.025,
        0.025,
        0.035,
        0.035,
        0.079,
        0.079,
        0.072,
        0.072,
        0.062,
        0.062,
        0.107,
        0.107,
        0.087,
        0.087,
        0.089,
        0.089,
    ),
)
"""The 17 COCO person keypoints with the COCO skeleton (0-based) and the OKS sigmas used by ``COCOeval``."""


def generic_keypoint_spec(num_joints: int) -> KeypointSpec:
    """A spec for ``num_joints`` joints with no names, no skeleton, no left/right pairs and no OKS sigmas.

    Used when a model is built for a custom keypoint set without passing its :class:`KeypointSpec`; flip test
    then mirrors the image without swapping joints, and OKS functions require explicit sigmas.
    """
    if num_joints <= 0:
        raise ValueError(f"num_joints must be positive, got {num_joints}")
    return KeypointSpec(
        f"generic{num_joints}", tuple(f"joint_{i}" for i in range(num_joints)), (), tuple(range(num_joints))
    )


def default_keypoint_spec(num_joints: int) -> KeypointSpec:
    """The keypoint set assumed when none is given: :data:`COCO17` for 17 joints, else :func:`generic_keypoint_spec`."""
    return COCO17 if num_joints == COCO17.num_joints else generic_keypoint_spec(num_joints)
