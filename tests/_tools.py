"""Test helpers shared across test modules."""

import os
import shutil
import sys
from pathlib import Path


def find_executable(name: str) -> str | None:
    """Path of ``name`` in the running interpreter's bin directory or on PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(name, path=search)
