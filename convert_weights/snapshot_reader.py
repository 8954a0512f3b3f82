"""Safe reader for EG3D snapshot pickles, with only the standard library and numpy.

EG3D (``training_loop.py``) saves a plain ``pickle.dump`` of a dict such as
``{'training_set_kwargs': ..., 'G': ..., 'D': ..., 'G_ema': ..., 'augment_pipe': ...}``.
Loading it with ``pickle`` or EG3D's ``legacy.load_network_pkl`` imports torch and
``exec``s the Python source stored in the file. This module reads the same file without
torch and without running anything from it: a restricted ``pickle.Unpickler``
(`convert_weights.unpickler`) maps every global the file names to an inert stand-in, and
refuses all others.

Allowed globals (``ALLOWED_GLOBALS``) and why each is safe:

* ``torch_utils.persistence._reconstruct_persistent_obj``: EG3D's hook for persistent
  modules. Mapped to a function that stores ``meta`` (class name, version, ``module_src``
  and the module's ``__dict__``) in a :class:`ModuleRecord`. ``module_src`` is kept as a
  string and never compiled or executed; the class name is only a string.
* ``dnnlib.util.EasyDict``: a ``dict`` subclass; mapped to a private ``dict`` subclass
  (converted to plain ``dict`` afterwards). Only holds already-unpickled values.
* ``collections.OrderedDict``: the container class itself; it runs no user code.
* ``torch._utils._rebuild_tensor_v2``: mapped to a numpy view of a storage array
  (``as_strided`` with offset/size/stride checked against the storage bounds first), then
  copied into its own contiguous array.
* ``torch._utils._rebuild_parameter`` and ``torch._utils._rebuild_parameter_with_state``:
  mapped to "return the data array" (``requires_grad``, hooks and state are dropped).
* ``torch._tensor._rebuild_from_type_v2``: accepted only when its function argument is one
  of the three rebuild functions above and its type argument is one of the tensor type
  markers below; it returns that function's result.
* ``torch.Tensor``, ``torch._tensor.Tensor``, ``torch.nn.parameter.Parameter``: inert,
  non-callable markers, accepted only as the type argument of ``_rebuild_from_type_v2``.
* ``torch.storage._load_from_bytes``: mapped to a parser of the legacy ``torch.save``
  stream in the byte string (see below). The pickles inside that stream go through their
  own restricted unpickler, which allows only ``torch.<Type>Storage`` names
  (``ALLOWED_STORAGE_GLOBALS``), mapped to dtype markers.
* ``torch.nn.modules.container.Sequential``, ``torch.nn.modules.activation.Softplus``,
  ``training.triplane.OSGDecoder``, ``training.volumetric_rendering.renderer.ImportanceRenderer``,
  ``training.volumetric_rendering.ray_marcher.MipRayMarcher2``,
  ``training.volumetric_rendering.ray_sampler.RaySampler``: the non-persistent module classes
  of EG3D's generator. Each maps to an inert :class:`ModuleRecord` subclass whose
  ``__setstate__`` only stores the state dict.
* ``numpy.dtype``: only for a type-code string of a bool/int/uint/float/complex dtype; the
  dtype is always a copy, so the pickle's ``__setstate__`` cannot change numpy's shared one.
* ``numpy._core.multiarray.scalar`` and ``numpy.core.multiarray.scalar`` (numpy 2.x and 1.x
  spellings of the same function): mapped to ``np.frombuffer(data, dtype)[0]`` for such a
  dtype and a byte string of exactly its item size. Used for attributes like ``weight_gain``.

Everything else (``os.system``, ``builtins.eval``, ``numpy`` arrays via
``numpy._core.multiarray._reconstruct``, which no EG3D snapshot contains, ...) raises
:class:`UnsafePickleError` naming the global. The callables the unpickler hands out refuse
``__setstate__``, so a pickle cannot modify them either.

Legacy ``torch.save`` stream (the argument of ``_load_from_bytes``): five pickles (magic
number ``0x1950a86a20f9469cfc6c``, protocol version 1001, a sys-info dict, the storage as a
persistent id ``('storage', torch.<Type>Storage, key, location, numel[, view_metadata])``,
and the list of storage keys), then per key an int64 little-endian element count and the
raw little-endian data. Storage types: Float, Double, Half, BFloat16, Long, Int, Short,
Char, Byte, Bool. numpy has no bfloat16, so **BFloat16 storages are decoded to float32**
(exactly: the 16 bits become the high half of a float32); every other type keeps its dtype.
A non-None ``view_metadata`` ``(view_key, offset, size)`` (very old torch) selects a slice.

Class names: a persistent object's meta stores only the bare class name and its module's
source. The dotted name ('training.triplane.TriPlaneGenerator') comes from the fixtures'
placeholder source '# source omitted: <module>' or else from a table of EG3D's persistent
classes (stylegan2/stylegan3 name clashes are settled by which classes the source defines).

State dict: for each module, ``_parameters`` (skipping ``None``), then ``_buffers`` minus
``_non_persistent_buffers_set`` (skipping ``None``), then each child of ``_modules`` in
order, keys joined by dots; this equals torch's ``Module.state_dict()`` for EG3D's modules.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import os
import pickle
import re
import struct
from typing import Any, Callable

import numpy as np

from convert_weights.unpickler import (
    STORAGE_TYPES,
    Marker,
    RestrictedUnpickler,
    SafeCallable,
    SnapshotError,
    Storage,
    UnsafePickleError,
    decode_storage,
    is_count,
    rebuild_parameter,
    rebuild_tensor,
    safe_functions,
    storage_type_markers,
)
from hfagp_common.cli import first_line

__all__ = [
    "ALLOWED_GLOBALS",
    "ALLOWED_STORAGE_GLOBALS",
    "ModuleRecord",
    "NetworkSnapshot",
    "PersistentModule",
    "load_network",
    "read_snapshot",
    "state_dict_of",
    "TRIPLANE_GENERATOR",
]

TRIPLANE_GENERATOR = "training.triplane.TriPlaneGenerator"


# ---------------------------------------------------------------------------------------
# Inert records handed to the unpickler.
# ---------------------------------------------------------------------------------------


class ModuleRecord:
    """Inert record of one pickled torch module; no code of the module is imported or run.

    Attributes:
      class_name: dotted class name, e.g. 'training.triplane.TriPlaneGenerator'.
      persistent: True for EG3D persistent classes (pickled with their source), False for
        plain class references such as 'torch.nn.modules.container.Sequential'.
      version: persistence format version (6 in EG3D); None for non-persistent modules.
      module_src: the stored Python source (never executed); None for non-persistent ones.
      state: the module's pickled ``__dict__`` (``_parameters``, ``_buffers``, ``_modules``,
        ``_init_kwargs``, own attributes, ...), tensors already turned into numpy arrays.
    """

    __slots__ = ("class_name", "persistent", "version", "module_src", "state")

    def __init__(
        self,
        class_name: str,
        state: dict,
        *,
        persistent: bool,
        version: int | None = None,
        module_src: str | None = None,
    ):
        self.class_name = class_name
        self.persistent = persistent
        self.version = version
        self.module_src = module_src
        self.state = state

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise SnapshotError(
                f"module {self.class_name}: state is a {type(state).__name__}, expected a dict"
            )
        self.state = state

    def __repr__(self):
        kind = "persistent" if self.persistent else "plain"
        return f"ModuleRecord({self.class_name!r}, {kind})"


class _InertModule(ModuleRecord):
    """Base of the stand-ins for non-persistent module classes (created by NEWOBJ + BUILD)."""

    __slots__ = ()
    qualified_name = ""

    def __new__(cls, *args, **kwargs):
        del args, kwargs
        obj = object.__new__(cls)
        ModuleRecord.__init__(obj, cls.qualified_name, {}, persistent=False)
        return obj

    def __init__(self, *args, **kwargs):
        del args, kwargs


def _inert_module_class(qualified_name: str) -> type:
    return type(
        qualified_name.rsplit(".", 1)[-1],
        (_InertModule,),
        {"__slots__": (), "qualified_name": qualified_name},
    )


class _EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict (a dict); converted to a plain dict after loading."""

    def __setstate__(self, state):
        if state:
            raise SnapshotError("EasyDict with instance attributes is not supported")


# ---------------------------------------------------------------------------------------
# Persistent class names.
# ---------------------------------------------------------------------------------------

# The persistent classes of NVlabs/eg3d, by Python module. A pickle stores only the bare
# class name plus the module's source, so this table (and the placeholder
# '# source omitted: <module>' of the test fixtures) gives the dotted name.
_EG3D_PERSISTENT_CLASSES = {
    "training.triplane": ("TriPlaneGenerator",),
    "training.networks_stylegan2": (
        "FullyConnectedLayer",
        "Conv2dLayer",
        "MappingNetwork",
        "SynthesisLayer",
        "ToRGBLayer",
        "SynthesisBlock",
        "SynthesisNetwork",
        "Generator",
        "DiscriminatorBlock",
        "MinibatchStdLayer",
        "DiscriminatorEpilogue",
        "Discriminator",
    ),
    "training.networks_stylegan3": (
        "FullyConnectedLayer",
        "MappingNetwork",
        "SynthesisInput",
        "SynthesisLayer",
        "SynthesisNetwork",
        "Generator",
    ),
    "training.superresolution": (
        "SuperresolutionHybrid2X",
        "SuperresolutionHybrid4X",
        "SuperresolutionHybrid8X",
        "SuperresolutionHybrid8XDC",
        "SuperresolutionHybridDeepfp32",
        "SynthesisBlockNoUp",
    ),
    "training.dual_discriminator": (
        "SingleDiscriminator",
        "DualDiscriminator",
        "DummyDualDiscriminator",
    ),
    "training.augment": ("AugmentPipe",),
}
_PLACEHOLDER_SRC = re.compile(r"#\s*source omitted:\s*([A-Za-z_][\w.]*)\s*")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def _qualify_class_name(class_name: str, module_src: str) -> str:
    """'TriPlaneGenerator' -> 'training.triplane.TriPlaneGenerator' (bare name if unknown)."""
    placeholder = _PLACEHOLDER_SRC.fullmatch(module_src)
    if placeholder:
        return f"{placeholder.group(1)}.{class_name}"
    candidates = [m for m, names in _EG3D_PERSISTENT_CLASSES.items() if class_name in names]
    if len(candidates) > 1:
        # networks_stylegan2 and networks_stylegan3 share some names: keep the module whose
        # persistent classes are all defined in the stored source.
        candidates = [
            m
            for m in candidates
            if all(f"class {name}(" in module_src for name in _EG3D_PERSISTENT_CLASSES[m])
        ]
    if len(candidates) == 1:
        return f"{candidates[0]}.{class_name}"
    return class_name


# ---------------------------------------------------------------------------------------
# Legacy torch.save stream inside torch.storage._load_from_bytes.
# ---------------------------------------------------------------------------------------

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
ALLOWED_STORAGE_GLOBALS: frozenset[str] = frozenset(f"torch.{t}" for t in STORAGE_TYPES)


class _StorageUnpickler(RestrictedUnpickler):
    """Unpickler for the pickles inside a legacy torch.save stream: storage types only."""

    def __init__(self, file, source: str):
        super().__init__(file, source, storage_type_markers(), " (inside a torch storage byte string): only "
                         "torch.<Type>Storage names are allowed there")
        self.references: list[tuple] = []

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise SnapshotError(
                f"{self._source}: unexpected persistent id {pid!r:.80} in a torch "
                "storage byte string"
            )
        storage_type, key, _, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(storage_type, Marker):
            raise SnapshotError(
                f"{self._source}: storage type {storage_type!r:.80} is not a torch storage class"
            )
        if not isinstance(key, str) or not is_count(numel):
            raise SnapshotError(f"{self._source}: malformed storage id {pid!r:.120}")
        if view is not None and not (
            isinstance(view, tuple) and len(view) == 3 and all(is_count(v) for v in view[1:])
        ):
            raise SnapshotError(f"{self._source}: malformed storage view {view!r:.80}")
        reference = (storage_type.payload, key, numel, view)
        self.references.append(reference)
        return reference


def _load_legacy_storage(data: bytes, source: str) -> Storage:
    """Parses the legacy torch.save stream of one storage (the _load_from_bytes argument)."""
    if not isinstance(data, (bytes, bytearray)):
        raise SnapshotError(
            f"{source}: _load_from_bytes got a {type(data).__name__}, expected bytes"
        )
    stream = io.BytesIO(data)

    def next_pickle():
        unpickler = _StorageUnpickler(stream, source)
        try:
            return unpickler.load(), unpickler.references
        except SnapshotError:
            raise
        except Exception as e:
            raise SnapshotError(
                f"{source}: truncated or corrupt torch storage byte string "
                f"({type(e).__name__}: {first_line(e)})"
            ) from None

    magic, _ = next_pickle()
    if magic != _LEGACY_MAGIC:
        raise SnapshotError(
            f"{source}: a torch storage byte string lacks the legacy torch.save magic number"
        )
    protocol, _ = next_pickle()
    if protocol != _LEGACY_PROTOCOL:
        raise SnapshotError(f"{source}: unsupported legacy torch.save protocol {protocol!r:.40}")
    sys_info, _ = next_pickle()
    if not isinstance(sys_info, dict):
        raise SnapshotError(f"{source}: corrupt sys info in a torch storage byte string")
    result, references = next_pickle()
    keys, _ = next_pickle()
    if (
        not isinstance(result, tuple)
        or len(references) != 1
        or result is not references[0]
        or not isinstance(keys, list)
    ):
        raise SnapshotError(f"{source}: a torch storage byte string does not hold one storage")
    storage_type, key, numel, view = result
    if keys != [key]:
        raise SnapshotError(
            f"{source}: a torch storage byte string lists storage keys {keys!r:.80}, "
            f"expected [{key!r:.40}]"
        )
    dtype_str, decoding = STORAGE_TYPES[storage_type]
    dtype = np.dtype(dtype_str)
    header = stream.read(8)
    count = struct.unpack("<q", header)[0] if len(header) == 8 else -1
    if count != numel:
        raise SnapshotError(
            f"{source}: torch storage {key!r:.40} has {count} elements, expected {numel}"
        )
    raw = stream.read(numel * dtype.itemsize)
    if len(raw) != numel * dtype.itemsize:
        raise SnapshotError(f"{source}: truncated torch storage byte string")
    array = np.frombuffer(raw, dtype=dtype)
    if view is not None:
        _, offset, size = view
        if offset + size > numel:
            raise SnapshotError(f"{source}: storage view out of bounds")
        array = array[offset : offset + size]
    return Storage(f"torch.{storage_type}", decode_storage(array, decoding))


# ---------------------------------------------------------------------------------------
# Stand-ins for the allowed globals of the outer pickle.
# ---------------------------------------------------------------------------------------

_TENSOR_TYPE_GLOBALS = ("torch.Tensor", "torch._tensor.Tensor", "torch.nn.parameter.Parameter")
_REBUILD_FUNCTION_GLOBALS = (
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
)


def _rebuild_from_type(source: str, func, new_type, args, state=None) -> np.ndarray:
    """torch._tensor._rebuild_from_type_v2, restricted to the allowed rebuild functions."""
    del state  # Python attributes set on the tensor object.
    if not (isinstance(func, SafeCallable) and func.name in _REBUILD_FUNCTION_GLOBALS):
        raise UnsafePickleError(
            f"refusing _rebuild_from_type_v2 of {func!r:.80} from {source}: "
            "only the torch tensor rebuild functions are allowed"
        )
    if not (isinstance(new_type, Marker) and new_type.name in _TENSOR_TYPE_GLOBALS):
        raise UnsafePickleError(
            f"refusing _rebuild_from_type_v2 to type {new_type!r:.80} from "
            f"{source}: only torch.Tensor / Parameter are allowed"
        )
    if not isinstance(args, tuple):
        raise SnapshotError(f"{source}: malformed _rebuild_from_type_v2 arguments")
    return func(*args)


def _reconstruct_persistent(source: str, meta) -> ModuleRecord:
    """torch_utils.persistence._reconstruct_persistent_obj -> a ModuleRecord (nothing run)."""
    if not isinstance(meta, dict):
        raise SnapshotError(f"{source}: persistent object meta is a {type(meta).__name__}")
    class_name, state = meta.get("class_name"), meta.get("state")
    module_src, version = meta.get("module_src"), meta.get("version")
    if (
        meta.get("type") != "class"
        or not isinstance(class_name, str)
        or not _IDENTIFIER.fullmatch(class_name)
        or not isinstance(state, dict)
        or not isinstance(module_src, str)
        or not is_count(version)
    ):
        raise SnapshotError(
            f"{source}: malformed persistent object meta (class_name="
            f'{class_name!r:.60}, type={meta.get("type")!r:.20})'
        )
    return ModuleRecord(
        _qualify_class_name(class_name, module_src),
        state,
        persistent=True,
        version=version,
        module_src=module_src,
    )


def _checked_dtype(source: str, dtype) -> np.dtype:
    if (
        not isinstance(dtype, np.dtype)
        or dtype.kind not in "biufc"
        or dtype.hasobject
        or dtype.fields is not None
        or dtype.subdtype is not None
    ):
        raise UnsafePickleError(
            f"refusing numpy dtype {dtype!r:.60} from {source}: only "
            "bool/int/uint/float/complex dtypes are allowed"
        )
    return dtype


def _numpy_dtype(source: str, obj, align=False, copy=False) -> np.dtype:
    """numpy.dtype(type_code, align, copy) for plain numeric type codes; always a copy."""
    del copy
    if not isinstance(obj, str):
        raise UnsafePickleError(
            f"refusing numpy.dtype({obj!r:.60}) from {source}: only type-code "
            "strings are allowed"
        )
    try:
        dtype = np.dtype(obj)
    except TypeError as e:
        raise SnapshotError(f"{source}: bad numpy dtype {obj!r:.40}: {e}") from None
    _checked_dtype(source, dtype)
    return np.dtype(obj, align=bool(align), copy=True)


def _numpy_scalar(source: str, dtype, data=None):
    """numpy.(_)core.multiarray.scalar(dtype, bytes) -> a numpy scalar."""
    dtype = _checked_dtype(source, dtype)
    if isinstance(data, str):  # Protocol-0/1 style: bytes stored as latin-1 text.
        data = data.encode("latin-1")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise SnapshotError(f"{source}: malformed numpy scalar of dtype {dtype}")
    return np.frombuffer(data, dtype=dtype)[0]


_INERT_MODULE_GLOBALS = (
    "torch.nn.modules.container.Sequential",
    "torch.nn.modules.activation.Softplus",
    "training.triplane.OSGDecoder",
    "training.volumetric_rendering.renderer.ImportanceRenderer",
    "training.volumetric_rendering.ray_marcher.MipRayMarcher2",
    "training.volumetric_rendering.ray_sampler.RaySampler",
)
_INERT_MODULE_CLASSES = {name: _inert_module_class(name) for name in _INERT_MODULE_GLOBALS}

_SAFE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "torch_utils.persistence._reconstruct_persistent_obj": _reconstruct_persistent,
    "torch._utils._rebuild_tensor_v2": rebuild_tensor,
    "torch._utils._rebuild_parameter": rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type,
    "torch.storage._load_from_bytes": lambda source, data: _load_legacy_storage(data, source),
    "numpy.dtype": _numpy_dtype,
    "numpy._core.multiarray.scalar": _numpy_scalar,
    "numpy.core.multiarray.scalar": _numpy_scalar,
}
_SAFE_CLASSES: dict[str, type] = {
    "dnnlib.util.EasyDict": _EasyDict,
    "collections.OrderedDict": collections.OrderedDict,
    **_INERT_MODULE_CLASSES,
}

ALLOWED_GLOBALS: frozenset[str] = frozenset(
    [*_SAFE_FUNCTIONS, *_SAFE_CLASSES, *_TENSOR_TYPE_GLOBALS]
)


class _SnapshotUnpickler(RestrictedUnpickler):
    """Unpickler whose find_class hands out only the inert stand-ins above."""

    def __init__(self, file, source: str):
        allowed = {**safe_functions(_SAFE_FUNCTIONS, source), **_SAFE_CLASSES,
                   **{name: Marker(name) for name in _TENSOR_TYPE_GLOBALS}}
        super().__init__(file, source, allowed, ": it is not on the allow-list of EG3D snapshot globals "
                         "(convert_weights.snapshot_reader.ALLOWED_GLOBALS)")


# ---------------------------------------------------------------------------------------
# Reading files.
# ---------------------------------------------------------------------------------------


def _unpickle(path: str | os.PathLike) -> Any:
    source = os.fspath(path)
    try:
        file = open(source, "rb")
    except FileNotFoundError:
        raise SnapshotError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise SnapshotError(f"{source}: is a directory, not a snapshot file") from None
    except OSError as e:
        raise SnapshotError(f"{source}: cannot open: {e.strerror}") from None
    with file:
        header = file.read(2)
        if len(header) < 2 or header[0] != pickle.PROTO[0] or not 2 <= header[1] <= 5:
            raise SnapshotError(
                f"{source}: not a pickle file (no pickle protocol 2-5 header; "
                f"it starts with {header!r})"
            )
        file.seek(0)
        try:
            return _SnapshotUnpickler(file, source).load()
        except SnapshotError as e:
            if source in str(e):
                raise
            raise type(e)(f"{source}: {e}") from None
        except Exception as e:
            raise SnapshotError(
                f"{source}: truncated or corrupt pickle ({type(e).__name__}: {first_line(e)})"
            ) from None


def _plain(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """EasyDict/OrderedDict -> dict, recursively; lists/tuples/sets rebuilt; others as is."""
    memo = {} if memo is None else memo
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, dict):
        result = memo[id(value)] = {}
        result.update((k, _plain(v, memo)) for k, v in value.items())
        return result
    if isinstance(value, list):
        result = memo[id(value)] = []
        result.extend(_plain(v, memo) for v in value)
        return result
    if isinstance(value, tuple):
        return tuple(_plain(v, memo) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(_plain(v, memo) for v in value)
    return value


@contextlib.contextmanager
def _nesting_guard(source: str):
    """Turns RecursionError (a hostile, absurdly deep pickle) into a SnapshotError."""
    try:
        yield
    except RecursionError:
        raise SnapshotError(f"{source}: objects are nested too deeply") from None


def read_snapshot(path: str | os.PathLike) -> dict:
    """Reads the top-level dict of a snapshot pickle, safely (see the module docstring).

    Returns:
      The pickled dict. Modules (``G``, ``G_ema``, ``D``, ``augment_pipe``) are
      :class:`ModuleRecord` objects with their raw state (tensors as numpy arrays); other
      values are plain Python (EasyDicts as dicts). The same pickled object stays the same
      Python object (e.g. ``G is G_ema`` when the pickle memoized them).

    Raises:
      SnapshotError: the file is missing, not a pickle, truncated/corrupt or not a dict.
      UnsafePickleError: the pickle names a global outside ``ALLOWED_GLOBALS``.
    """
    source = os.fspath(path)
    snapshot = _unpickle(source)
    if not isinstance(snapshot, dict):
        raise SnapshotError(
            f"{source}: top-level object is a {type(snapshot).__name__}, "
            "expected the dict of an EG3D snapshot"
        )
    with _nesting_guard(source):
        return {k: v if isinstance(v, ModuleRecord) else _plain(v) for k, v in snapshot.items()}


# ---------------------------------------------------------------------------------------
# Networks.
# ---------------------------------------------------------------------------------------

# Non-underscore entries of a torch Module's __dict__ that belong to torch, not the model.
_TORCH_MODULE_ATTRIBUTES = frozenset({"training", "call_super_init", "dump_patches"})


@dataclasses.dataclass
class PersistentModule:
    """What the pickle says about one persistent module; nothing of it was executed.

    ``module_src`` is the stored source text (a placeholder in the test fixtures), kept only
    for identification; it is never compiled.
    """

    class_name: str
    init_args: tuple
    init_kwargs: dict
    attributes: dict
    version: int
    module_src: str = dataclasses.field(default="", repr=False, compare=False)


@dataclasses.dataclass
class NetworkSnapshot:
    """One network of a snapshot.

    Attributes:
      name: the snapshot key it came from ('G_ema', 'G', ...).
      root: the root module's record.
      state_dict: exactly torch's ``state_dict()``: keys in torch order, numpy arrays with
        torch's dtype (bfloat16 decoded to float32), shape and values.
      modules: dotted module path ('' = root) -> PersistentModule for persistent modules,
        or the class-name string for plain ones ('decoder' -> 'training.triplane.OSGDecoder').
    """

    name: str
    root: PersistentModule
    state_dict: dict[str, np.ndarray]
    modules: dict[str, PersistentModule | str]


def _persistent_module(record: ModuleRecord, path: str, source: str) -> PersistentModule:
    state = record.state
    init_args = _plain(state.get("_init_args", ()))
    init_kwargs = _plain(state.get("_init_kwargs", {}))
    if not isinstance(init_args, (tuple, list)) or not isinstance(init_kwargs, dict):
        raise SnapshotError(
            f"{source}: module {path or '<root>'!r} ({record.class_name}) has malformed "
            "_init_args/_init_kwargs"
        )
    attributes = {
        k: _plain(v)
        for k, v in state.items()
        if isinstance(k, str) and not k.startswith("_") and k not in _TORCH_MODULE_ATTRIBUTES
    }
    return PersistentModule(
        class_name=record.class_name,
        init_args=tuple(init_args),
        init_kwargs=init_kwargs,
        attributes=attributes,
        version=record.version,
        module_src=record.module_src or "",
    )


def _walk(
    record: ModuleRecord, source: str, visit: Callable[[str, ModuleRecord], None] | None = None
) -> dict[str, np.ndarray]:
    """Flattens a module tree into torch's state_dict order; calls visit(path, record)."""
    state_dict: dict[str, np.ndarray] = {}
    active: set[int] = set()

    def add(key: str, value, kind: str):
        if not isinstance(value, np.ndarray):
            raise SnapshotError(
                f"{source}: {kind} {key!r} is a {type(value).__name__}, not a tensor"
            )
        if key in state_dict:
            raise SnapshotError(f"{source}: duplicate state_dict key {key!r}")
        state_dict[key] = value

    def walk(module: ModuleRecord, prefix: str):
        where = prefix or "<root>"
        if id(module) in active:
            raise SnapshotError(f"{source}: module {where!r} contains itself")
        state = module.state
        parameters, buffers = state.get("_parameters"), state.get("_buffers")
        children = state.get("_modules")
        non_persistent = state.get("_non_persistent_buffers_set", set())
        if not all(isinstance(d, dict) for d in (parameters, buffers, children)) or not isinstance(
            non_persistent, (set, frozenset)
        ):
            raise SnapshotError(
                f"{source}: module {where!r} ({module.class_name}) does not have the "
                "state of a torch module"
            )
        if visit is not None:
            visit(prefix, module)
        dot = f"{prefix}." if prefix else ""
        for name, value in parameters.items():
            if value is not None:
                add(f"{dot}{name}", value, "parameter")
        for name, value in buffers.items():
            if value is not None and name not in non_persistent:
                add(f"{dot}{name}", value, "buffer")
        active.add(id(module))
        for name, child in children.items():
            if child is None:
                continue
            if not isinstance(child, ModuleRecord):
                raise SnapshotError(
                    f"{source}: submodule {dot}{name!s} is a {type(child).__name__}, "
                    "not a module"
                )
            walk(child, f"{dot}{name}")
        active.discard(id(module))

    walk(record, "")
    return state_dict


def state_dict_of(record: ModuleRecord, source: str = "<snapshot>") -> dict[str, np.ndarray]:
    """Torch's ``state_dict()`` of any module record from :func:`read_snapshot` (e.g. D)."""
    with _nesting_guard(source):
        return _walk(record, source)


def load_network(path: str | os.PathLike, network: str = "G_ema") -> NetworkSnapshot:
    """Reads one TriPlaneGenerator ('G_ema' by default, or 'G') from an EG3D snapshot pickle.

    Raises:
      SnapshotError: missing/garbage/truncated file, top level not a dict, no such network,
        or the network is not a training.triplane.TriPlaneGenerator.
      UnsafePickleError: the pickle names a global outside ``ALLOWED_GLOBALS``.
    """
    source = os.fspath(path)
    snapshot = read_snapshot(path)
    record = snapshot.get(network)
    if not isinstance(record, ModuleRecord):
        present = ", ".join(str(k) for k, v in snapshot.items() if isinstance(v, ModuleRecord))
        why = "" if network not in snapshot else f" (entry is {type(record).__name__})"
        raise SnapshotError(
            f"{source}: snapshot has no network {network!r}{why}; it has: "
            f'{present or "no networks"}'
        )
    if record.class_name != TRIPLANE_GENERATOR:
        raise SnapshotError(
            f"{source}: network {network!r} is a {record.class_name}, not a "
            f"{TRIPLANE_GENERATOR}"
        )
    modules: dict[str, PersistentModule | str] = {}

    def visit(prefix: str, module: ModuleRecord):
        if module.persistent:
            modules[prefix] = _persistent_module(module, prefix, source)
        else:
            modules[prefix] = module.class_name

    with _nesting_guard(source):
        state_dict = _walk(record, source, visit)
    return NetworkSnapshot(name=network, root=modules[""], state_dict=state_dict, modules=modules)
