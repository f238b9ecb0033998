"""The real Hub download path, end to end, against a Hub-compatible server on 127.0.0.1.

Nothing of ``huggingface_hub`` is mocked: ``hf_hub_download`` and ``HfApi`` make real HTTP requests to
:class:`tests.hub_server.LocalHub`. ``huggingface_hub`` reads ``HF_ENDPOINT``, ``HF_HUB_CACHE`` and
``HF_HUB_OFFLINE`` once, when it is imported, into ``huggingface_hub.constants`` (``ENDPOINT``,
``HUGGINGFACE_CO_URL_TEMPLATE``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``), and its functions read those constants at
call time. The ``hub`` fixture therefore sets the environment variables *and* monkeypatches these constants, so the
tests behave like a process started with those variables, whatever was imported first.

Nothing else is patched: the "Hub unreachable" test really waits, and asserts that posezoo fails fast instead of
going through ``hf_hub_download``'s five retries with backoff (23 s in 2.4.0).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants as hf_constants
from safetensors.torch import save

from posecommon import (
    ChecksumError,
    ConfigError,
    HubUnavailableError,
    IncompatibleWeightsError,
    InvalidInputError,
    PoseModel,
    WeightsNotFoundError,
    WeightSpec,
    create_model,
)
from tests.hub_server import LocalHub, TinyPose, register_tiny, tiny_pose
from vttranspose.convert import convert_official_transpose

REPO = "posezoo-test/tiny-pose"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    server = LocalHub().start()
    cache = tmp_path / "hf-home" / "hub"
    for name, value in {
        "HF_ENDPOINT": server.endpoint,
        "HF_HOME": str(cache.parent),
        "HF_HUB_CACHE": str(cache),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "ENDPOINT", server.endpoint)
    monkeypatch.setattr(
        hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    yield server
    server.stop()


def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)


def _weights(seed: int, **kwargs: int) -> tuple[bytes, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    state = {k: v.clone() for k, v in tiny_pose(**kwargs).state_dict().items()}
    return save(state), state


def _publish(hub: LocalHub, monkeypatch: pytest.MonkeyPatch, seed: int = 0) -> tuple[str, dict[str, torch.Tensor]]:
    """Commit tiny weights to the server and register them as ``tiny_pose.synthetic``; returns commit and state."""
    data, state = _weights(seed)
    commit = hub.add_commit(REPO, {"tiny_pose.safetensors": data})
    spec = WeightSpec("synthetic", REPO, commit, "tiny_pose.safetensors", hashlib.sha256(data).hexdigest())
    register_tiny(monkeypatch, weights=(spec,))
    return commit, state


def _file_requests(hub: LocalHub) -> list[tuple[str, str]]:
    """Requests for repository files (resolve or large-file server), leaving out unrelated ``/api`` calls."""
    return [r for r in hub.requests if not r[1].startswith("/api/")]


def _assert_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


def test_download_verify_and_load(hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    commit, state = _publish(hub, monkeypatch)
    model = create_model("tiny_pose", pretrained=True)
    _assert_state(model, state)
    assert model.pretrained_report.sha256 == hashlib.sha256(save(state)).hexdigest()
    path = Path(model.pretrained_report.path)
    assert path.parent == Path(hf_constants.HF_HUB_CACHE) / "models--posezoo-test--tiny-pose" / "snapshots" / commit
    assert ("HEAD", f"/{REPO}/resolve/{commit}/tiny_pose.safetensors") in hub.requests
    assert any(method == "GET" and path.startswith("cdn:/blobs/") for method, path in hub.requests)
    assert create_model("tiny_pose", pretrained="synthetic").pretrained_report.source.startswith("tiny_pose.synthetic")


def test_pinned_commit_is_served_from_cache_without_network(hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    _, state = _publish(hub, monkeypatch)
    create_model("tiny_pose", pretrained=True)
    before = len(_file_requests(hub))
    create_model("tiny_pose", pretrained=True)
    assert len(_file_requests(hub)) == before
    hub.stop()
    _assert_state(create_model("tiny_pose", pretrained=True), state)


def test_revision_pinning(hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    first = tiny_pose()
    first_commit = first.push_to_hub("me/tiny").oid
    torch.manual_seed(1)
    second = tiny_pose()
    assert second.push_to_hub("me/tiny").oid != first_commit
    register_tiny(monkeypatch)
    _assert_state(create_model("tiny_pose", pretrained=f"hf-hub:me/tiny@{first_commit}"), first.state_dict())
    _assert_state(create_model("tiny_pose", pretrained="hf-hub:me/tiny"), second.state_dict())
    _assert_state(PoseModel.from_pretrained("me/tiny", revision=first_commit), first.state_dict())


def test_offline_mode_with_and_without_cache(hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    _, state = _publish(hub, monkeypatch)
    tiny_pose().push_to_hub("me/tiny")
    create_model("tiny_pose", pretrained=True)
    create_model("tiny_pose", pretrained="hf-hub:me/tiny")  # caches main's commit as refs/main
    _offline(monkeypatch)
    before = len(hub.requests)
    _assert_state(create_model("tiny_pose", pretrained=True), state)
    create_model("tiny_pose", pretrained="hf-hub:me/tiny")  # a branch: resolved through the cached ref
    assert len(hub.requests) == before
    with pytest.raises(HubUnavailableError, match=r"offline mode is on \(HF_HUB_OFFLINE=1\)") as info:
        create_model("tiny_pose", pretrained="hf-hub:me/never-downloaded")
    assert hf_constants.HF_HUB_CACHE in str(info.value)
    assert len(hub.requests) == before


def test_hub_unreachable_and_not_cached_fails_fast(hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    _publish(hub, monkeypatch)
    hub.stop()  # the endpoint is now a closed local port
    start = time.monotonic()
    with pytest.raises(HubUnavailableError, match="could not reach the Hugging Face Hub") as info:
        create_model("tiny_pose", pretrained=True)
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert hub.endpoint in message and "set HF_HUB_OFFLINE=1" in message and "local .safetensors path" in message
    assert elapsed < 5.0, f"took {elapsed:.1f} s: huggingface_hub's retries (about 23 s) were not avoided"


@pytest.mark.parametrize(
    "reference",
    [
        "hf-hub:a/..",
        "hf-hub:a--b/c",
        "hf-hub:me/" + "x" * 97,
        "hf-hub:me/tiny@../../x",
        "hf-hub:me/tiny@refs/../../x",
        "hf-hub:me/tiny@.hidden",
        "hf-hub:me/tiny@with space",
        "hf-hub:me/tiny@",
        "hf-hub:me/tiny@" + "v" * 256,
    ],
)
def test_malformed_hub_references_are_refused_before_any_request(
    hub: LocalHub, monkeypatch: pytest.MonkeyPatch, reference: str
) -> None:
    register_tiny(monkeypatch)
    tiny_pose().push_to_hub("me/tiny")
    before = len(hub.requests)
    with pytest.raises(InvalidInputError, match="not a valid Hub"):
        create_model("tiny_pose", pretrained=reference)
    with pytest.raises(InvalidInputError, match="not a valid Hub"):
        PoseModel.from_pretrained(reference)
    assert len(hub.requests) == before
    assert not (Path(hf_constants.HF_HUB_CACHE) / "models--me--tiny").exists()


def test_revision_argument_is_validated_too(hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    register_tiny(monkeypatch)
    tiny_pose().push_to_hub("me/tiny")
    before = len(hub.requests)
    with pytest.raises(InvalidInputError, match=r"'\.\./x' is not a valid Hub revision"):
        PoseModel.from_pretrained("me/tiny", revision="../x")
    assert len(hub.requests) == before


def test_unpinned_reference_logs_and_records_the_resolved_commit(
    hub: LocalHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    register_tiny(monkeypatch)
    torch.manual_seed(0)
    first = tiny_pose().push_to_hub("me/tiny").oid
    torch.manual_seed(1)
    second = tiny_pose().push_to_hub("me/tiny").oid
    with caplog.at_level(logging.INFO, logger="posecommon.hub"):
        model = PoseModel.from_pretrained("hf-hub:me/tiny")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"resolved to commit {second}" in m and f"hf-hub:me/tiny@{second}" in m for m in warnings), warnings
    report = model.pretrained_report
    assert (report.repo_id, report.revision, report.commit) == ("me/tiny", None, second)
    saved = model.save_pretrained(tmp_path / "copy")
    assert json.loads((saved / "config.json").read_text())["source"] == {
        "repo_id": "me/tiny",
        "revision": None,
        "commit": second,
    }
    assert f"hf-hub:me/tiny@{second}" in (saved / "README.md").read_text()
    assert PoseModel.from_pretrained(saved).config == model.config  # the recorded source validates on reload

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="posecommon.hub"):
        pinned = create_model("tiny_pose", pretrained=f"hf-hub:me/tiny@{first}")
    assert pinned.pretrained_report.commit == first
    assert not [r for r in caplog.records if "resolved to commit" in r.getMessage()]  # pinned: nothing to say


def test_config_json_cannot_pass_pretrained_to_the_entrypoint(
    hub: LocalHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    register_tiny(monkeypatch)
    tiny_pose().push_to_hub("me/tiny")
    run = tiny_pose().save_pretrained(tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["config"]["pretrained"] = "hf-hub:me/tiny"
    (run / "config.json").write_text(json.dumps(config))
    before = len(hub.requests)
    with pytest.raises(ConfigError, match=r"'config\.pretrained' is not a field"):
        PoseModel.from_pretrained(run)
    assert len(hub.requests) == before  # the entry never reached the entrypoint, so nothing was downloaded


def test_hub_unreachable_but_cached_branch(hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    register_tiny(monkeypatch)
    torch.manual_seed(3)
    model = tiny_pose()
    model.push_to_hub("me/tiny")
    create_model("tiny_pose", pretrained="hf-hub:me/tiny")
    hub.stop()
    _assert_state(create_model("tiny_pose", pretrained="hf-hub:me/tiny"), model.state_dict())


def test_server_returning_a_corrupted_file(hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    _, state = _publish(hub, monkeypatch)
    data = save(state)
    sha = hashlib.sha256(data).hexdigest()
    hub.corrupt(sha, bytes(b ^ 0xFF if i == len(data) - 3 else b for i, b in enumerate(data)))  # same size
    with pytest.raises(ChecksumError, match=f"expected {sha} but the file has") as info:
        create_model("tiny_pose", pretrained=True)
    message = str(info.value)
    cached = next((Path(hf_constants.HF_HUB_CACHE) / "models--posezoo-test--tiny-pose").glob("snapshots/*/*"))
    blob = cached.resolve()
    assert str(cached) in message and str(blob) in message
    # what the message says to do: delete both, then load again (the server is fixed meanwhile)
    hub.corrupt(sha, None)
    cached.unlink()
    blob.unlink()
    _assert_state(create_model("tiny_pose", pretrained=True), state)


def test_unknown_repo_revision_and_file(hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    register_tiny(monkeypatch)
    tiny_pose().push_to_hub("me/tiny")
    with pytest.raises(WeightsNotFoundError, match="does not exist or is private"):
        create_model("tiny_pose", pretrained="hf-hub:me/missing")
    with pytest.raises(WeightsNotFoundError, match="revision 'v9' does not exist"):
        create_model("tiny_pose", pretrained="hf-hub:me/tiny@v9")
    hub.add_commit("me/bare", {"weights.safetensors": b"x"})
    with pytest.raises(WeightsNotFoundError, match=r"has no file 'config\.json'"):
        PoseModel.from_pretrained("hf-hub:me/bare")


def test_registry_weights_of_another_num_joints(hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    data, _ = _weights(0, num_joints=5)
    commit = hub.add_commit(REPO, {"k5.safetensors": data})
    spec = WeightSpec("k5", REPO, commit, "k5.safetensors", hashlib.sha256(data).hexdigest(), config={"num_joints": 5})
    register_tiny(monkeypatch, weights=(spec,))
    with pytest.raises(IncompatibleWeightsError, match=r"head\.weight: file \(5, 8, 1, 1\).*pass num_joints=5"):
        create_model("tiny_pose", pretrained="k5")
    assert create_model("tiny_pose", pretrained="k5", num_joints=5).pretrained_report.skipped == ()


def test_push_to_hub_and_from_pretrained(hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    register_tiny(monkeypatch)
    torch.manual_seed(0)
    model = tiny_pose(num_joints=4)
    commit = model.push_to_hub("me/tiny4", training_data="synthetic", metrics={"ap": 0.5}).oid
    files = hub.files("me/tiny4", commit)
    assert sorted(files) == [".gitattributes", "README.md", "config.json", "model.safetensors"]
    assert json.loads(files["config.json"])["config"] == {"num_joints": 4, "width": 8}
    assert "## Metrics" in files["README.md"].decode()
    loaded = PoseModel.from_pretrained(f"hf-hub:me/tiny4@{commit}")
    assert isinstance(loaded, TinyPose) and loaded.config.num_joints == 4
    images = torch.randn(2, 3, 32, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(images), model.eval()(images), rtol=0, atol=0)


def test_official_transpose_checkpoint_by_url_and_path(hub: LocalHub, tmp_path: Path) -> None:
    from tests.test_vttranspose_convert import random_official_state_dict

    official = random_official_state_dict(seed=5)
    buffer = io.BytesIO()
    torch.save(official, buffer)
    filename = "tp_h_32_256x192_enc4_d64_h128_mh1.pth"
    hub.add_commit("yangsenius/transpose-mirror", {filename: buffer.getvalue()})
    url = f"{hub.endpoint}/yangsenius/transpose-mirror/resolve/main/{filename}"

    model, report = convert_official_transpose(url, tmp_path / "converted")
    assert report.complete
    assert sorted(p.name for p in (tmp_path / "converted").iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    loaded = PoseModel.from_pretrained(tmp_path / "converted")
    assert loaded.model_name == "transpose_h_s"
    loaded_state = loaded.state_dict()
    assert set(loaded_state) == set(official)
    for key, value in official.items():
        torch.testing.assert_close(loaded_state[key], value.to(loaded_state[key].dtype), rtol=0, atol=0)
    assert "TransPose" in (tmp_path / "converted" / "README.md").read_text()

    local = tmp_path / filename
    local.write_bytes(buffer.getvalue())
    model_from_path, _ = convert_official_transpose(local)
    from_path = model_from_path.state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(from_path[key], value, rtol=0, atol=0)
