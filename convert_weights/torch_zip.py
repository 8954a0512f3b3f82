"""PyTorch's zip checkpoint format (`torch.save` since torch 1.6), written and read without torch.

Layout of a file holding a state dict (every entry under one top-level folder, here `archive/`):

  archive/data.pkl     protocol-2 pickle of an OrderedDict {key: tensor}; each tensor is
                       REDUCE(torch._utils._rebuild_tensor_v2,
                              (storage, offset, size, stride, requires_grad=False, OrderedDict()))
                       and each storage a persistent id ('storage', torch.<Type>Storage, key, 'cpu', numel)
  archive/byteorder    'little'
  archive/data/<key>   the storage's raw bytes, little-endian, no header
  archive/version      '3\\n' (serialization format version; torch accepts 1..10)

Entries are stored uncompressed and, as torch's own writer does, each entry's data starts at a
multiple of 64 bytes (padding in a zip "extra" field with id 'FB'), so torch can memory-map it.
The pickle uses only opcodes and globals that torch's `weights_only=True` unpickler accepts.

The writer emits the torch globals by name (a pure-Python pickler with those names written as
GLOBAL opcodes), so torch is never imported. It was checked against torch's serialization and
weights-only unpickler sources and with the restricted reader below, NOT by loading the result
with a real torch (torch is not installed where this was written).

`read_torch_zip_state_dict` is the matching reader: zip + a restricted unpickler that allows only
OrderedDict, the tensor rebuild functions and storage types, with storage sizes checked against
the zip entries. It also reads state dicts saved by torch itself (CPU tensors).

`read_torch_zip_checkpoint` reads a whole training checkpoint with the same unpickler: any nesting of
dicts, lists, tuples and plain values around the tensors (optimizer state dicts), plus
`argparse.Namespace` (the official HFA-GP trainers save their command-line `args`), which becomes an
inert `TorchNamespace` record holding only plain values; nothing from the file is executed.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import sys
import zipfile
from typing import Mapping

import numpy as np

from convert_weights.unpickler import (
    STORAGE_TYPES,
    Marker,
    RestrictedUnpickler,
    SnapshotError,
    Storage,
    decode_storage,
    rebuild_parameter,
    rebuild_tensor,
    safe_functions,
    storage_type_markers,
)
from hfagp_common.cli import first_line

__all__ = ["TorchNamespace", "TorchZipError", "read_torch_zip_checkpoint", "read_torch_zip_state_dict",
           "torch_zip_bytes", "write_torch_zip_state_dict"]

FORMAT_VERSION = 3
ALIGNMENT = 64
_PAD_FIELD_ID = b"FB"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_MAX_PICKLE_BYTES = 1 << 30

# numpy dtype -> torch storage type name (the inverse of `convert_weights.unpickler.STORAGE_TYPES`).
_STORAGE_FOR_DTYPE = {
    "float32": "FloatStorage",
    "float64": "DoubleStorage",
    "float16": "HalfStorage",
    "bfloat16": "BFloat16Storage",
    "int64": "LongStorage",
    "int32": "IntStorage",
    "int16": "ShortStorage",
    "int8": "CharStorage",
    "uint8": "ByteStorage",
    "bool": "BoolStorage",
}


class TorchZipError(SnapshotError):
    """A torch zip checkpoint cannot be written or read; the message names the file and problem."""


# ---------------------------------------------------------------------------------------
# Writing.
# ---------------------------------------------------------------------------------------


class _GlobalName:
    """A module-level name that the pickler writes as a GLOBAL opcode without importing it."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle requires reduce functions to be callable
        raise TypeError(f"{self.module}.{self.name} is only a name for pickling")


_REBUILD_TENSOR_V2 = _GlobalName("torch._utils", "_rebuild_tensor_v2")
_STORAGE_GLOBALS = {name: _GlobalName("torch", name) for name in _STORAGE_FOR_DTYPE.values()}


class _StorageRef:
    __slots__ = ("storage_type", "key", "numel")

    def __init__(self, storage_type: str, key: str, numel: int):
        self.storage_type, self.key, self.numel = storage_type, key, numel


class _TensorRef:
    """Pickles like a contiguous CPU torch tensor whose data is the whole storage."""

    __slots__ = ("storage", "shape")

    def __init__(self, storage: _StorageRef, shape: tuple[int, ...]):
        self.storage, self.shape = storage, shape

    def __reduce_ex__(self, protocol):
        stride, step = [], 1
        for n in reversed(self.shape):
            stride.append(step)
            step *= n
        args = (self.storage, 0, tuple(self.shape), tuple(reversed(stride)), False, collections.OrderedDict())
        return _REBUILD_TENSOR_V2, args


class _TorchPickler(pickle._Pickler):  # the pure-Python pickler: its `save` can be extended
    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            return ("storage", _STORAGE_GLOBALS[obj.storage_type], obj.key, "cpu", obj.numel)
        return None

    def save(self, obj, save_persistent_id=True):
        if not isinstance(obj, _GlobalName):
            return super().save(obj, save_persistent_id)
        memo = self.memo.get(id(obj))
        if memo is not None:
            self.write(self.get(memo[0]))
            return None
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
        self.memoize(obj)
        return None


def _storage_bytes(array: np.ndarray) -> tuple[str, bytes]:
    dtype_name = array.dtype.name
    if dtype_name not in _STORAGE_FOR_DTYPE:
        raise TorchZipError(f"cannot store a {dtype_name} tensor; supported: {sorted(_STORAGE_FOR_DTYPE)}")
    flat = np.ascontiguousarray(array).reshape(-1)
    if dtype_name == "bfloat16":
        flat = flat.view(np.uint16)
    if flat.dtype.byteorder == ">" or (flat.dtype.byteorder == "=" and sys.byteorder == "big"):
        flat = flat.astype(flat.dtype.newbyteorder("<"))
    return _STORAGE_FOR_DTYPE[dtype_name], flat.tobytes()


def _padded_info(name: str, offset: int) -> zipfile.ZipInfo:
    """A stored ZipInfo whose data, written at file offset `offset`, starts 64-byte aligned."""
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    start = offset + 30 + len(name.encode("utf-8")) + 4  # local header + name + pad field header
    pad = -start % ALIGNMENT
    info.extra = _PAD_FIELD_ID + struct.pack("<H", pad) + b"Z" * pad
    return info


def torch_zip_bytes(state_dict: Mapping[str, np.ndarray], archive_name: str = "archive") -> bytes:
    """The bytes of `torch.save(OrderedDict(state_dict))`, tensors as contiguous CPU tensors."""
    if "/" in archive_name or not archive_name:
        raise TorchZipError(f"bad archive name {archive_name!r}")
    tensors, storages = collections.OrderedDict(), []
    for index, (key, value) in enumerate(state_dict.items()):
        if not isinstance(key, str):
            raise TorchZipError(f"state dict keys must be strings, got {key!r:.60}")
        array = np.asarray(value)
        storage_type, raw = _storage_bytes(array)
        ref = _StorageRef(storage_type, str(index), int(array.size))
        tensors[key] = _TensorRef(ref, tuple(int(n) for n in array.shape))
        storages.append((ref.key, raw))
    pkl = io.BytesIO()
    _TorchPickler(pkl, protocol=2).dump(tensors)

    buffer = io.BytesIO()
    records = [("data.pkl", pkl.getvalue()), ("byteorder", b"little")]
    records += [(f"data/{key}", raw) for key, raw in storages]
    records.append(("version", f"{FORMAT_VERSION}\n".encode()))
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, data in records:
            zf.writestr(_padded_info(f"{archive_name}/{name}", buffer.tell()), data)
    return buffer.getvalue()


def write_torch_zip_state_dict(state_dict: Mapping[str, np.ndarray], path: str | os.PathLike) -> None:
    """Writes `state_dict` (name -> numpy array) as a file `torch.load` reads (see module docstring)."""
    with open(path, "wb") as f:
        f.write(torch_zip_bytes(state_dict))
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------------------------------
# Reading.
# ---------------------------------------------------------------------------------------

_PLAIN_TYPES = (str, int, float, bool, type(None))


class TorchNamespace:
    """Inert stand-in for a pickled `argparse.Namespace`: `.values` is its attribute dict, holding only strings,
    numbers, booleans, None and (nested) lists / tuples of those; anything else is refused."""

    __slots__ = ("values",)

    def __init__(self, *args):
        if args:
            raise TorchZipError("argparse.Namespace pickled with constructor arguments is not supported")
        self.values = {}

    def __setstate__(self, state):
        def plain(value):
            if isinstance(value, _PLAIN_TYPES):
                return True
            return isinstance(value, (list, tuple)) and all(plain(v) for v in value)

        if not isinstance(state, dict) or not all(isinstance(k, str) and plain(v) for k, v in state.items()):
            raise TorchZipError("argparse.Namespace with values other than plain strings / numbers / lists")
        self.values = dict(state)

    def __getattr__(self, name):
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self):
        return f"TorchNamespace({self.values!r:.200})"


class _StateDictUnpickler(RestrictedUnpickler):
    """data.pkl of a torch zip file: OrderedDict, the tensor rebuild functions and storage types (and
    argparse.Namespace with `namespaces`); `load_storage(type, key, numel)` gives each storage."""

    def __init__(self, file, source: str, load_storage, namespaces: bool = False):
        allowed = {"collections.OrderedDict": collections.OrderedDict,
                   **safe_functions({"torch._utils._rebuild_tensor_v2": rebuild_tensor,
                                     "torch._utils._rebuild_parameter": rebuild_parameter}, source),
                   **storage_type_markers()}
        if namespaces:
            allowed["argparse.Namespace"] = TorchNamespace
        super().__init__(file, source, allowed,
                         ": a state dict file needs only collections.OrderedDict, "
                         "torch._utils._rebuild_tensor_v2/_rebuild_parameter and torch storage types"
                         + (" (and argparse.Namespace in a training checkpoint)" if namespaces else ""))
        self._load_storage = load_storage

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise TorchZipError(f"{self._source}: unexpected persistent id {pid!r:.80}")
        storage_type, key, location, numel = pid[1:]
        if not (isinstance(storage_type, Marker) and storage_type.payload in STORAGE_TYPES):
            raise TorchZipError(f"{self._source}: {storage_type!r:.60} is not a torch storage type")
        if not isinstance(key, str) or not isinstance(location, str) or type(numel) is not int or numel < 0:
            raise TorchZipError(f"{self._source}: malformed storage id {pid!r:.120}")
        return self._load_storage(storage_type.payload, key, numel)


def _archive_prefix(zf: zipfile.ZipFile, source: str) -> str:
    names = zf.namelist()
    if not names:
        raise TorchZipError(f"{source}: the zip archive is empty")
    prefix = names[0].split("/", 1)[0] + "/"
    if "/" not in names[0] or any(not n.startswith(prefix) for n in names):
        raise TorchZipError(f"{source}: not a torch zip checkpoint (entries are not all in one top-level folder)")
    return prefix


def read_torch_zip_state_dict(path: str | os.PathLike) -> collections.OrderedDict:
    """Reads a state dict saved with `torch.save` (zip format) as {key: numpy array}, without torch.

    Raises TorchZipError (not a torch zip file, truncated, malformed, not a dict of tensors) or
    UnsafePickleError (a global outside the state-dict allow-list).
    """
    source = os.fspath(path)
    result = _read_torch_zip(source, namespaces=False)
    if not isinstance(result, dict) or not all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in result.items()):
        raise TorchZipError(f"{source}: data.pkl does not hold a dict of tensors (a state dict)")
    return collections.OrderedDict(result)


def read_torch_zip_checkpoint(path: str | os.PathLike) -> dict:
    """Reads a training checkpoint saved with `torch.save` (zip format), without torch: a dict whose values
    may nest dicts, lists, tuples, plain values, tensors (numpy arrays) and `TorchNamespace` records.

    Raises TorchZipError (not a torch zip file, malformed, not a dict at the top) or UnsafePickleError.
    """
    source = os.fspath(path)
    result = _read_torch_zip(source, namespaces=True)
    if not isinstance(result, dict):
        raise TorchZipError(f"{source}: data.pkl does not hold a dict (a training checkpoint)")
    return result


def _read_torch_zip(source: str, namespaces: bool):
    try:
        zf = zipfile.ZipFile(source)
    except FileNotFoundError:
        raise TorchZipError(f"{source}: no such file") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise TorchZipError(f"{source}: not a torch zip checkpoint ({first_line(e)})") from None
    with zf:
        prefix = _archive_prefix(zf, source)
        members = set(zf.namelist())

        def read(name: str, expected_size: int | None = None) -> bytes:
            full = prefix + name
            if full not in members:
                raise TorchZipError(f"{source}: missing entry {full!r}")
            info = zf.getinfo(full)
            limit = _MAX_PICKLE_BYTES if expected_size is None else expected_size
            if info.file_size > limit or (expected_size is not None and info.file_size != expected_size):
                raise TorchZipError(f"{source}: entry {full!r} has {info.file_size} bytes, "
                                    f"expected {'at most ' if expected_size is None else ''}{limit}")
            try:
                return zf.read(full)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
                raise TorchZipError(f"{source}: cannot read {full!r} ({first_line(e)})") from None

        version_name = ".data/version" if prefix + ".data/version" in members else "version"
        version = read(version_name).strip()
        if not version.isdigit() or not 1 <= int(version) <= 10:
            raise TorchZipError(f"{source}: unsupported serialization version {version[:20]!r}")
        byteorder = "little"
        if prefix + "byteorder" in members:
            byteorder = read("byteorder").decode("ascii", "replace")
            if byteorder not in ("little", "big"):
                raise TorchZipError(f"{source}: bad byteorder record {byteorder[:20]!r}")
        storages: dict[str, Storage] = {}

        def load_storage(storage_type: str, key: str, numel: int) -> Storage:
            if key not in storages:
                dtype_str, decoding = STORAGE_TYPES[storage_type]
                dtype = np.dtype(dtype_str).newbyteorder("<" if byteorder == "little" else ">")
                raw = np.frombuffer(read(f"data/{key}", numel * dtype.itemsize), dtype=dtype)
                storages[key] = Storage(f"torch.{storage_type}", decode_storage(raw, decoding))
            storage = storages[key]
            if storage.array.size != numel:
                raise TorchZipError(f"{source}: storage {key!r:.40} is used with two different sizes")
            return storage

        try:
            result = _StateDictUnpickler(io.BytesIO(read("data.pkl")), source, load_storage, namespaces).load()
        except SnapshotError:
            raise
        except RecursionError:
            raise TorchZipError(f"{source}: objects are nested too deeply") from None
        except Exception as e:
            raise TorchZipError(f"{source}: corrupt data.pkl ({type(e).__name__}: {first_line(e)})") from None
    return result
