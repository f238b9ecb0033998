"""Typed prediction results: :class:`PoseResult`, the poses found in one image (or video frame)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import InvalidInputError
from .keypoints import KeypointSpec, default_keypoint_spec
from .visualize import draw_pose

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["PoseResult"]


@dataclass(frozen=True, eq=False)
class PoseResult:
    """Poses found in one image, in that image's pixel coordinates, with what is known about the image.

    Pixel convention: ``(x, y) = (0, 0)`` is the centre of the top-left pixel (the COCO annotation convention
    used by ``COCOeval`` is the same up to the half-pixel offset that COCO itself leaves unspecified).

    ``PoseResult(boxes, scores, keypoints)`` is all that is required; ``predict`` also fills the image fields.
    Indexing and iteration go over people (``result[0]``, ``result[scores > 0.5]``, ``for person in result``),
    each item being a ``PoseResult`` of the selected people with the same image fields, like ultralytics'
    ``Results``. Equality is identity (the fields are tensors).

    Args:
        boxes: ``(N, 4)`` float person boxes ``(x1, y1, x2, y2)``.
        scores: ``(N,)`` instance scores in ``[0, 1]``.
        keypoints: ``(N, K, 3)`` float ``(x, y, confidence)``.
        image_path: The file (or URL) the image was read from, if any.
        image_size: ``(H, W)`` of the image.
        keypoint_spec: The model's keypoint set (names, skeleton); ``None``: COCO-17 for K = 17, else generic.
        frame_index: Index of the frame in its video, for video sources.
        image_id: Id to write in COCO results (set when the image is known from an annotation file).
        image: ``(3, H, W)`` uint8 RGB pixels, kept for :meth:`plot` when the image did not come from a local file
            (arrays, PIL images, tensors, URLs, video frames); ``None`` for local files, which are re-read.

    Raises:
        ValueError: the three tensors disagree on N, or have the wrong rank / last dimension.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    keypoints: torch.Tensor
    image_path: str | None = None
    image_size: tuple[int, int] | None = None
    keypoint_spec: KeypointSpec | None = None
    frame_index: int | None = None
    image_id: int | str | None = None
    image: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = self.boxes.shape[0] if self.boxes.dim() == 2 else -1
        if self.boxes.dim() != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"boxes must be (N, 4), got {tuple(self.boxes.shape)}")
        if self.scores.shape != (n,):
            raise ValueError(f"scores must be ({n},), got {tuple(self.scores.shape)}")
        if self.keypoints.dim() != 3 or self.keypoints.shape[0] != n or self.keypoints.shape[2] != 3:
            raise ValueError(f"keypoints must be ({n}, K, 3), got {tuple(self.keypoints.shape)}")
        if self.keypoint_spec is not None and self.keypoint_spec.num_joints != self.keypoints.shape[1]:
            raise ValueError(
                f"keypoint_spec {self.keypoint_spec.name!r} has {self.keypoint_spec.num_joints} joints, "
                f"keypoints have {self.keypoints.shape[1]}"
            )
        if self.image_size is not None:
            object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))

    def __repr__(self) -> str:
        image = f", image={self.image_path!r}" if self.image_path else ""
        if self.frame_index is not None:
            image += f", frame_index={self.frame_index}"
        if self.image_size is not None:
            image += f", image_size={self.image_size}"
        return f"PoseResult(people={len(self)}, joints={self.num_joints}, device={self.boxes.device}{image})"

    # ------------------------------------------------------------------------------------------- people

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: int | slice | torch.Tensor | np.ndarray | list[int]) -> PoseResult:
        """The selected people (an int keeps the person dimension: ``result[0].boxes`` is ``(1, 4)``)."""
        if isinstance(index, (int, np.integer)):
            n = len(self)
            if not -n <= int(index) < n:
                raise IndexError(f"person index {int(index)} out of range for {n} people")
            index = slice(int(index) % n, int(index) % n + 1)
        elif isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        elif isinstance(index, list):
            index = torch.tensor(index, dtype=torch.long)
        if isinstance(index, torch.Tensor):
            index = index.to(self.boxes.device)
        return dataclasses.replace(
            self, boxes=self.boxes[index], scores=self.scores[index], keypoints=self.keypoints[index]
        )

    def __iter__(self) -> Iterator[PoseResult]:
        """One single-person :class:`PoseResult` per person, by stored order (descending score from predict)."""
        return (self[i] for i in range(len(self)))

    @property
    def num_joints(self) -> int:
        """K."""
        return int(self.keypoints.shape[1])

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        """Name of each of the K joints (from :attr:`keypoint_spec`, else COCO-17 for K = 17, else generic)."""
        return self.spec.names

    @property
    def spec(self) -> KeypointSpec:
        """:attr:`keypoint_spec`, or the default for K joints (COCO-17 for K = 17, else a generic spec)."""
        if self.keypoint_spec is not None:
            return self.keypoint_spec
        return default_keypoint_spec(self.num_joints)

    @property
    def name(self) -> str:
        """File-name stem used by :meth:`save`: the image's stem (``+ _000012`` for frame 12), else ``"image"``."""
        stem = Path(self.image_path.split("?")[0]).stem if self.image_path else "image"
        return stem if self.frame_index is None else f"{stem}_{self.frame_index:06d}"

    @classmethod
    def empty(cls, num_joints: int, device: torch.device | str = "cpu", **image_fields: Any) -> PoseResult:
        """A result with no instances (``image_fields``: any of the optional fields)."""
        zeros = torch.zeros(0, device=device)
        return cls(zeros.view(0, 4), zeros, zeros.view(0, num_joints, 3), **image_fields)

    # ------------------------------------------------------------------------------------------- devices

    def to(self, device: torch.device | str) -> PoseResult:
        """Copy of the result with the tensors on ``device`` (the kept image pixels stay where they are)."""
        return dataclasses.replace(
            self, boxes=self.boxes.to(device), scores=self.scores.to(device), keypoints=self.keypoints.to(device)
        )

    def cpu(self) -> PoseResult:
        """Copy of the result on the CPU."""
        return self.to("cpu")

    def numpy(self) -> dict[str, np.ndarray]:
        """``{"boxes": (N, 4), "scores": (N,), "keypoints": (N, K, 3)}`` as float32 numpy arrays.

        For JSON, use :meth:`to_dict` / :meth:`to_json` (plain lists and floats).
        """
        return {
            "boxes": self.boxes.detach().float().cpu().numpy(),
            "scores": self.scores.detach().float().cpu().numpy(),
            "keypoints": self.keypoints.detach().float().cpu().numpy(),
        }

    # ------------------------------------------------------------------------------------------- serialising

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description: the image, the keypoint names and one entry per person.

        Returns:
            ``{"image": {...}, "keypoint_names": [...], "people": [...]}``: ``image`` holds ``path``, ``height``,
            ``width``, ``frame_index`` and ``image_id`` (``null`` when unknown); each person is
            ``{"box": [x1, y1, x2, y2], "score": s, "keypoints": [[x, y, confidence], ...]}`` with K keypoints.
        """
        arrays = self.numpy()
        height, width = self.image_size if self.image_size is not None else (None, None)
        return {
            "image": {
                "path": self.image_path,
                "height": height,
                "width": width,
                "frame_index": self.frame_index,
                "image_id": self.image_id,
            },
            "keypoint_names": list(self.keypoint_names),
            "people": [
                {"box": box.tolist(), "score": float(score), "keypoints": kpts.tolist()}
                for box, score, kpts in zip(arrays["boxes"], arrays["scores"], arrays["keypoints"], strict=True)
            ],
        }

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def coco_image_id(self) -> int | str:
        """The id :meth:`to_coco` uses by default: :attr:`image_id`, else the file name (``name#frame`` for frames).

        Raises:
            InvalidInputError: neither is known (an in-memory image without ``image_id``).
        """
        if self.image_id is not None:
            return self.image_id
        if self.image_path is None:
            raise InvalidInputError(
                "this result has no image_id and no image path; pass to_coco(image_id=...) explicitly"
            )
        name = Path(self.image_path.split("?")[0]).name
        return name if self.frame_index is None else f"{name}#{self.frame_index}"

    def to_coco(self, image_id: int | str | None = None, category_id: int = 1) -> list[dict[str, Any]]:
        """COCO keypoint results: ``[{image_id, category_id, keypoints: [x, y, c] * K, score, bbox}]``.

        ``bbox`` is ``[x, y, w, h]``; ``score`` is the instance score as stored in :attr:`scores`.

        Args:
            image_id: The image id; ``None`` uses :meth:`coco_image_id` (``pycocotools`` needs integer ids, so
                pass them, or predict with ids set, when scoring against an annotation file).
            category_id: COCO category of the instances (1 = person).

        Raises:
            InvalidInputError: ``image_id`` is None and the result knows no id or file name.
        """
        image_id = self.coco_image_id() if image_id is None else image_id
        if isinstance(image_id, (np.integer, torch.Tensor)):
            image_id = int(image_id)
        arrays = self.numpy()
        results = []
        for box, score, kpts in zip(arrays["boxes"], arrays["scores"], arrays["keypoints"], strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(category_id),
                    "keypoints": [float(v) for v in kpts.reshape(-1)],
                    "score": float(score),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                }
            )
        return results

    # ------------------------------------------------------------------------------------------- drawing

    def plot(
        self,
        image: Any = None,
        *,
        keypoint_threshold: float = 0.3,
        boxes: bool = True,
        scores: bool = True,
        radius: int | None = None,
        line_width: int | None = None,
    ) -> Image.Image:
        """The image with these poses drawn (:func:`posecommon.visualize.draw_pose`).

        Args:
            image: The image to draw on (path, PIL image, array or tensor); default: the kept pixels, else the
                image re-read from :attr:`image_path`.
            keypoint_threshold: Minimum confidence of a drawn keypoint.
            boxes: Draw the boxes.
            scores: Write each box's score above it.
            radius: Keypoint radius in pixels (default from the image size).
            line_width: Limb and box width in pixels.

        Returns:
            A new RGB PIL image.

        Raises:
            InvalidInputError: no image was given and none is known (a URL source is not downloaded again).
        """
        return draw_pose(
            self._drawing_image(image),
            self,
            self.spec,
            keypoint_threshold=keypoint_threshold,
            draw_boxes=boxes,
            show_scores=scores,
            radius=radius,
            line_width=line_width,
        )

    def _drawing_image(self, image: Any) -> Any:
        if image is not None:
            return image
        if self.image is not None:
            return self.image
        if self.image_path is not None and Path(self.image_path).is_file():
            return self.image_path
        raise InvalidInputError(
            "this result keeps no image and its image path is not a local file; pass plot(image=...)"
        )

    def save(
        self, directory: str | Path, name: str | None = None, *, image: Any = None, keypoint_threshold: float = 0.3
    ) -> tuple[Path, Path]:
        """Write ``<name>.png`` (:meth:`plot`) and ``<name>.json`` (:meth:`to_json`) into ``directory``.

        Args:
            directory: Created if missing; files of the same name are overwritten.
            name: File stem; default :attr:`name`.
            image: See :meth:`plot`.
            keypoint_threshold: See :meth:`plot`.

        Returns:
            The paths of the picture and of the JSON file.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        stem = name or self.name
        picture, record = out / f"{stem}.png", out / f"{stem}.json"
        self.plot(image, keypoint_threshold=keypoint_threshold).save(picture)
        record.write_text(self.to_json(indent=1))
        return picture, record
