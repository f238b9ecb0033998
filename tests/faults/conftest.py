"""Fixtures of the fault catalogue: tiny saved models, sample images, the misbehaving HTTP server, a workspace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

from ._harness import Snapshot, Workspace, make_workspace
from .http_faults import FaultServer

DATA = Path(__file__).resolve().parents[1] / "data"
PHOTO = DATA / "astronaut.jpg"


@pytest.fixture(scope="session", autouse=True)
def _quiet_and_single_threaded() -> Iterator[None]:
    """No progress bars on stderr (the catalogue counts stderr lines) and one torch thread."""
    disable_progress_bars()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    enable_progress_bars()


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``save_pretrained`` directories of a tiny DRSI-Net (detector) and a tiny VTTransPose (top-down)."""
    from drsinet import drsi_net_s
    from vttranspose import vttranspose_h_s

    root = tmp_path_factory.mktemp("fault-models")
    torch.manual_seed(0)
    detector = drsi_net_s(input_size=(64, 64), width_multiple=0.125, depth_multiple=0.1)
    pose = vttranspose_h_s(input_size=(32, 24))
    return {
        "detector": detector.save_pretrained(root / "detector"),
        "pose": pose.save_pretrained(root / "pose"),
    }


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


@pytest.fixture
def snapshot_of() -> type[Snapshot]:
    return Snapshot


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    fault_server = FaultServer().start()
    yield fault_server
    fault_server.stop()
