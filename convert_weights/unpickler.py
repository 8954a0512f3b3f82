"""The restricted unpickler that reads every PyTorch pickle of this package, and the inert pieces it hands out.

Nothing in a pickle is executed and nothing it names is imported: `RestrictedUnpickler.find_class` returns
only what its reader allow-lists (vetted functions wrapped in `SafeCallable`, inert `Marker`s, container
classes) and refuses every other global with `UnsafePickleError` naming it. The stand-ins refuse
``__setstate__`` (BUILD), so a pickle cannot modify them either.

Readers built on it: `convert_weights.snapshot_reader` (EG3D snapshot pickles and the legacy ``torch.save``
streams inside them) and `convert_weights.torch_zip` (``torch.save`` zip checkpoints).

Tensors: a torch storage becomes a `Storage`, a flat numpy array of its elements (``STORAGE_TYPES`` gives
each type's stored dtype; numpy has no bfloat16, so BFloat16 storages are decoded exactly to float32), and
``torch._utils._rebuild_tensor_v2`` becomes `rebuild_tensor`, a bounds-checked strided copy of the storage.
"""

from __future__ import annotations

import math
import pickle
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["STORAGE_TYPES", "Marker", "RestrictedUnpickler", "SafeCallable", "SnapshotError", "Storage",
           "UnsafePickleError", "decode_storage", "is_count", "rebuild_parameter", "rebuild_tensor",
           "safe_functions", "storage_type_markers"]


class SnapshotError(Exception):
    """A PyTorch pickle (an EG3D snapshot, a torch zip checkpoint) cannot be read; the message names the file
    and the problem."""


class UnsafePickleError(SnapshotError):
    """The pickle names a global that is not on the allow-list; the message names it."""


class Marker:
    """An inert, non-callable stand-in for a global that is only ever used as an argument."""

    __slots__ = ("name", "payload")

    def __init__(self, name: str, payload: Any = None):
        self.name = name
        self.payload = payload

    def __setstate__(self, state):
        raise SnapshotError(f"refusing to set state on {self.name}")

    def __repr__(self):
        return f"<{self.name}>"


class SafeCallable:
    """A vetted function handed to the unpickler; refuses ``__setstate__`` (BUILD)."""

    __slots__ = ("name", "fn")

    def __init__(self, name: str, fn: Callable[..., Any]):
        self.name = name
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)

    def __setstate__(self, state):
        raise SnapshotError(f"refusing to set state on {self.name}")

    def __repr__(self):
        return f"<safe {self.name}>"


def safe_functions(functions: Mapping[str, Callable[..., Any]], source: str) -> dict[str, SafeCallable]:
    """{global name: fn(source, *args)} -> {global name: SafeCallable calling fn with `source` bound}."""
    return {name: SafeCallable(name, _bind_source(fn, source)) for name, fn in functions.items()}


def _bind_source(fn: Callable[..., Any], source: str) -> Callable[..., Any]:
    return lambda *args: fn(source, *args)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose `find_class` hands out only `allowed[<module>.<name>]`.

    Any other global raises UnsafePickleError "refusing to load global '<module>.<name>' from <source><refusal>",
    `refusal` saying what the reader allows.
    """

    def __init__(self, file, source: str, allowed: Mapping[str, Any], refusal: str):
        super().__init__(file)
        self._source = source
        self._allowed = dict(allowed)
        self._refusal = refusal

    def find_class(self, module, name):
        full_name = f"{module}.{name}"
        if full_name in self._allowed:
            return self._allowed[full_name]
        raise UnsafePickleError(f"refusing to load global {full_name!r} from {self._source}{self._refusal}")


# ---------------------------------------------------------------------------------------
# Storages and tensors.
# ---------------------------------------------------------------------------------------

# torch storage type -> (little-endian numpy dtype of the stored bytes, decoding).
STORAGE_TYPES = {
    "FloatStorage": ("<f4", None),
    "DoubleStorage": ("<f8", None),
    "HalfStorage": ("<f2", None),
    "BFloat16Storage": ("<u2", "bfloat16"),
    "LongStorage": ("<i8", None),
    "IntStorage": ("<i4", None),
    "ShortStorage": ("<i2", None),
    "CharStorage": ("i1", None),
    "ByteStorage": ("u1", None),
    "BoolStorage": ("u1", "bool"),
}


def storage_type_markers() -> dict[str, Marker]:
    """{'torch.<Type>Storage': Marker whose payload is '<Type>Storage'} for every type of STORAGE_TYPES."""
    return {f"torch.{t}": Marker(f"torch.{t}", payload=t) for t in STORAGE_TYPES}


class Storage:
    """A torch storage: a flat numpy array of its elements (bf16 already decoded to f32)."""

    __slots__ = ("torch_type", "array")

    def __init__(self, torch_type: str, array: np.ndarray):
        self.torch_type = torch_type
        self.array = array

    def __setstate__(self, state):
        raise SnapshotError("refusing to set state on a torch storage")


def decode_storage(raw: np.ndarray, decoding: str | None) -> np.ndarray:
    """The stored elements (dtype from STORAGE_TYPES) -> their values in native byte order."""
    if decoding == "bfloat16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if decoding == "bool":
        return raw != 0
    return raw.astype(raw.dtype.newbyteorder("="), copy=False)


def is_count(value) -> bool:
    """A non-negative int (bools excluded)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_MAX_TENSOR_ELEMENTS = 2**34


def rebuild_tensor(source: str, storage, storage_offset, size, stride, *unused) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2 -> an owning, contiguous numpy array."""
    del unused  # requires_grad, backward_hooks[, metadata]
    if not isinstance(storage, Storage):
        raise SnapshotError(f"{source}: tensor data is a {type(storage).__name__}, not a storage")
    size, stride = tuple(size), tuple(stride)
    if (
        not is_count(storage_offset)
        or len(size) != len(stride)
        or not all(is_count(v) for v in size + stride)
    ):
        raise SnapshotError(
            f"{source}: malformed tensor layout offset={storage_offset!r:.40} "
            f"size={size!r:.80} stride={stride!r:.80}"
        )
    flat = storage.array
    if math.prod(size) > _MAX_TENSOR_ELEMENTS:
        raise SnapshotError(f"{source}: implausibly large tensor of size {size}")
    if 0 in size:
        return np.zeros(size, dtype=flat.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= flat.size:
        raise SnapshotError(
            f"{source}: tensor of size {size}, stride {stride}, offset "
            f"{storage_offset} reads past its storage of {flat.size} elements"
        )
    view = np.lib.stride_tricks.as_strided(
        flat[storage_offset:],
        shape=size,
        strides=[s * flat.itemsize for s in stride],
        writeable=False,
    )
    return np.array(view, copy=True, order="C")


def rebuild_parameter(source: str, data, *unused) -> np.ndarray:
    """torch._utils._rebuild_parameter[_with_state] -> the data array itself."""
    del unused  # requires_grad, backward_hooks[, state]
    if not isinstance(data, np.ndarray):
        raise SnapshotError(f"{source}: parameter data is a {type(data).__name__}, not a tensor")
    return data


