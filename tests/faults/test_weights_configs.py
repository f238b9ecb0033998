"""Weight files, ``config.json`` files and official checkpoints that must be refused with one line.

Weights and configs go through ``posezoo predict --weights`` (a tiny saved DRSI-Net or VTTransPose whose files
each case damages); the official-checkpoint converter has no command, so its cases call
:func:`vttranspose.convert_official_transpose` and check the typed error and its one-line message.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from posecommon.errors import IncompatibleWeightsError, UnsafeWeightsError, WeightsNotFoundError

from ._harness import Snapshot, Workspace, check_fault, fault_case, run_cli
from .test_images import GOOD_JPEG


def _argv(ws: Workspace, weights: str | Path, *extra: str) -> list[str]:
    good = ws.write("good.jpg", GOOD_JPEG)
    return ["predict", good, "--out", ws.out, "--exist-ok", "--weights", str(weights), *extra]


def _file(name: str, data: bytes | Callable[[Workspace], bytes], *extra: str) -> Callable[[Workspace], list[str]]:
    def setup(ws: Workspace) -> list[str]:
        content = data(ws) if callable(data) else data
        return _argv(ws, ws.write(name, content), "--model", "drsi_net_s", *extra)

    return setup


def _copy(ws: Workspace, which: str) -> Path:
    target = ws.path(f"saved-{which}")
    shutil.copytree(ws.extra[which], target)
    return target


def _config(edit: Callable[[dict[str, Any]], Any], which: str = "detector") -> Callable[[Workspace], list[str]]:
    """A copy of a saved model whose ``config.json`` ``edit`` changes (returning a replacement, or in place)."""

    def setup(ws: Workspace) -> list[str]:
        saved = _copy(ws, which)
        config = json.loads((saved / "config.json").read_text())
        replaced = edit(config)
        data = replaced if replaced is not None else config
        text = data if isinstance(data, str) else json.dumps(data)
        (saved / "config.json").write_text(text)
        return _argv(ws, saved)

    return setup


def _field(path: str, value: Any, which: str = "detector") -> Callable[[Workspace], list[str]]:
    def edit(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = config
        for name in parents:
            target = target[name]
        target[last] = value

    return _config(edit, which)


def _tensors(edit: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Workspace], list[str]]:
    """A copy of the saved detector whose weights ``edit`` changes, with the sha256 in config.json updated."""

    def setup(ws: Workspace) -> list[str]:
        from safetensors.torch import save

        saved = _copy(ws, "detector")
        state = load_file(str(saved / "model.safetensors"))
        edit(state)
        data = save(state)
        (saved / "model.safetensors").write_bytes(data)
        config = json.loads((saved / "config.json").read_text())
        config["weights"]["sha256"] = hashlib.sha256(data).hexdigest()
        (saved / "config.json").write_text(json.dumps(config))
        return _argv(ws, saved)

    return setup


def _first_float(state: dict[str, torch.Tensor]) -> str:
    return next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)


def _as_int64(state: dict[str, torch.Tensor]) -> None:
    key = _first_float(state)
    state[key] = state[key].round().to(torch.int64)


def _with_value(value: float) -> Callable[[dict[str, torch.Tensor]], None]:
    def edit(state: dict[str, torch.Tensor]) -> None:
        key = _first_float(state)
        state[key] = state[key].clone()
        state[key].view(-1)[0] = value

    return edit


def _real_weights(ws: Workspace) -> bytes:
    return (Path(ws.extra["detector"]) / "model.safetensors").read_bytes()


def _truncated_weights(ws: Workspace) -> bytes:
    data = _real_weights(ws)
    return data[: len(data) // 2]


def _pose_weights(ws: Workspace) -> bytes:
    return (Path(ws.extra["pose"]) / "model.safetensors").read_bytes()


def _torch_zip(ws: Workspace) -> bytes:
    path = ws.path("tmp.pt")
    torch.save({"w": torch.zeros(2)}, path)
    return path.read_bytes()


def _missing_weights_file(ws: Workspace) -> list[str]:
    saved = _copy(ws, "detector")
    (saved / "model.safetensors").unlink()
    return _argv(ws, saved)


def _pickle_in_saved_dir(ws: Workspace) -> list[str]:
    saved = _copy(ws, "detector")
    data = pickle.dumps({"w": [1, 2, 3]}, protocol=4)
    (saved / "model.safetensors").write_bytes(data)
    config = json.loads((saved / "config.json").read_text())
    config["weights"]["sha256"] = hashlib.sha256(data).hexdigest()
    (saved / "config.json").write_text(json.dumps(config))
    return _argv(ws, saved)


def _empty_directory(ws: Workspace) -> list[str]:
    ws.path("empty-weights").mkdir()
    return _argv(ws, ws.path("empty-weights"), "--model", "drsi_net_s")


def _missing_file(ws: Workspace) -> list[str]:
    return _argv(ws, ws.path("nope.safetensors"), "--model", "drsi_net_s")


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


WRONG_SHA = "0" * 64

CASES = [
    # weight files given with --model
    fault_case("missing-file", _missing_file, 2, "weight file not found"),
    fault_case("pickle", _file("w.pt", pickle.dumps({"w": 1}, protocol=2)), 2, "never unpickles"),
    fault_case("torch-zip", _file("w.pth", _torch_zip), 2, "never unpickles"),
    fault_case("text-file", _file("w.safetensors", "just some text\n"), 2, "is not a safetensors file"),
    fault_case("passwd-like-text", _file("passwd", "root:x:0:0:root:/root:/bin/bash\n"), 2, "is not a safetensors"),
    fault_case("empty-file", _file("w.safetensors", b""), 2, "is not a safetensors file"),
    fault_case("huge-header-length", _file("w.safetensors", b"\xff" * 8 + b"{}"), 2, "is not a safetensors file"),
    fault_case("truncated-safetensors", _file("w.safetensors", _truncated_weights), 2, "damaged safetensors"),
    fault_case("another-architecture", _file("w.safetensors", _pose_weights), 2, "do not fit"),
    fault_case("directory-without-config", _empty_directory, 2, "config.json not found"),
    # weights inside a saved directory
    fault_case("int64-tensor", _tensors(_as_int64), 2, "integer vs floating point"),
    fault_case("nan-tensor", _tensors(_with_value(float("nan"))), 2, "NaN or infinite"),
    fault_case("inf-tensor", _tensors(_with_value(float("inf"))), 2, "NaN or infinite"),
    fault_case("pickle-in-saved-dir", _pickle_in_saved_dir, 2, "never unpickles"),
    fault_case("weights-file-missing", _missing_weights_file, 2, "model.safetensors not found"),
    fault_case("sha256-mismatch", _field("weights.sha256", WRONG_SHA), 2, "sha256 mismatch"),
    # config.json
    fault_case("config-not-json", _config(lambda c: "{not json"), 2, "malformed JSON"),
    fault_case("config-empty", _config(lambda c: " "), 2, "is empty"),
    fault_case("config-nested-100000", _config(lambda c: _deep(100000)), 2, "nested too deeply"),
    fault_case("config-over-1mib", _field("training_data", "x" * (2 << 20)), 2, "over the 1,048,576-byte limit"),
    fault_case("config-is-a-list", _config(lambda c: [c]), 2, "expected a JSON object"),
    fault_case("config-unknown-field", _field("colour", "red"), 2, "'colour' is not a field"),
    fault_case("config-no-model-name", _config(lambda c: [c.pop("model_name"), c][1]), 2, "'model_name' is missing"),
    fault_case("config-unknown-model", _field("model_name", "drsi_net_xxl"), 2, "unknown model"),
    fault_case("config-format-99", _field("format_version", 99), 2, "upgrade posezoo"),
    fault_case("config-sha256-not-hex", _field("weights.sha256", "abc"), 2, "64 lowercase hex"),
    fault_case("config-metric-text", _field("metrics", {"AP": "high"}), 2, "must be a number"),
    fault_case("config-source-commit", _field("source", {"repo_id": "a/b", "commit": "x"}), 2, "40-hex"),
    fault_case("config-keypoint-spec-garbage", _field("keypoint_spec", {"name": 3}), 2, "keypoint_spec"),
    fault_case("num-joints-10-million", _field("config.num_joints", 10_000_000), 2, "num_joints must be within"),
    fault_case("num-joints-zero", _field("config.num_joints", 0), 2, "num_joints must be >= 1"),
    fault_case("num-joints-text", _field("config.num_joints", "17"), 2, "num_joints must be int"),
    fault_case("input-size-640-million", _field("config.input_size", [640000000, 64]), 2, "input_size must be within"),
    fault_case("input-size-not-64", _field("config.input_size", [600, 600]), 2, "multiples of 64"),
    fault_case("input-size-three-values", _field("config.input_size", [64, 64, 64]), 2, "must have 2 values"),
    fault_case("width-multiple-1000", _field("config.width_multiple", 1000.0), 2, "width_multiple must be within"),
    fault_case("stage-channels-million", _field("config.stage_channels", [10**6] * 5), 2, "stage_channels must be"),
    fault_case("stage-blocks-thousand", _field("config.stage_blocks", [1000] * 5), 2, "stage_blocks must be"),
    fault_case("gnconv-order-100", _field("config.gnconv_order", 100), 2, "gnconv_order must be within"),
    fault_case("anchors-huge", _field("config.anchors", [[10**9] * 6] * 4), 2, "anchors must be within"),
    fault_case("config-unknown-config-field", _field("config.depth", 3), 2, "unknown field 'depth'"),
    fault_case("config-pretrained-smuggled", _field("config.pretrained", True), 2, "entrypoint argument"),
    fault_case("pose-d-model-million", _field("config.d_model", 10**6, "pose"), 2, "d_model must be within"),
    fault_case("pose-layers-100000", _field("config.num_layers", 100000, "pose"), 2, "num_layers must be within"),
    fault_case("pose-width-100000", _field("config.width", 100000, "pose"), 2, "width must be within"),
    fault_case("pose-input-63x47", _field("config.input_size", [63, 47], "pose"), 2, "multiples of 4"),
    fault_case("pose-heads-zero", _field("config.num_heads", 0, "pose"), 2, "num_heads"),
    fault_case("pose-dropout-nan", _field("config.dropout", float("nan"), "pose"), 2, "dropout must be within"),
]


@pytest.mark.parametrize(("setup", "code", "message", "lines", "unchanged"), CASES)
def test_weights_and_config_fault(setup, code, message, lines, unchanged, workspace, models):
    workspace.extra.update({name: str(path) for name, path in models.items()})
    argv = setup(workspace)
    snapshot = Snapshot(workspace.root)
    started = time.monotonic()
    outcome = run_cli(argv)
    check_fault(outcome, snapshot, code=code, message=message, command="predict", lines=lines, unchanged=unchanged)
    assert "delete" not in outcome.err.lower() or "damaged" in outcome.err  # deletion advice for damaged files only
    assert time.monotonic() - started < 60  # no model of absurd size was built


def test_the_weights_are_verified_before_the_config_builds_anything(workspace, models):
    """A config asking for 10 million joints with weights that fail their sha256: the checksum answers, at once
    (main built the model first: 12 s and 2.2 GB, then an untyped RuntimeError)."""
    saved = Path(shutil.copytree(models["detector"], workspace.path("saved")))
    config = json.loads((saved / "config.json").read_text())
    config["config"]["num_joints"] = 10_000_000
    config["weights"]["sha256"] = WRONG_SHA
    (saved / "config.json").write_text(json.dumps(config))
    snapshot = Snapshot(workspace.root)
    started = time.monotonic()
    outcome = run_cli(_argv(workspace, saved))
    check_fault(outcome, snapshot, code=2, message="sha256 mismatch", command="predict")
    assert time.monotonic() - started < 30


def test_identical_weights_give_identical_bytes(tmp_path):
    """The same model saved twice (in two processes: safetensors' metadata order changes per process) gives the same
    file and sha256."""
    import subprocess
    import sys

    script = (
        "import sys, torch; from vttranspose import vttranspose_h_s; torch.manual_seed(0); "
        "vttranspose_h_s(input_size=(32, 24)).save_pretrained(sys.argv[1])"
    )
    digests = set()
    for index in range(3):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / str(index))], check=True, timeout=300)
        digests.add(hashlib.sha256((tmp_path / str(index) / "model.safetensors").read_bytes()).hexdigest())
        assert json.loads((tmp_path / str(index) / "config.json").read_text())["weights"]["sha256"] in digests
    assert len(digests) == 1


# --- the official-checkpoint converter (no command: the typed error and its one-line message) ---------------


def _text(path: Path) -> None:
    path.write_text("not a checkpoint\n")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _random(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 8)


def _object(path: Path) -> None:
    torch.save({"w": torch.zeros(1), "when": time.struct_time((2020, 1, 1, 0, 0, 0, 0, 1, 0))}, path)


def _tensor_list(path: Path) -> None:
    torch.save([torch.zeros(1)], path)


def _integers(path: Path) -> None:
    torch.save({"w": 3}, path)


def _truncated_zip(path: Path) -> None:
    torch.save({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:200])


CONVERTER_CASES = [
    pytest.param(_empty, IncompatibleWeightsError, "the file is empty", id="empty-pth"),
    pytest.param(_text, IncompatibleWeightsError, "is not a PyTorch checkpoint", id="text-pth"),
    pytest.param(_random, IncompatibleWeightsError, "is not a PyTorch checkpoint", id="random-pth"),
    pytest.param(_object, UnsafeWeightsError, "does not unpickle", id="pickled-object"),
    pytest.param(_tensor_list, IncompatibleWeightsError, "not a state dict", id="list-of-tensors"),
    pytest.param(_integers, IncompatibleWeightsError, "not tensors", id="integer-entries"),
    pytest.param(_truncated_zip, IncompatibleWeightsError, "damaged PyTorch checkpoint", id="truncated-pth"),
    pytest.param(None, WeightsNotFoundError, "checkpoint not found", id="missing-pth"),
]


@pytest.mark.parametrize(("write", "error", "message"), CONVERTER_CASES)
def test_converter_fault(write, error, message, tmp_path):
    from vttranspose import convert_official_transpose

    path = tmp_path / "official.pth"
    if write is not None:
        write(path)
    keep = tmp_path / "keep.txt"
    keep.write_text("kept")
    with pytest.raises(error) as caught:
        convert_official_transpose(path, tmp_path / "converted")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert keep.read_text() == "kept" and not (tmp_path / "converted").exists()


def test_an_hf_hub_repository_gets_the_same_checks(tmp_path, monkeypatch, models):
    """A Hub repository whose config.json asks for 10 million joints is refused from its bounds, quickly (main: 12 s,
    2.2 GB, then an untyped RuntimeError)."""
    from huggingface_hub import constants as hf_constants

    from posecommon.errors import ConfigError
    from posecommon.model import PoseModel

    from ..hub_server import LocalHub

    server = LocalHub().start()
    try:
        cache = tmp_path / "hf-home" / "hub"
        variables = {"HF_ENDPOINT": server.endpoint, "HF_HOME": str(cache.parent), "HF_HUB_CACHE": str(cache)}
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(hf_constants, "ENDPOINT", server.endpoint)
        template = server.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        config = json.loads((Path(models["detector"]) / "config.json").read_text())
        config["config"]["num_joints"] = 10_000_000
        weights = (Path(models["detector"]) / "model.safetensors").read_bytes()
        commit = server.add_commit("posezoo-test/huge", {"config.json": json.dumps(config).encode(),
                                                         "model.safetensors": weights})  # fmt: skip
        started = time.monotonic()
        with pytest.raises(ConfigError, match="num_joints must be within") as refused:
            PoseModel.from_pretrained(f"hf-hub:posezoo-test/huge@{commit}")
        assert time.monotonic() - started < 30 and "\n" not in str(refused.value)
    finally:
        server.stop()
