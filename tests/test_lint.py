import subprocess
from pathlib import Path

from tests._tools import find_executable

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean():
    ruff = find_executable("ruff")
    assert ruff is not None, "ruff is part of the test extra: pip install -e '.[test]'"
    result = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
