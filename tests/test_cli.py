import subprocess

from posecommon.cli import main
from posecommon.registry import list_models
from tests._tools import find_executable


def test_models_command_prints_every_registered_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    names = list_models()
    if names:
        assert "paper params (M)" in out
        for name in names:
            assert f"| {name} |" in out
    else:
        assert "no models registered" in out


def test_models_command_filters(capsys):
    assert main(["models", "no_such_model_*"]) == 0
    assert "no models registered matching" in capsys.readouterr().out


def test_console_script_is_installed():
    exe = find_executable("posezoo")
    assert exe is not None
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "models" in result.stdout
