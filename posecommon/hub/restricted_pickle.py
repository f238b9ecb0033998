"""Read the tensors of a ``torch.save`` checkpoint without importing or calling anything the file names.

A ``torch.save`` file is a zip archive: ``<name>/data.pkl`` (a pickle of the saved object) and one entry
``<name>/data/<key>`` per storage, holding its raw little-endian bytes. ``torch.load`` unpickles ``data.pkl`` with
Python's unpickler, which imports every module the pickle names and calls what it is told to call, so a checkpoint
can run any code when loaded (``weights_only=True`` refuses such files instead, including every checkpoint that
pickles a whole model, as YOLO-Pose's do). This module reads such files as data:

- :class:`RestrictedUnpickler` answers every global the pickle names (``find_class``) with an inert placeholder
  type: a subclass of :class:`InertObject` recording the module and name, created here and never looked up
  anywhere. Calling it (``REDUCE``), instantiating it (``NEWOBJ``, ``INST``, ``OBJ``) or setting its state
  (``BUILD``) stores the arguments and state in the record and does nothing else. Only three names are answered
  otherwise: ``collections.OrderedDict`` (the real class: it only builds a dict from the pairs it is given), and
  ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` (``_rebuild_parameter_with_state``), which are
  answered with *this module's* functions: they check the storage record, offset, sizes and strides and build the
  tensor from the storage bytes themselves; torch's functions of those names are never called.
- ``persistent_load`` turns each storage reference ``('storage', torch.<Type>Storage, key, location, numel)``
  into a record; the storage type's name gives the dtype (a fixed table; the type itself is a placeholder too).
- ``allowed_globals`` lets the caller refuse a file as soon as it names a global no checkpoint of the expected
  kind holds (``posix.system``, ``builtins.eval``, ...): :class:`~posecommon.errors.UnsafeWeightsError`, before
  anything else is read. Nothing would run anyway; the refusal says the file is not what it claims to be.

Limits, checked before anything is allocated from a size the file states: the file (``max_file_bytes``, default
2 GiB), ``data.pkl`` (64 MiB), the number of zip entries, compressed entries (``torch.save`` stores uncompressed,
so any compression is refused, which also rules out zip bombs), entries whose declared sizes add up to more than
the file, tensors with more than 16 dimensions, negative or non-integer sizes, strides and offsets, and views that
reach outside their storage or hold more elements than it. Big-endian archives are refused.

:func:`module_tree` walks a pickled ``nn.Module`` record (its ``_parameters``, ``_buffers`` and ``_modules``) into a
flat ``state_dict``-style mapping with torch's key names, iteratively bounded in depth and size.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..errors import IncompatibleWeightsError, UnsafeWeightsError, WeightsNotFoundError

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_PICKLE_BYTES",
    "InertObject",
    "ModuleTree",
    "RestrictedCheckpoint",
    "RestrictedUnpickler",
    "module_tree",
    "read_torch_checkpoint",
]

MAX_FILE_BYTES = 2 << 30
"""Largest checkpoint read by default (2 GiB; YOLO-Pose l6 with optimizer and EMA is about 0.7 GB)."""
MAX_PICKLE_BYTES = 64 << 20
"""Largest ``data.pkl`` read (a whole pickled YOLO-Pose model is well under 1 MiB)."""
_MAX_ENTRIES = 100_000
_MAX_DIMS = 16
_MAX_DEPTH = 64
_MAX_MODULES = 100_000
_STORAGE_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "HalfStorage": torch.float16,
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "ByteStorage": torch.uint8,
    "CharStorage": torch.int8,
    "ShortStorage": torch.int16,
    "IntStorage": torch.int32,
    "LongStorage": torch.int64,
    "BoolStorage": torch.bool,
}
"""``torch.<name>`` storage types of ``torch.save``'s persistent ids and their dtypes."""


class InertObject:
    """A record of an object the pickle asked for: which global it named, the arguments and the state it gave.

    Placeholder types are made per global by :class:`RestrictedUnpickler` (subclasses with ``pickled_module`` and
    ``pickled_name`` set). Creating, calling or ``BUILD``-ing one only stores what the pickle passed:
    ``args``/``kwargs`` (from ``REDUCE``, ``NEWOBJ``, ``NEWOBJ_EX``, ``INST``, ``OBJ``), ``state`` (``BUILD``),
    ``items`` (``APPEND(S)``) and ``entries`` (``SETITEM(S)``). It has no other behaviour: no ``__call__`` on
    instances, no ``__iter__``, no ``__getattr__``.
    """

    pickled_module: ClassVar[str] = ""
    pickled_name: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        obj = object.__new__(cls)
        object.__setattr__(obj, "args", args)
        object.__setattr__(obj, "kwargs", kwargs)
        object.__setattr__(obj, "state", None)
        object.__setattr__(obj, "items", [])
        object.__setattr__(obj, "entries", [])
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "state", state)

    def append(self, item: Any) -> None:
        self.items.append(item)

    def extend(self, items: list[Any]) -> None:
        self.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.entries.append((key, value))

    @classmethod
    def class_path(cls) -> str:
        """``"module.name"`` of the global this record stands for."""
        return f"{cls.pickled_module}.{cls.pickled_name}"

    def __repr__(self) -> str:
        return f"<inert {self.class_path()}>"


def class_path(value: Any) -> str:
    """``"module.name"`` the pickle named for an :class:`InertObject` (or the Python type's name otherwise)."""
    if isinstance(value, InertObject):
        return type(value).class_path()
    return type(value).__name__


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass(frozen=True)
class _StorageRecord:
    key: str
    dtype: torch.dtype
    numel: int


def _is_int(value: Any) -> bool:
    return type(value) is int


class _Archive:
    """The storages of one checkpoint zip, read on demand with every size checked against the archive."""

    def __init__(self, zf: zipfile.ZipFile, prefix: str, what: str) -> None:
        self.zf = zf
        self.prefix = prefix
        self.what = what
        self.bases: dict[str, torch.Tensor] = {}

    def base(self, record: _StorageRecord) -> torch.Tensor:
        if record.key in self.bases:
            base = self.bases[record.key]
            if base.dtype != record.dtype or base.numel() != record.numel:
                raise IncompatibleWeightsError(f"{self.what}: storage {record.key} is named with two types or sizes")
            return base
        name = f"{self.prefix}data/{record.key}"
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise IncompatibleWeightsError(f"{self.what}: storage {record.key} is missing (truncated file?)") from None
        itemsize = torch.empty((), dtype=record.dtype).element_size()
        if info.file_size != record.numel * itemsize:
            raise IncompatibleWeightsError(
                f"{self.what}: storage {record.key} holds {info.file_size} bytes, its record says "
                f"{record.numel} x {itemsize}"
            )
        data = bytearray(self.zf.read(name)) if info.file_size else bytearray()
        base = torch.frombuffer(data, dtype=record.dtype) if data else torch.empty(0, dtype=record.dtype)
        self.bases[record.key] = base
        return base


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickle ``data.pkl`` of a ``torch.save`` archive as data (see the module docstring).

    Args:
        file: The pickle bytes as a binary file.
        archive: The storages' archive (``None``: a storage reference is an error).
        allowed_globals: ``(module, name) -> bool``; a global it rejects stops reading with
            :class:`~posecommon.errors.UnsafeWeightsError`. ``None`` accepts every name (as inert records).
        what: Description of the file for messages.
    """

    _REAL: ClassVar[dict[tuple[str, str], Any]] = {}

    def __init__(
        self,
        file: io.BufferedIOBase,
        archive: _Archive | None,
        allowed_globals: Callable[[str, str], bool] | None,
        what: str,
    ) -> None:
        super().__init__(file)
        self._archive = archive
        self._allowed = allowed_globals
        self._what = what
        self._placeholders: dict[tuple[str, str], type[InertObject]] = {}
        self.globals_named: set[tuple[str, str]] = set()

    def find_class(self, module: str, name: str) -> Any:
        key = (str(module), str(name))
        self.globals_named.add(key)
        if self._allowed is not None and not self._allowed(*key):
            raise UnsafeWeightsError(
                f"{self._what} names the global {key[0]}.{key[1]}, which no checkpoint of this kind holds; "
                "refused (posezoo imported and called nothing in it); convert only files from the official source"
            )
        if key == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if key == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if key in (("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state")):
            return _rebuild_parameter
        if key[0] == "torch" and key[1] in _STORAGE_DTYPES:
            return _StorageType(key[1])
        placeholder = self._placeholders.get(key)
        if placeholder is None:
            placeholder = type("InertObject", (InertObject,), {"pickled_module": key[0], "pickled_name": key[1]})
            self._placeholders[key] = placeholder
        return placeholder

    def persistent_load(self, pid: Any) -> _StorageRecord:
        if type(pid) is not tuple or len(pid) != 5 or pid[0] != "storage":
            raise IncompatibleWeightsError(f"{self._what}: unexpected persistent reference (not a torch storage)")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise IncompatibleWeightsError(f"{self._what}: a storage of an unknown type ({class_path(storage_type)})")
        if type(key) is not str or not _STORAGE_KEY.fullmatch(key) or not _is_int(numel) or numel < 0:
            raise IncompatibleWeightsError(f"{self._what}: malformed storage reference")
        if self._archive is None:
            raise IncompatibleWeightsError(f"{self._what}: a storage reference outside a torch.save archive")
        return _StorageRecord(key, _STORAGE_DTYPES[storage_type.name], numel)

    def _rebuild_tensor(
        self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False, *_: Any
    ) -> torch.Tensor:
        """``torch._utils._rebuild_tensor_v2``'s job, done here with every value checked (no torch call by name)."""
        what = self._what
        if not isinstance(storage, _StorageRecord):
            raise IncompatibleWeightsError(f"{what}: a tensor without a storage")
        if type(size) is not tuple or type(stride) is not tuple or len(size) != len(stride) or len(size) > _MAX_DIMS:
            raise IncompatibleWeightsError(f"{what}: a tensor with malformed sizes or strides")
        values = (offset, *size, *stride)
        if not all(_is_int(v) and v >= 0 for v in values):
            raise IncompatibleWeightsError(f"{what}: a tensor with negative or non-integer sizes, strides or offset")
        numel = 1
        for s in size:
            numel *= s
        if numel:
            last = offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True))
            if last >= storage.numel or numel > storage.numel:
                raise IncompatibleWeightsError(
                    f"{what}: a tensor of size {size} (stride {stride}, offset {offset}) does not fit its storage "
                    f"of {storage.numel} elements"
                )
        assert self._archive is not None  # checked in persistent_load
        base = self._archive.base(storage)
        if not numel:
            return torch.empty(size, dtype=storage.dtype)
        return torch.as_strided(base, size, stride, offset).clone()


def _rebuild_parameter(data: Any, *_: Any) -> torch.Tensor:
    """``torch._utils._rebuild_parameter``'s job: the parameter's data, as a plain tensor."""
    if not isinstance(data, torch.Tensor):
        raise IncompatibleWeightsError("a parameter without tensor data")
    return data


@dataclass(frozen=True)
class RestrictedCheckpoint:
    """What :func:`read_torch_checkpoint` read.

    Args:
        root: The unpickled object: dicts, lists, tuples, numbers, strings, bytes, tensors and
            :class:`InertObject` records.
        globals_named: Every ``(module, name)`` global the pickle named, none of them imported.
        sha256: Hex sha256 of the file.
        size_bytes: Size of the file.
    """

    root: Any
    globals_named: frozenset[tuple[str, str]]
    sha256: str
    size_bytes: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checked_archive(zf: zipfile.ZipFile, size: int, what: str) -> str:
    """Check the archive's entries; return the prefix (``"<name>/"``) of ``data.pkl``."""
    infos = zf.infolist()
    if len(infos) > _MAX_ENTRIES:
        raise IncompatibleWeightsError(f"{what}: {len(infos)} zip entries, more than a torch checkpoint has")
    if any(info.compress_type != zipfile.ZIP_STORED for info in infos):
        raise IncompatibleWeightsError(f"{what}: compressed zip entries (torch.save stores them uncompressed)")
    if sum(info.file_size for info in infos) > size:
        raise IncompatibleWeightsError(f"{what}: zip entries declare more bytes than the file has")
    pickles = [info for info in infos if info.filename.endswith("/data.pkl") and info.filename.count("/") == 1]
    if len(pickles) != 1:
        raise IncompatibleWeightsError(f"{what}: not a torch.save archive (no single <name>/data.pkl)")
    if pickles[0].file_size > MAX_PICKLE_BYTES:
        raise IncompatibleWeightsError(f"{what}: data.pkl is {pickles[0].file_size} bytes, over {MAX_PICKLE_BYTES}")
    prefix = pickles[0].filename[: -len("data.pkl")]
    names = {info.filename for info in infos}
    if f"{prefix}byteorder" in names and zf.read(f"{prefix}byteorder").strip() != b"little":
        raise IncompatibleWeightsError(f"{what}: a big-endian checkpoint; posezoo reads little-endian ones only")
    return prefix


def read_torch_checkpoint(
    path: str | Path,
    *,
    allowed_globals: Callable[[str, str], bool] | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> RestrictedCheckpoint:
    """Read a ``torch.save`` zip checkpoint as data: tensors rebuilt here, every other global an inert record.

    Args:
        path: The checkpoint file.
        allowed_globals: ``(module, name) -> bool`` for each global the pickle names; ``False`` refuses the file.
        max_file_bytes: Refuse larger files.

    Returns:
        The :class:`RestrictedCheckpoint`.

    Raises:
        WeightsNotFoundError: the file does not exist.
        UnsafeWeightsError: the pickle names a global ``allowed_globals`` rejects (nothing was imported or
            called).
        IncompatibleWeightsError: the file is too large, truncated, not a ``torch.save`` zip archive (the legacy
            pre-1.6 format included), or its pickle or storages are malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"checkpoint not found: {path}")
    what = str(path)
    size = path.stat().st_size
    if size > max_file_bytes:
        raise IncompatibleWeightsError(f"{what} is {size} bytes, over the {max_file_bytes}-byte limit; not converted")
    digest = _sha256(path)
    try:
        with zipfile.ZipFile(path) as zf:
            prefix = _checked_archive(zf, size, what)
            archive = _Archive(zf, prefix, what)
            data = zf.read(f"{prefix}data.pkl")
            unpickler = RestrictedUnpickler(io.BytesIO(data), archive, allowed_globals, what)
            root = unpickler.load()
    except zipfile.BadZipFile as err:
        with path.open("rb") as handle:
            head = handle.read(2)
        hint = " (a legacy pre-1.6 torch file; posezoo reads only the zip format)" if head == b"\x80\x02" else ""
        raise IncompatibleWeightsError(
            f"{what} is not a readable torch.save zip archive{hint}: {err}; if it was downloaded, download it again"
        ) from None
    except (UnsafeWeightsError, IncompatibleWeightsError):
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        RecursionError,
        OverflowError,
        RuntimeError,
        zipfile.LargeZipFile,
        OSError,
    ) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise IncompatibleWeightsError(
            f"{what}: malformed or truncated checkpoint pickle ({first}); if it was downloaded, download it again"
        ) from None
    return RestrictedCheckpoint(root, frozenset(unpickler.globals_named), digest, size)


@dataclass(frozen=True)
class ModuleTree:
    """A pickled ``nn.Module`` tree flattened as ``state_dict`` would.

    Args:
        tensors: Parameters and persistent buffers under torch's key names (``"model.0.conv.weight"``), in
            ``state_dict`` order.
        classes: Class path the pickle named for each module prefix (``""`` for the root).
        attributes: For each module prefix, its plain attributes (numbers, strings, booleans, None, and lists,
            tuples and dicts of those), e.g. a BatchNorm's ``eps``.
        tensor_attributes: Tensors held as plain attributes (neither parameters nor buffers), e.g. a YOLO
            ``Detect``'s ``stride``, under ``"prefix.name"``.
        others: ``"prefix.name"`` of the remaining attributes (lists of tensors, records), with their type, for the
            report.
    """

    tensors: dict[str, torch.Tensor]
    classes: dict[str, str]
    attributes: dict[str, dict[str, Any]]
    tensor_attributes: dict[str, torch.Tensor] = field(default_factory=dict)
    others: dict[str, str] = field(default_factory=dict)


_MODULE_BOOKKEEPING = re.compile(
    r"_.*hooks.*|_is_full_backward_hook|_non_persistent_buffers_set|_(parameters|buffers|modules)"
)


def _plain(value: Any, depth: int = 0) -> bool:
    if value is None or type(value) in (bool, int, float, str):
        return True
    if depth > 8:
        return False
    if type(value) in (list, tuple):
        return len(value) <= 10_000 and all(_plain(v, depth + 1) for v in value)
    if type(value) is dict:
        return len(value) <= 10_000 and all(type(k) is str and _plain(v, depth + 1) for k, v in dict.items(value))
    return False


def _mapping(value: Any) -> dict[Any, Any] | None:
    """A dict or OrderedDict's items as a plain dict (read through ``dict`` itself, ignoring instance attributes)."""
    if type(value) in (dict, collections.OrderedDict):
        return dict(dict.items(value))
    return None


def _non_persistent(state: dict[Any, Any]) -> set[str]:
    record = state.get("_non_persistent_buffers_set")
    if isinstance(record, InertObject) and record.args and type(record.args[0]) is list:
        return {name for name in record.args[0] if type(name) is str}
    return set()


def _walk(root: InertObject, what: str) -> Iterator[tuple[str, InertObject, dict[Any, Any]]]:
    """Pre-order over the module tree, as ``state_dict`` visits it. A module held twice (YOLO-Pose's SPP repeats one
    ``MaxPool2d``) is visited under each name; a cycle ends at the depth limit, a blow-up at the size limit."""
    stack: list[tuple[str, InertObject, int]] = [("", root, 0)]
    visited = 0
    while stack:
        prefix, node, depth = stack.pop()
        visited += 1
        if depth > _MAX_DEPTH or visited > _MAX_MODULES:
            raise IncompatibleWeightsError(f"{what}: the module tree is deeper or larger than any model's (a cycle?)")
        state = _mapping(node.state)
        if state is None:
            raise IncompatibleWeightsError(f"{what}: module {prefix or '(root)'} ({class_path(node)}) has no state")
        yield prefix, node, state
        children = _mapping(state.get("_modules")) or {}
        for name, child in reversed(list(children.items())):
            if child is None:
                continue
            if type(name) is not str or not isinstance(child, InertObject):
                raise IncompatibleWeightsError(f"{what}: module {prefix or '(root)'} has a malformed submodule entry")
            stack.append((f"{prefix}{name}.", child, depth + 1))


def module_tree(root: Any, what: str = "checkpoint") -> ModuleTree:
    """Flatten a pickled ``nn.Module`` record (see :class:`ModuleTree`).

    Args:
        root: An :class:`InertObject` whose state is a module's ``__dict__``.
        what: Description for messages.

    Raises:
        IncompatibleWeightsError: ``root`` is not a pickled module, or the tree is malformed, cyclic, deeper than
            64 or larger than 100 000 modules.
    """
    if not isinstance(root, InertObject):
        raise IncompatibleWeightsError(f"{what}: expected a pickled model, got {class_path(root)}")
    tensors: dict[str, torch.Tensor] = {}
    classes: dict[str, str] = {}
    attributes: dict[str, dict[str, Any]] = {}
    tensor_attributes: dict[str, torch.Tensor] = {}
    others: dict[str, str] = {}
    for prefix, node, state in _walk(root, what):
        key = prefix.rstrip(".")
        classes[key] = class_path(node)
        skip = _non_persistent(state)
        for group in ("_parameters", "_buffers"):
            for name, value in (_mapping(state.get(group)) or {}).items():
                if value is None or name in skip:
                    continue
                if type(name) is not str or not isinstance(value, torch.Tensor):
                    raise IncompatibleWeightsError(f"{what}: {prefix}{name} is not a tensor ({class_path(value)})")
                tensors[f"{prefix}{name}"] = value
        plain: dict[str, Any] = {}
        for name, value in state.items():
            if type(name) is not str or _MODULE_BOOKKEEPING.fullmatch(name):
                continue
            if _plain(value):
                plain[name] = value
            elif isinstance(value, torch.Tensor):
                tensor_attributes[f"{prefix}{name}"] = value
            else:
                others[f"{prefix}{name}"] = class_path(value)
        attributes[key] = plain
    return ModuleTree(tensors, classes, attributes, tensor_attributes, others)
