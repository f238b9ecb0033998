"""posecommon.hub.restricted_pickle: torch.save files read as data, every size checked, nothing imported or run."""

from __future__ import annotations

import pickle
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from posecommon.errors import IncompatibleWeightsError, UnsafeWeightsError
from posecommon.hub.restricted_pickle import InertObject, class_path, module_tree, read_torch_checkpoint


def _archive(path: Path, data_pkl: bytes, storages: dict[str, bytes] | None = None, compress: bool = False) -> Path:
    """A zip in torch.save's layout: ``archive/data.pkl`` and ``archive/data/<key>``."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", "little")
        for key, raw in (storages or {}).items():
            zf.writestr(f"archive/data/{key}", raw)
    return path


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tensor_pickle(offset: int, size: tuple[int, ...], stride: tuple[int, ...], numel: int) -> bytes:
    """Protocol-2 pickle of ``_rebuild_tensor_v2(storage('0', float32, numel), offset, size, stride, False, {})``."""

    def tup(values: tuple[int, ...]) -> bytes:
        return b"(" + b"".join(b"J" + v.to_bytes(4, "little", signed=True) for v in values) + b"t"

    pid = b"(X\x07\x00\x00\x00storage" + _global("torch", "FloatStorage") + b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpu"
    pid += b"J" + numel.to_bytes(4, "little") + b"tQ"
    body = _global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + b"J" + offset.to_bytes(4, "little", signed=True)
    body += tup(size) + tup(stride) + b"\x89}tR."
    return b"\x80\x02" + body


def test_torch_save_round_trip_of_views_dtypes_and_shared_storage(tmp_path) -> None:
    base = torch.arange(24, dtype=torch.float32).view(4, 6)
    values = {
        "view": base[1:, ::2],  # offset 6, strides (6, 2)
        "same_storage": base,
        "half": torch.randn(3, 5).half(),
        "long": torch.tensor([1, -2, 3]),
        "bool": torch.tensor([True, False]),
        "bf16": torch.randn(4).bfloat16(),
        "empty": torch.zeros(0, 3),
        "nested": OrderedDict(a=[torch.ones(2), (torch.zeros(1), "text", 3.5)]),
        "param": nn.Parameter(torch.randn(2, 2)),
    }
    path = tmp_path / "plain.pt"
    torch.save(values, path)
    root = read_torch_checkpoint(path).root
    for key in ("view", "same_storage", "half", "long", "bool", "bf16", "empty", "param"):
        assert root[key].dtype == values[key].dtype and torch.equal(root[key], values[key].detach()), key
    assert type(root["nested"]) is OrderedDict and torch.equal(root["nested"]["a"][0], torch.ones(2))
    assert root["nested"]["a"][1][1:] == ("text", 3.5)


def test_module_tree_equals_state_dict_of_a_saved_module(tmp_path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.ReLU(), nn.Linear(4, 2)))
    net[1].register_buffer("scratch", torch.ones(1), persistent=False)
    path = tmp_path / "module.pt"
    torch.save({"net": net}, path)
    tree = module_tree(read_torch_checkpoint(path).root["net"])
    expected = net.state_dict()
    assert list(tree.tensors) == list(expected)  # same keys in state_dict order, non-persistent buffer left out
    assert all(torch.equal(tree.tensors[k], v) for k, v in expected.items())
    assert tree.classes["1"] == "torch.nn.modules.batchnorm.BatchNorm2d" and tree.attributes["1"]["eps"] == 1e-5


def test_named_modules_are_never_imported(tmp_path, monkeypatch) -> None:
    # A module whose import would create a file: the pickle names it, the reader must not import it.
    sentinel = tmp_path / "imported"
    (tmp_path / "trap_module.py").write_text(f"open({str(sentinel)!r}, 'w').close()\nclass Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = b"\x80\x02" + _global("trap_module", "Thing") + b")\x81}X\x01\x00\x00\x00aK\x01sb."
    root = read_torch_checkpoint(_archive(tmp_path / "t.pt", data)).root
    assert isinstance(root, InertObject) and class_path(root) == "trap_module.Thing" and root.state == {"a": 1}
    assert not sentinel.exists() and "trap_module" not in sys.modules


@pytest.mark.parametrize(
    ("module", "name"), [("posix", "system"), ("builtins", "eval"), ("builtins", "exec"), ("subprocess", "call")]
)
def test_calls_are_recorded_never_made(tmp_path, module, name) -> None:
    sentinel = tmp_path / "ran"
    code = f"open({str(sentinel)!r}, 'w')" if name in ("eval", "exec") else f"touch {sentinel}"
    arg = code.encode()
    data = b"\x80\x02" + _global(module, name) + b"X" + len(arg).to_bytes(4, "little") + arg + b"\x85R."
    path = _archive(tmp_path / "call.pt", data)
    root = read_torch_checkpoint(path).root
    assert class_path(root) == f"{module}.{name}" and root.args == (code,)
    assert not sentinel.exists()
    with pytest.raises(UnsafeWeightsError, match=f"names the global {module}.{name}"):
        read_torch_checkpoint(path, allowed_globals=lambda m, n: False)
    # Positive control: the plain unpickler would have run it.
    if name == "system":
        pickle.loads(data)
        assert sentinel.exists()


def test_a_plain_pickle_file_is_refused_unread(tmp_path) -> None:
    sentinel = tmp_path / "ran"
    arg = f"touch {sentinel}".encode()
    path = tmp_path / "legacy.pt"
    path.write_bytes(b"\x80\x02" + _global("posix", "system") + b"X" + len(arg).to_bytes(4, "little") + arg + b"\x85R.")
    with pytest.raises(IncompatibleWeightsError, match=r"legacy pre-1.6 torch file"):
        read_torch_checkpoint(path)
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("offset", "size", "stride", "numel", "match"),
    [
        (0, (4,), (1,), 4, None),  # fits: the control
        (1, (4,), (1,), 4, "does not fit its storage"),
        (0, (3, 3), (3, 1), 4, "does not fit its storage"),
        (0, (10**6, 10**6), (0, 0), 4, "does not fit its storage"),  # 10^12 elements from 4: never allocated
        (0, (4,), (-1,), 4, "negative or non-integer"),
        (-2, (2,), (1,), 4, "negative or non-integer"),
        (0, (4,), (1,), 5, "holds 16 bytes"),  # the record claims more than the entry holds
    ],
)
def test_tensor_records_are_checked_before_use(tmp_path, offset, size, stride, numel, match) -> None:
    path = _archive(tmp_path / "t.pt", _tensor_pickle(offset, size, stride, numel), {"0": bytes(16)})
    if match is None:
        assert torch.equal(read_torch_checkpoint(path).root, torch.zeros(4))
    else:
        with pytest.raises(IncompatibleWeightsError, match=match):
            read_torch_checkpoint(path)


def test_archive_limits(tmp_path) -> None:
    good = _tensor_pickle(0, (4,), (1,), 4)
    with pytest.raises(IncompatibleWeightsError, match=r"compressed zip entries"):
        read_torch_checkpoint(_archive(tmp_path / "c.pt", good, {"0": bytes(16)}, compress=True))
    with pytest.raises(IncompatibleWeightsError, match=r"over the 100-byte limit"):
        read_torch_checkpoint(_archive(tmp_path / "big.pt", good, {"0": bytes(16)}), max_file_bytes=100)
    with pytest.raises(IncompatibleWeightsError, match=r"storage 0 is missing"):
        read_torch_checkpoint(_archive(tmp_path / "m.pt", good))
    with pytest.raises(IncompatibleWeightsError, match=r"no single <name>/data.pkl"):
        with zipfile.ZipFile(tmp_path / "n.pt", "w") as zf:
            zf.writestr("archive/other.pkl", good)
        read_torch_checkpoint(tmp_path / "n.pt")
    with pytest.raises(IncompatibleWeightsError, match=r"malformed or truncated checkpoint pickle"):
        read_torch_checkpoint(_archive(tmp_path / "t.pt", good[:-6], {"0": bytes(16)}))


def test_dict_attributes_set_by_the_pickle_are_not_trusted(tmp_path) -> None:
    # BUILD on an OrderedDict can set instance attributes such as "items"; the tree walk reads through dict itself.
    net = nn.Linear(2, 1)
    path = tmp_path / "l.pt"
    torch.save(net, path)
    root = read_torch_checkpoint(path).root
    params = OrderedDict(root.state["_parameters"])  # torch 1.x pickled OrderedDicts, which take attributes
    params.items = "not callable"  # what a crafted BUILD can do to an OrderedDict
    root.state["_parameters"] = params
    tree = module_tree(root)
    assert set(tree.tensors) == {"weight", "bias"}


def test_cyclic_module_tree_is_an_error_not_a_hang(tmp_path) -> None:
    outer = nn.Sequential(nn.Linear(1, 1))
    path = tmp_path / "cycle.pt"
    torch.save(outer, path)
    root = read_torch_checkpoint(path).root
    root.state["_modules"]["self"] = root
    with pytest.raises(IncompatibleWeightsError, match=r"deeper or larger"):
        module_tree(root)
