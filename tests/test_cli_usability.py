"""The command line as ultralytics and mmpose users expect it (issue 26, item 2): ``--version``, every default in
``--help``, a model's recipe under ``posezoo train MODEL --help`` that is the recipe the run uses, numbered output
folders without ``--out``, a line per image with people and time (none with ``-q``), and a summary that says how
many people were found and that the weights are random. Predictions run on the photos in tests/data."""

from __future__ import annotations

import argparse
import json
import re
from importlib import metadata
from pathlib import Path

import pytest
import torch

from drsinet import drsi_net_s
from posecommon.app import cli, train_run
from posecommon.app.cli_help import DefaultsFormatter
from posecommon.app.run_dirs import numbered_run_dir

DATA = Path(__file__).parent / "data"
PHOTOS = sorted(p for p in DATA.iterdir() if p.suffix in (".jpg", ".png"))
LINE = re.compile(r"^image (\d+)/(\d+) (\S+): (\d+) (?:people|person), (\d+) ms$", re.M)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> str:
    """A small saved DRSI-Net (random weights, saved: the CLI treats them as given weights)."""
    torch.manual_seed(0)
    model = drsi_net_s(input_size=(128, 128), width_multiple=0.25, depth_multiple=0.2)
    return str(model.save_pretrained(tmp_path_factory.mktemp("models") / "det"))


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_version_prints_the_installed_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"posezoo {metadata.version('posezoo')}"


@pytest.mark.parametrize(
    "command", ["train", "evaluate", "predict", "export", "bench", "convert"]
)  # `models` has no options
def test_help_gives_every_options_default(command):
    parser = _subcommands()[command]
    text = parser.format_help()  # populates the lazily built parsers
    formatter = DefaultsFormatter(prog="posezoo")
    options = [a for a in parser._actions if a.option_strings and "--help" not in a.option_strings]
    assert options, command
    for action in options:
        assert action.option_strings[-1] in text
        shown = formatter._get_help_string(action)
        assert "default" in shown.lower() or action.required, f"{command} {action.option_strings}: {shown!r}"
    if command == "predict":  # the values themselves, as rendered
        flat = " ".join(text.split())
        assert "minimum detection score (default: 0.25)" in flat and "detection NMS IoU (default: 0.45)" in flat
        assert "--half float16 on CUDA, bfloat16 on CPU (autocast) (default: off)" in flat


def test_train_help_prints_the_recipe_the_run_uses_without_training(tmp_path, monkeypatch, capsys):
    flags = ["--steps", "3", "--batch-size", "2", "--lr", "0.002", "--input-size", "64", "48"]
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "vttranspose_h_s", *flags, "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "usage: posezoo train" in help_text and not (tmp_path / "runs").exists()  # nothing was started
    assert "run: 3 steps of batch 2" in help_text
    assert re.search(r"^  epochs +240 \(not used: the run is 3 steps\)", help_text, re.M)  # not "epochs 240"

    class TrainingStartedError(Exception):
        """Raised where the run would start training."""

    built = {}

    class Trainer(train_run.Trainer):
        def fit(self, *args, **kwargs):
            built["config"] = self.config
            built["conv1_std"] = float(self.model.conv1.weight.std())
            raise TrainingStartedError

    monkeypatch.setattr("posecommon.app.train_run.Trainer", Trainer)
    run = ["train", "vttranspose_h_s", *flags, "--out", str(tmp_path / "run"), "--synthetic-train", "4"]
    run += ["--synthetic-val", "2", "--synthetic-image-size", "64", "64"]
    with pytest.raises(TrainingStartedError):
        cli.main(run)
    printed = capsys.readouterr().out
    recipe = printed[printed.index("recipe: ") : printed.index("\n", printed.index("  steps "))]
    assert recipe in help_text  # the recipe printed at the start of the run, line for line
    assert built["config"].total_steps == 3 and built["config"].batch_size == 2 and built["config"].lr == 0.002
    # synthetic data: the backbone starts He-normal (sqrt(2 / fan_out) = 0.059 for conv1), as the recipe says
    assert "from scratch, He-normal backbone" in recipe and 0.05 < built["conv1_std"] < 0.07
    saved = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert (saved["steps"], saved["run"]["steps"]) == (3, 3)


def test_train_without_out_under_torchrun_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["train", "vttranspose_h_s", "--steps", "1"]) == 2
    assert "under torchrun, pass --out" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_train_help_without_a_model_is_the_plain_help(capsys):
    assert cli.main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: posezoo train" in out and "recipe: " not in out


def test_numbered_run_dirs_count_up_and_never_reuse_a_folder(tmp_path):
    first, second = numbered_run_dir("predict", root=tmp_path), numbered_run_dir("predict", root=tmp_path)
    (tmp_path / "predict" / "exp4").mkdir()
    assert [first.name, second.name] == ["exp", "exp2"]
    assert numbered_run_dir("predict", root=tmp_path).name == "exp3"
    assert numbered_run_dir("predict", root=tmp_path).name == "exp5"
    assert numbered_run_dir("train", root=tmp_path) == tmp_path / "train" / "exp"


def test_predict_without_out_writes_numbered_folders_and_out_still_refuses_a_used_one(
    tmp_path, monkeypatch, detector, capsys
):
    monkeypatch.chdir(tmp_path)
    photo = str(PHOTOS[0])
    assert cli.main(["predict", photo, "--weights", detector, "-q"]) == 0
    assert cli.main(["predict", photo, "--weights", detector, "-q"]) == 0
    out = capsys.readouterr().out
    for folder in ("exp", "exp2"):
        assert (tmp_path / "runs" / "predict" / folder / f"{PHOTOS[0].stem}.png").is_file()
        assert f"to {Path('runs', 'predict', folder)}\n" in out
    assert cli.main(["predict", photo, "--weights", detector, "--out", "runs/predict/exp"]) == 2
    assert "is not empty; pass --exist-ok" in capsys.readouterr().err


def test_predict_prints_a_line_per_photo_and_the_people_found(tmp_path, detector, capsys):
    out = tmp_path / "out"
    args = ["predict", str(DATA), "--weights", detector, "--score-threshold", "0", "--max-people", "2"]
    assert cli.main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = LINE.findall(printed)
    assert [(int(i), int(n), name) for i, n, name, _, _ in lines] == [
        (i, len(PHOTOS), p.name) for i, p in enumerate(PHOTOS, start=1)
    ]
    for (_, _, _, people, _), photo in zip(lines, PHOTOS, strict=True):
        assert int(people) == len(json.loads((out / f"{photo.stem}.json").read_text())["people"]) == 2
    total_ms = sum(int(ms) for *_, ms in lines)
    found = re.search(r"^6 people found, (\d+) ms per image$", printed, re.M)
    assert found and abs(int(found.group(1)) - total_ms / 3) <= 2  # the mean of the lines (each rounded)
    assert "weights are random" not in printed

    assert cli.main([*args, "--out", str(tmp_path / "quiet"), "-q"]) == 0
    quiet = capsys.readouterr().out
    assert not LINE.search(quiet) and "6 people found" in quiet


def test_predict_says_when_nobody_is_found_and_the_weights_are_random(tmp_path, detector, capsys):
    nobody = ["--score-threshold", "1"]  # scores are at most 1, kept strictly above the threshold
    assert cli.main(["predict", str(PHOTOS[0]), "--weights", detector, *nobody, "--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^image 1/1 \S+: 0 people, \d+ ms$", printed, re.M)
    assert re.search(r"^0 people found, \d+ ms per image$", printed, re.M)
    args = ["predict", str(PHOTOS[0]), "--model", "drsi_net_s", "--input-size", "128", "128", "-q", *nobody]
    assert cli.main([*args, "--out", str(tmp_path / "b")]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^0 people found \(weights are random: drsi_net_s; ", printed, re.M)
