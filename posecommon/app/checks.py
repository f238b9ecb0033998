"""What ``posezoo`` checks before it loads a model or generates data, and how it words what went wrong.

Each command's ``check`` (run by :func:`posecommon.app.cli.main` before the model names are looked up) refuses
every argument that is wrong on its own: sizes, thresholds, counts, devices, missing paths. The training options
are checked by :func:`posecommon.app.train_run.check_train_options` and :func:`~posecommon.app.train_run.
check_run_paths`, which :func:`~posecommon.app.train_run.run_training` also runs for callers of the library.

Messages are one line (:func:`one_line`); a stopped training says what is saved and where (:func:`stop_message`).
"""

from __future__ import annotations

import argparse
import math
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import MAX_INPUT_SIDE, check_device, check_size
from ..errors import DatasetError, InvalidInputError

if TYPE_CHECKING:
    from ..errors import TrainingInterrupted

__all__ = ["check_evaluate_args", "check_predict_args", "one_line", "stop_message"]


def one_line(text: str) -> str:
    """``text`` on one line: its lines joined with ``"; "`` (blank lines and indentation dropped)."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _check_threshold(flag: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidInputError(f"{flag} must be a number in [0, 1], got {value}")


def check_predict_args(args: argparse.Namespace) -> None:
    """``posezoo predict``'s arguments that need no model (sizes, thresholds, device, annotation file); the output
    directory is checked next, by the command, and the weights when they load.

    Raises:
        InvalidInputError: an argument is out of range, a detector option is given without ``--detector``, or the
            device is not available.
    """
    for flag, size in (("--input-size", args.input_size), ("--detector-input-size", args.detector_input_size)):
        if size is not None:
            check_size(flag, size, 1, MAX_INPUT_SIDE)
    for flag in ("score_threshold", "iou_threshold", "keypoint_threshold"):
        _check_threshold("--" + flag.replace("_", "-"), getattr(args, flag))
    if args.detector is None:
        for flag in ("detector_weights", "detector_input_size"):
            if getattr(args, flag) is not None:
                raise InvalidInputError(f"--{flag.replace('_', '-')} needs --detector")
    if args.ann is not None and not Path(args.ann).is_file():
        raise InvalidInputError(f"--ann {args.ann}: annotation file not found")
    check_device(args.device)


def check_evaluate_args(args: argparse.Namespace) -> None:
    """``posezoo evaluate``'s box sources and paths, which need no model (``--max-images`` is checked by the
    parser).

    Raises:
        InvalidInputError: more than one source of person boxes.
        DatasetError: ``--ann``, ``--images`` or ``--det-json`` is given and does not exist.
    """
    if args.det_json is not None and (args.detector is not None or args.use_gt_boxes):
        raise InvalidInputError("--det-json, --detector and --use-gt-boxes choose the person boxes: pass only one")
    if args.use_gt_boxes and args.detector is not None:
        raise InvalidInputError("--use-gt-boxes and --detector choose the person boxes: pass only one")
    for flag, path in (("--ann", args.ann), ("--det-json", args.det_json)):
        if path is not None and not Path(path).is_file():
            raise DatasetError(f"{flag} {path}: {'no such file' if not Path(path).exists() else 'not a file'}")
    if args.images is not None and not Path(args.images).is_dir():
        raise DatasetError(f"--images {args.images}: no such directory")


def stop_message(stop: TrainingInterrupted) -> str:
    """What a stopped training says: what stopped it, what is saved and where, and how to go on."""
    name = signal.Signals(stop.signal_number).name
    how = "interrupted" if stop.signal_number == signal.SIGINT else f"stopped by {name}"
    saved = f"checkpoint {stop.checkpoint}" if stop.checkpoint else "no checkpoint yet"
    if stop.at_once and stop.checkpoint_step != stop.step:
        if stop.checkpoint is None:
            return (
                f"{how} at once (second signal) during step {stop.step + 1}, before the first checkpoint: nothing is "
                "saved; run the same command to start again"
            )
        lost = stop.step - (stop.checkpoint_step or 0)
        return (
            f"{how} at once (second signal) during step {stop.step + 1}; the last checkpoint is step "
            f"{stop.checkpoint_step} ({stop.checkpoint}), the {lost} step(s) after it are lost; run the same command "
            "to resume from it"
        )
    if stop.phase == "evaluation":
        return (
            f"{how} during the evaluation after step {stop.step} (not recorded; {saved}); run the same command to "
            "resume"
        )
    if stop.phase == "finishing":
        return (
            f"{how} after training finished at step {stop.step} ({saved}); run the same command to write the final "
            "weights, predictions and summary"
        )
    return f"{how} at step {stop.step} ({saved}); run the same command to resume"
