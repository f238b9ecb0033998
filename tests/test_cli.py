"""The ``posezoo`` command line: the cached model table, friendly errors, argument checks before heavy imports."""

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import posecommon
from posecommon.app import size_cache
from posecommon.app.cli import main
from posecommon.registry import list_models
from tests._tools import find_executable

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private model-table cache (never the user's)."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("POSEZOO_CACHE_DIR", str(directory))
    return directory


def _run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env, cwd=ROOT)


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "POSEZOO_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}


def test_models_command_caches_the_table_and_then_needs_no_torch(cache_dir: Path, capsys) -> None:
    assert main(["models"]) == 0  # measures every model and writes the cache
    first = capsys.readouterr().out
    assert "paper params (M)" in first
    for name in list_models():
        assert f"| {name} |" in first
    assert (cache_dir / size_cache.CACHE_FILE).is_file()

    # A fresh process answers from the cache: same table, torch never imported, and quickly.
    code = (
        "import sys, time; start = time.perf_counter(); from posecommon.app.cli import main; code = main(['models']); "
        "print('SECONDS', time.perf_counter() - start); print('TORCH', 'torch' in sys.modules); sys.exit(code)"
    )
    start = time.perf_counter()
    done = _run_python(code, _env(cache_dir))
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert "TORCH False" in done.stdout
    assert done.stdout.split("SECONDS")[0] == first
    assert wall < 3.0, f"posezoo models took {wall:.2f} s from the cache"


def test_the_cache_is_read_back_and_a_stale_one_is_measured_again(cache_dir: Path) -> None:
    measured = size_cache.cached_size_rows("transpose_h_s_twin")
    assert measured[0].macs_g == pytest.approx(5.39, abs=0.01)
    path = cache_dir / size_cache.CACHE_FILE
    payload = json.loads(path.read_text())
    payload["rows"]["transpose_h_s_twin"][0]["macs_g"] = 999.0
    path.write_text(json.dumps(payload))
    assert size_cache.cached_size_rows("transpose_h_s_twin")[0].macs_g == 999.0  # same key: served from the file
    payload["key"]["sources"] = "0" * 64  # as after an edit of the code without a version change
    path.write_text(json.dumps(payload))
    assert size_cache.cached_size_rows("transpose_h_s_twin") == measured  # measured again, the same as at first


def test_models_pattern_matching_nothing_is_an_error(cache_dir: Path, capsys) -> None:
    assert main(["models", "no_such_model_*"]) == 2
    err = capsys.readouterr().err
    assert "no model matches 'no_such_model_*'" in err
    assert "registered models are: " + ", ".join(list_models()) in err
    assert main(["models", "drsi_net_ss"]) == 2
    assert "did you mean 'drsi_net_s'" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--model", "--detector"])
def test_misspelt_model_fails_fast_with_a_suggestion(tmp_path: Path, capsys, caplog, option: str) -> None:
    args = ["predict", str(tmp_path / "a.png"), "--out", str(tmp_path / "out")]
    args += ["--model", "vttranspose_h_s"] if option == "--detector" else []
    with caplog.at_level(logging.WARNING):
        assert main([*args, option, "drsi_net_ss"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model 'drsi_net_ss'; did you mean 'drsi_net_s'" in err
    assert caplog.records == []  # failed before any model was built (no "random weights" warning)


def test_export_without_onnx_is_one_line_with_both_pip_commands(tmp_path: Path, monkeypatch, capsys, caplog) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the extra were not installed
    with caplog.at_level(logging.WARNING):
        assert main(["export", "drsi_net_s", "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "ONNX export needs onnx" in err
    assert 'pip install "posezoo[onnx]"' in err and 'pip install -e ".[onnx]"' in err
    assert caplog.records == []  # the dependency was checked before the model was built


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--out", "model.txt"], "--out must name an .onnx file"),
        (["--out", "m.onnx", "--top-k", "5"], "it needs --decode"),
        (["--out", "m.onnx", "--input-size", "0", "64"], "--input-size H W must be positive"),
    ],
)
def test_export_arguments_are_checked_first(tmp_path: Path, monkeypatch, capsys, options, message) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.chdir(tmp_path)
    assert main(["export", "drsi_net_s", *options]) == 2
    err = capsys.readouterr().err
    assert message in err and "pip install" not in err


def test_export_argument_errors_import_neither_torch_nor_models(tmp_path: Path) -> None:
    code = (
        "import sys; from posecommon.app.cli import main; code = main(['export', 'drsi_net_s', '--out', 'x.txt']); "
        "print('TORCH', 'torch' in sys.modules); sys.exit(code)"
    )
    done = _run_python(code, _env(tmp_path))
    assert done.returncode == 2 and "TORCH False" in done.stdout
    assert "--out must name an .onnx file" in done.stderr


def test_package_names_load_lazily_and_all_resolve() -> None:
    done = _run_python("import sys, posecommon.errors; print('TORCH', 'torch' in sys.modules)", dict(os.environ))
    assert done.stdout.strip() == "TORCH False", done.stderr
    missing = [name for name in posecommon.__all__ if getattr(posecommon, name, None) is None]
    assert missing == []
    assert set(posecommon._EXPORTS) | set(posecommon._SUBMODULES) == set(posecommon.__all__)


def test_console_script_is_installed():
    exe = find_executable("posezoo")
    assert exe is not None
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "models" in result.stdout
