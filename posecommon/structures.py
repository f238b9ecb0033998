"""Typed prediction results: :class:`PoseResult`, the poses found in one image (or video frame).

The surface follows ultralytics' ``Results`` where the two overlap (``len``, indexing over people, ``cpu()``,
``numpy()``, ``to()``, normalised coordinates, ``plot()``, ``show()``, ``save()``, ``summary()``, ``to_df()``,
``speed``); ``docs/coming_from.md`` maps one to the other. Drawing lives in :mod:`posecommon.visualize`, which
this module calls and which does not import it.
"""

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
from .extras import require_extra
from .keypoints import KeypointSpec, default_keypoint_spec
from .visualize import draw_pose, show_image

if TYPE_CHECKING:
    import pandas
    from PIL import Image

__all__ = ["SPEED_PHASES", "PoseResult"]

SPEED_PHASES: tuple[str, ...] = ("preprocess", "inference", "postprocess")
"""The keys of :attr:`PoseResult.speed`, in the order a prediction runs them."""

Array = torch.Tensor | np.ndarray


def _float_numpy(values: Array) -> np.ndarray:
    """``values`` as a float32 numpy array (a CPU copy of a tensor)."""
    if isinstance(values, torch.Tensor):
        return values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class PoseResult:
    """Poses found in one image, in that image's pixel coordinates, with what is known about the image.

    Pixel convention: ``(x, y) = (0, 0)`` is the centre of the top-left pixel, so a ``W``-pixel-wide image spans
    ``[-0.5, W - 0.5]`` (the COCO annotation convention used by ``COCOeval`` is the same up to the half-pixel offset
    that COCO itself leaves unspecified). The normalised coordinates (:attr:`keypoints_xyn`, :attr:`boxes_xyxyn`,
    :attr:`boxes_xywhn`) map the image's edges to 0 and 1: ``xn = (x + 0.5) / W``, ``yn = (y + 0.5) / H``, which is
    ultralytics' ``xyn`` of the same point.

    ``PoseResult(boxes, scores, keypoints)`` is all that is required; ``predict`` also fills the image fields and
    :attr:`speed`. Indexing and iteration go over people (``result[0]``, ``result[scores > 0.5]``, ``for person in
    result``), each item being a ``PoseResult`` of the selected people with the same image fields, like
    ultralytics' ``Results``; ``len(result)`` is the number of people, ``bool(result)`` and :attr:`empty` say
    whether there are any. Equality is identity (the fields are arrays).

    The three pose fields are torch tensors, or float32 numpy arrays after :meth:`numpy`; :meth:`to` and
    :meth:`cpu` give tensors again.

    Args:
        boxes: ``(N, 4)`` float person boxes ``(x1, y1, x2, y2)`` in pixels.
        scores: ``(N,)`` instance scores in ``[0, 1]``.
        keypoints: ``(N, K, 3)`` float ``(x, y, confidence)`` in pixels.
        image_path: The file (or URL) the image was read from, if any.
        image_size: ``(H, W)`` of the image.
        keypoint_spec: The model's keypoint set (names, skeleton); ``None``: COCO-17 for K = 17, else generic.
        frame_index: Index of the frame in its video, for video sources.
        image_id: Id to write in COCO results (set when the image is known from an annotation file).
        image: ``(3, H, W)`` uint8 RGB pixels, kept for :meth:`plot` when the image did not come from a local file
            (arrays, PIL images, tensors, URLs, video frames); ``None`` for local files, which are re-read.
        speed: Milliseconds per image of each phase of the prediction, ``{"preprocess": ..., "inference": ...,
            "postprocess": ...}`` (:data:`SPEED_PHASES`; the batch's time divided by its images, as ultralytics
            reports it); ``None`` when the result did not come from ``predict``.

    Raises:
        ValueError: the three arrays disagree on N, or have the wrong rank / last dimension.
    """

    boxes: Array
    scores: Array
    keypoints: Array
    image_path: str | None = None
    image_size: tuple[int, int] | None = None
    keypoint_spec: KeypointSpec | None = None
    frame_index: int | None = None
    image_id: int | str | None = None
    image: torch.Tensor | None = field(default=None, repr=False)
    speed: dict[str, float] | None = None

    def __post_init__(self) -> None:
        n = self.boxes.shape[0] if self.boxes.ndim == 2 else -1
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"boxes must be (N, 4), got {tuple(self.boxes.shape)}")
        if tuple(self.scores.shape) != (n,):
            raise ValueError(f"scores must be ({n},), got {tuple(self.scores.shape)}")
        if self.keypoints.ndim != 3 or self.keypoints.shape[0] != n or self.keypoints.shape[2] != 3:
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
        where = f"device={self.boxes.device}" if isinstance(self.boxes, torch.Tensor) else "numpy"
        return f"PoseResult(people={len(self)}, joints={self.num_joints}, {where}{image})"

    # ------------------------------------------------------------------------------------------- people

    def __len__(self) -> int:
        """The number of people N."""
        return int(self.boxes.shape[0])

    def __bool__(self) -> bool:
        """Whether anyone was found (``if result:``); the same as ``not result.empty``."""
        return len(self) > 0

    @property
    def empty(self) -> bool:
        """True when the result holds no people (a flag, as ``len(result) == 0``)."""
        return len(self) == 0

    def __getitem__(self, index: int | slice | torch.Tensor | np.ndarray | list[int]) -> PoseResult:
        """The selected people (an int keeps the person dimension: ``result[0].boxes`` is ``(1, 4)``)."""
        if isinstance(index, (int, np.integer)):
            n = len(self)
            if not -n <= int(index) < n:
                raise IndexError(f"person index {int(index)} out of range for {n} people")
            index = slice(int(index) % n, int(index) % n + 1)
        elif isinstance(self.boxes, np.ndarray):
            if isinstance(index, torch.Tensor):
                index = index.cpu().numpy()
            elif isinstance(index, list):
                index = np.asarray(index, dtype=np.int64)
        else:
            if isinstance(index, np.ndarray):
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
    def no_people(cls, num_joints: int, device: torch.device | str = "cpu", **image_fields: Any) -> PoseResult:
        """A result with no people (``image_fields``: any of the optional fields).

        Args:
            num_joints: K of the keypoints ``(0, K, 3)``.
            device: Where the empty tensors live.
            **image_fields: ``image_path``, ``image_size``, ... (see the class).
        """
        zeros = torch.zeros(0, device=device)
        return cls(zeros.view(0, 4), zeros, zeros.view(0, num_joints, 3), **image_fields)

    # ------------------------------------------------------------------------------------------- coordinates

    @property
    def boxes_xyxy(self) -> Array:
        """``(N, 4)`` boxes ``(x1, y1, x2, y2)`` in pixels (the same as :attr:`boxes`; ultralytics ``boxes.xyxy``)."""
        return self.boxes

    @property
    def boxes_xywh(self) -> Array:
        """``(N, 4)`` boxes ``(x_centre, y_centre, width, height)`` in pixels, centre-based as ultralytics'
        ``boxes.xywh`` (COCO's ``bbox``, written by :meth:`to_coco`, is ``(x_left, y_top, width, height)``)."""
        x1, y1, x2, y2 = (self.boxes[:, i] for i in range(4))
        return _stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], like=self.boxes)

    @property
    def boxes_xyxyn(self) -> Array:
        """``(N, 4)`` :attr:`boxes_xyxy` normalised to the image, ``(x + 0.5) / W`` and ``(y + 0.5) / H``
        (ultralytics ``boxes.xyxyn``).

        Raises:
            InvalidInputError: :attr:`image_size` is unknown.
        """
        height, width = self._size("boxes_xyxyn")
        scale = _like([width, height, width, height], self.boxes)
        return (self.boxes + 0.5) / scale

    @property
    def boxes_xywhn(self) -> Array:
        """``(N, 4)`` :attr:`boxes_xywh` normalised to the image: centre ``(x + 0.5) / W``, ``(y + 0.5) / H``,
        size ``w / W``, ``h / H`` (ultralytics ``boxes.xywhn``).

        Raises:
            InvalidInputError: :attr:`image_size` is unknown.
        """
        height, width = self._size("boxes_xywhn")
        xywh = self.boxes_xywh
        offset = _like([0.5, 0.5, 0.0, 0.0], xywh)
        return (xywh + offset) / _like([width, height, width, height], xywh)

    @property
    def keypoints_xy(self) -> Array:
        """``(N, K, 2)`` keypoint ``(x, y)`` in pixels (ultralytics ``keypoints.xy``)."""
        return self.keypoints[..., :2]

    @property
    def keypoints_xyn(self) -> Array:
        """``(N, K, 2)`` :attr:`keypoints_xy` normalised to the image, ``(x + 0.5) / W``, ``(y + 0.5) / H``
        (ultralytics ``keypoints.xyn``).

        Raises:
            InvalidInputError: :attr:`image_size` is unknown.
        """
        height, width = self._size("keypoints_xyn")
        return (self.keypoints[..., :2] + 0.5) / _like([width, height], self.keypoints)

    @property
    def keypoints_conf(self) -> Array:
        """``(N, K)`` keypoint confidences (ultralytics ``keypoints.conf``)."""
        return self.keypoints[..., 2]

    def _size(self, what: str) -> tuple[int, int]:
        if self.image_size is None:
            raise InvalidInputError(
                f"{what} needs the image size, which this result does not know; build it with image_size=(H, W) "
                "(predict sets it)"
            )
        return self.image_size

    # ------------------------------------------------------------------------------------------- devices

    def to(self, device: torch.device | str) -> PoseResult:
        """Copy of the result with the pose fields as tensors on ``device`` (numpy fields become tensors; the
        kept image pixels stay where they are)."""
        return dataclasses.replace(
            self,
            boxes=torch.as_tensor(self.boxes).to(device),
            scores=torch.as_tensor(self.scores).to(device),
            keypoints=torch.as_tensor(self.keypoints).to(device),
        )

    def cpu(self) -> PoseResult:
        """Copy of the result with the pose fields as CPU tensors."""
        return self.to("cpu")

    def numpy(self) -> PoseResult:
        """Copy of the result with ``boxes``, ``scores`` and ``keypoints`` as float32 numpy arrays (detached CPU
        copies; the kept image pixels stay a tensor).

        Every property and method works on it too; for JSON, use :meth:`to_dict` / :meth:`to_json` (plain lists
        and floats) or :meth:`summary`.
        """
        return dataclasses.replace(
            self,
            boxes=_float_numpy(self.boxes),
            scores=_float_numpy(self.scores),
            keypoints=_float_numpy(self.keypoints),
        )

    # ------------------------------------------------------------------------------------------- serialising

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description: the image, the keypoint names, one entry per person and the speed.

        Returns:
            ``{"image": {...}, "keypoint_names": [...], "people": [...], "speed": {...} or null}``: ``image`` holds
            ``path``, ``height``, ``width``, ``frame_index`` and ``image_id`` (``null`` when unknown); each person
            is ``{"box": [x1, y1, x2, y2], "score": s, "keypoints": [[x, y, confidence], ...]}`` with K keypoints,
            in pixels; ``speed`` is :attr:`speed`.
        """
        boxes, scores, keypoints = (_float_numpy(a) for a in (self.boxes, self.scores, self.keypoints))
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
                for box, score, kpts in zip(boxes, scores, keypoints, strict=True)
            ],
            "speed": dict(self.speed) if self.speed is not None else None,
        }

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self, normalize: bool = False, decimals: int = 5) -> list[dict[str, Any]]:
        """One plain dict per person, in ultralytics' ``Results.summary()`` layout.

        Args:
            normalize: Coordinates normalised to the image (:attr:`boxes_xyxyn`, :attr:`keypoints_xyn`) instead of
                pixels.
            decimals: Rounding of every number.

        Returns:
            One dict per person with the keys ``name`` (``"person"``), ``class`` (0), ``confidence``, ``box``
            (``{"x1", "y1", "x2", "y2"}``) and ``keypoints`` (``{"x": [K], "y": [K], "visible": [K]}``);
            ``visible`` holds the keypoint confidences, as in ultralytics.

        Raises:
            InvalidInputError: ``normalize`` and :attr:`image_size` is unknown.
        """
        boxes = _float_numpy(self.boxes_xyxyn if normalize else self.boxes)
        points = _float_numpy(self.keypoints_xyn if normalize else self.keypoints_xy)
        scores, conf = _float_numpy(self.scores), _float_numpy(self.keypoints_conf)

        def rounded(values: np.ndarray) -> list[float]:
            return [round(float(v), decimals) for v in values]

        return [
            {
                "name": "person",
                "class": 0,
                "confidence": round(float(scores[i]), decimals),
                "box": dict(zip(("x1", "y1", "x2", "y2"), rounded(boxes[i]), strict=True)),
                "keypoints": {
                    "x": rounded(points[i, :, 0]),
                    "y": rounded(points[i, :, 1]),
                    "visible": rounded(conf[i]),
                },
            }
            for i in range(len(self))
        ]

    def to_df(self, normalize: bool = False, decimals: int = 5) -> pandas.DataFrame:
        """The people as a pandas table, one row each (needs the ``pandas`` extra).

        Columns: ``image`` (:attr:`image_path`), ``frame_index``, ``name``, ``class``, ``confidence``, ``x1``,
        ``y1``, ``x2``, ``y2``, then ``<joint>_x``, ``<joint>_y``, ``<joint>_conf`` for each of the K joints by
        :attr:`keypoint_names`.

        Args:
            normalize: See :meth:`summary`.
            decimals: See :meth:`summary`.

        Raises:
            MissingDependencyError: pandas is not installed (one line with the pip command).
        """
        require_extra("pandas", ["pandas"], "PoseResult.to_df")
        import pandas

        names = self.keypoint_names
        columns = ["image", "frame_index", "name", "class", "confidence", "x1", "y1", "x2", "y2"]
        columns += [f"{joint}_{part}" for joint in names for part in ("x", "y", "conf")]
        rows = []
        for person in self.summary(normalize, decimals):
            row = [self.image_path, self.frame_index, person["name"], person["class"], person["confidence"]]
            row += list(person["box"].values())
            points = person["keypoints"]
            for k in range(len(names)):
                row += [points["x"][k], points["y"][k], points["visible"][k]]
            rows.append(row)
        return pandas.DataFrame(rows, columns=columns)

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

        Coordinates are written in posezoo's pixel convention unchanged (integer coordinates are pixel centres, an
        image spans ``[-0.5, W - 0.5]``, so a box of the whole image is ``[-0.5, -0.5, W, H]``); ``bbox`` is COCO's
        ``[x_left, y_top, width, height]`` (not ultralytics' centre-based :attr:`boxes_xywh`); ``score`` is the
        instance score as stored in :attr:`scores`.

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
        boxes, scores, keypoints = (_float_numpy(a) for a in (self.boxes, self.scores, self.keypoints))
        results = []
        for box, score, kpts in zip(boxes, scores, keypoints, strict=True):
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
        draw_boxes: bool = True,
        show_scores: bool = True,
        radius: int | None = None,
        line_width: int | None = None,
    ) -> Image.Image:
        """The image with these poses drawn (:func:`posecommon.visualize.draw_pose`, whose option names these are).

        Args:
            image: The image to draw on (path, PIL image, array or tensor); default: the kept pixels, else the
                image re-read from :attr:`image_path`.
            keypoint_threshold: Minimum confidence of a drawn keypoint.
            draw_boxes: Draw the boxes.
            show_scores: With ``draw_boxes``, write each box's score above it.
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
            draw_boxes=draw_boxes,
            show_scores=show_scores,
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

    def show(self, image: Any = None, **plot_options: Any) -> bool:
        """Open :meth:`plot`'s picture in the system's image viewer (:func:`posecommon.visualize.show_image`).

        Without a display (a headless machine, ``DISPLAY`` unset on Linux) or without a viewer nothing opens: a
        WARNING says so and the call returns False, as ultralytics' ``show()`` warns where it cannot show.

        Args:
            image: See :meth:`plot`.
            **plot_options: The keywords of :meth:`plot` (``keypoint_threshold``, ``draw_boxes``, ...).

        Returns:
            Whether a viewer was started.
        """
        return show_image(self.plot(image, **plot_options), title=self.name)

    def save(
        self, directory: str | Path, name: str | None = None, *, image: Any = None, **plot_options: Any
    ) -> tuple[Path, Path]:
        """Write ``<name>.png`` (:meth:`plot`) and ``<name>.json`` (:meth:`to_json`) into ``directory``.

        Args:
            directory: Created if missing; files of the same name are overwritten.
            name: File stem; default :attr:`name`.
            image: See :meth:`plot`.
            **plot_options: The keywords of :meth:`plot` (``keypoint_threshold``, ``draw_boxes``, ...).

        Returns:
            The paths of the picture and of the JSON file.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        stem = name or self.name
        picture, record = out / f"{stem}.png", out / f"{stem}.json"
        self.plot(image, **plot_options).save(picture)
        record.write_text(self.to_json(indent=1))
        return picture, record


def _like(values: list[float], reference: Array) -> Array:
    """``values`` as an array of ``reference``'s kind, dtype and device (for broadcasting over the last axis)."""
    if isinstance(reference, torch.Tensor):
        dtype = reference.dtype if reference.is_floating_point() else torch.float32
        return torch.tensor(values, dtype=dtype, device=reference.device)
    return np.asarray(values, dtype=reference.dtype if reference.dtype.kind == "f" else np.float32)


def _stack(columns: list[Array], like: Array) -> Array:
    """The columns stacked along a new last axis, as tensors or numpy arrays like ``like``."""
    if isinstance(like, torch.Tensor):
        return torch.stack(columns, dim=-1)
    return np.stack(columns, axis=-1)
