"""Numbered output folders, as ultralytics and mmpose number theirs: ``runs/predict/exp``, ``exp2``, ``exp3``, ...

``posezoo predict`` and ``posezoo train`` write into a new numbered folder when no ``--out`` is given; an explicit
``--out`` keeps its own rules (``predict`` refuses a non-empty folder without ``--exist-ok``; ``train`` resumes
the run found there).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["RUNS_ROOT", "numbered_run_dir"]

RUNS_ROOT = Path("runs")
"""Parent of the numbered folders, relative to the working directory (ultralytics' ``runs/``)."""


def numbered_run_dir(task: str, name: str = "exp", root: str | Path = RUNS_ROOT) -> Path:
    """Create and return the first free folder of ``root/task/name``, ``name2``, ``name3``, ...

    Each candidate is created with ``mkdir(exist_ok=False)``, so two commands started at once get different folders.

    Args:
        task: ``"predict"`` or ``"train"`` (the sub-folder).
        name: Stem of the numbered folders.
        root: Parent of the task folders.

    Returns:
        The new, empty folder.
    """
    parent = Path(root) / task
    parent.mkdir(parents=True, exist_ok=True)
    number = 1
    while True:
        candidate = parent / (name if number == 1 else f"{name}{number}")
        try:
            candidate.mkdir()
        except FileExistsError:
            number += 1
            continue
        return candidate
