"""Tests of convert_weights.snapshot_reader against the EG3D golden fixtures."""

from __future__ import annotations

import json
import pathlib
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest

from convert_weights import snapshot_reader as sr
from convert_weights.unpickler import SnapshotError, UnsafePickleError
from shared_fixtures import EG3D_FIXTURES, REPO_ROOT, require_fixtures

FIXTURES = EG3D_FIXTURES


@pytest.fixture(scope="module")
def eg3d_fixtures():
    return require_fixtures(FIXTURES)


# Tests that read the golden fixtures (skipped without them, failed under HFAGP_REQUIRE_FIXTURES=1);
# the hand-built pickles below need nothing.
needs_fixtures = pytest.mark.usefixtures("eg3d_fixtures")

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


# --------------------------------------------------------------------------------------
# Hand-built pickle bytes (globals are spelled out, so nothing needs torch to build them).
# --------------------------------------------------------------------------------------


def _global(full_name: str) -> bytes:
    module, name = full_name.rsplit(".", 1)
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _call(func: bytes, *args: bytes) -> bytes:
    return func + _tuple(*args) + b"R"


def _top_dict(key: str, value: bytes) -> bytes:
    return b"\x80\x04}" + _str(key) + value + b"s."


def _legacy_storage_stream(
    storage_global: str, raw: bytes, numel: int, payload: bytes | None = None
) -> bytes:
    """The legacy torch.save stream of one storage; `payload` replaces the storage pickle."""
    sys_info = {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    pid = _tuple(
        _str("storage"), _global(storage_global), _str("k0"), _str("cpu"), _int(numel), b"N"
    )
    storage_pickle = payload if payload is not None else b"\x80\x02" + pid + b"Q."
    return (
        pickle.dumps(LEGACY_MAGIC, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps(sys_info, protocol=2)
        + storage_pickle
        + pickle.dumps(["k0"], protocol=2)
        + struct.pack("<q", numel)
        + raw
    )


def _bytes(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def _tensor_pickle(
    storage_global: str, raw: bytes, numel: int, offset: int, size: tuple, stride: tuple
) -> bytes:
    storage = _call(
        _global("torch.storage._load_from_bytes"),
        _bytes(_legacy_storage_stream(storage_global, raw, numel)),
    )
    tensor = _call(
        _global("torch._utils._rebuild_tensor_v2"),
        storage,
        _int(offset),
        _tuple(*map(_int, size)),
        _tuple(*map(_int, stride)),
        b"\x89",
        _call(_global("collections.OrderedDict")),
    )
    return _top_dict("t", tensor)


def _write(tmp_path: pathlib.Path, name: str, data: bytes) -> pathlib.Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------
# Fixtures.
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests():
    return {
        name: json.loads((FIXTURES / f"manifest_{name}.json").read_text())
        for name in ("tiny128", "small512")
    }


@pytest.fixture(scope="module")
def tiny128():
    return sr.load_network(FIXTURES / "tiny128.pkl")


@pytest.fixture(scope="module")
def full_snapshot():
    return sr.read_snapshot(FIXTURES / "tiny128_full_snapshot.pkl")


def _json_normal(value):
    return json.loads(json.dumps(value, default=lambda v: v.item()))


# --------------------------------------------------------------------------------------
# The two generator fixtures against their manifests.
# --------------------------------------------------------------------------------------


@needs_fixtures
@pytest.mark.parametrize("name", ["tiny128", "small512"])
def test_network_matches_manifest(name, manifests):
    manifest = manifests[name]
    net = sr.load_network(FIXTURES / f"{name}.pkl")

    assert net.name == "G_ema"
    expected = [(e["key"], tuple(e["shape"]), e["dtype"]) for e in manifest["state_dict"]]
    got = [(k, v.shape, str(v.dtype)) for k, v in net.state_dict.items()]
    assert got == expected
    assert len(got) == manifest["num_state_dict_entries"]
    assert all(v.flags.c_contiguous and v.flags.owndata for v in net.state_dict.values())
    params = sum(
        net.state_dict[e["key"]].size for e in manifest["state_dict"] if e["kind"] == "parameter"
    )
    assert params == manifest["total_parameters"]

    assert net.root is net.modules[""]
    assert net.root.class_name == manifest["class_name"] == sr.TRIPLANE_GENERATOR
    assert net.root.version == 6
    assert net.root.init_args == tuple(manifest["init_args"])
    assert _json_normal(net.root.init_kwargs) == manifest["init_kwargs"]
    assert net.root.attributes["neural_rendering_resolution"] == 64
    assert net.root.attributes["rendering_kwargs"] == manifest["init_kwargs"]["rendering_kwargs"]
    assert "training" not in net.root.attributes and "_last_planes" not in net.root.attributes

    tree = [
        (e["path"], f"{e['python_module']}.{e['class_name']}", e["persistent"])
        for e in manifest["module_tree"]
    ]
    got_tree = [
        (
            path,
            m.class_name if isinstance(m, sr.PersistentModule) else m,
            isinstance(m, sr.PersistentModule),
        )
        for path, m in net.modules.items()
    ]
    assert got_tree == tree
    for entry in manifest["module_tree"]:
        module = net.modules[entry["path"]]
        if entry["persistent"]:
            assert _json_normal(list(module.init_args)) == entry["init_args"], entry["path"]
            assert _json_normal(module.init_kwargs) == entry["init_kwargs"], entry["path"]


@needs_fixtures
def test_resample_filter_and_weight_gain(tiny128):
    filt = np.outer([1, 3, 3, 1], [1, 3, 3, 1]).astype(np.float32) / 64
    np.testing.assert_array_equal(tiny128.state_dict["backbone.synthesis.b4.resample_filter"], filt)
    fc = tiny128.modules["backbone.mapping.fc0"]
    assert isinstance(fc.attributes["weight_gain"], np.float64)
    assert fc.attributes["weight_gain"] == pytest.approx(0.01 / np.sqrt(1024))


@needs_fixtures
def test_g_and_g_ema_are_one_memoized_object_in_tiny128():
    snapshot = sr.read_snapshot(FIXTURES / "tiny128.pkl")
    assert list(snapshot) == ["training_set_kwargs", "G", "D", "G_ema", "augment_pipe"]
    assert snapshot["G"] is snapshot["G_ema"]
    assert snapshot["D"] is None and snapshot["augment_pipe"] is None
    assert snapshot["training_set_kwargs"]["resolution"] == 128
    g = sr.load_network(FIXTURES / "tiny128.pkl", "G")
    assert g.name == "G" and len(g.state_dict) == 177


# --------------------------------------------------------------------------------------
# The full training snapshot.
# --------------------------------------------------------------------------------------


@needs_fixtures
def test_full_snapshot_g_ema_and_g_match_check_arrays(tiny128):
    check = np.load(FIXTURES / "tiny128_full_snapshot_G_ema_check.npz")
    path = FIXTURES / "tiny128_full_snapshot.pkl"
    g_ema, g = sr.load_network(path), sr.load_network(path, "G")
    for net, prefix in ((g_ema, ""), (g, "G__")):
        for key in (
            "backbone.mapping.embed.weight",
            "backbone.synthesis.b4.conv1.weight",
            "backbone.synthesis.b32.conv0.noise_strength",
            "decoder.net.0.weight",
            "superresolution.block1.conv1.weight",
        ):
            expected = check[prefix + key.replace(".", "__")]
            got = net.state_dict[key]
            assert got.dtype == expected.dtype and got.shape == expected.shape
            assert got.tobytes() == expected.tobytes(), (prefix, key)

    assert list(g_ema.state_dict) == ["dataset_label_std", *tiny128.state_dict]
    for key, value in tiny128.state_dict.items():
        assert g_ema.state_dict[key].tobytes() == value.tobytes(), key
    label_std = g_ema.state_dict["dataset_label_std"]
    assert label_std.shape == (25,) and label_std.dtype == np.float32
    # Constant label columns: cam2world[1, 0], its last row and the intrinsics. The two focal
    # lengths come out of float32 np.std as 2.9e-6 instead of 0 (the fixture README says 13 zeros).
    assert np.flatnonzero(label_std < 1e-5).tolist() == [4, *range(12, 25)]
    assert np.count_nonzero(label_std == 0) == 12

    differing = [
        k for k in g.state_dict if not np.array_equal(g.state_dict[k], g_ema.state_dict[k])
    ]
    assert len(differing) == 132
    assert g_ema.root.attributes["neural_rendering_resolution"] == 64


@needs_fixtures
def test_full_snapshot_other_modules_read_without_executing(full_snapshot):
    assert full_snapshot["G"] is not full_snapshot["G_ema"]
    assert full_snapshot["training_set_kwargs"]["max_size"] == 64
    d, augment = full_snapshot["D"], full_snapshot["augment_pipe"]
    assert d.class_name == "training.dual_discriminator.DualDiscriminator" and d.persistent
    assert augment.class_name == "training.augment.AugmentPipe"
    assert d.module_src == "# source omitted: training.dual_discriminator"

    d_state = sr.state_dict_of(d)
    assert len(d_state) == 74
    assert d_state["b128.fromrgb.weight"].shape == (8, 6, 1, 1)
    assert d_state["b4.conv.weight"].shape == (32, 33, 3, 3)
    augment_state = sr.state_dict_of(augment)
    assert list(augment_state) == ["p", "Hz_geom", "Hz_fbank"]
    assert augment_state["p"].shape == () and augment_state["p"] == np.float32(0.1875)
    assert augment_state["Hz_fbank"].shape == (4, 43)

    not_a_generator = (
        "'D' is a training.dual_discriminator.DualDiscriminator, "
        "not a training.triplane.TriPlaneGenerator"
    )
    with pytest.raises(SnapshotError, match=not_a_generator):
        sr.load_network(FIXTURES / "tiny128_full_snapshot.pkl", "D")


@needs_fixtures
def test_no_torch_import():
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "from convert_weights.snapshot_reader import load_network\n"
        f"net = load_network({str(FIXTURES / 'tiny128_full_snapshot.pkl')!r})\n"
        "assert len(net.state_dict) == 178\n"
        "assert sys.modules.get('torch') is None, 'torch got imported'\n"
        "roots = ('torch', 'training', 'dnnlib', 'torch_utils')\n"
        "bad = [m for m, v in sys.modules.items() if m.split('.')[0] in roots and v is not None]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --------------------------------------------------------------------------------------
# Storage types and tensor layouts.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "storage, values, expected_dtype",
    [
        ("FloatStorage", np.array([1.5, -2.0, 3.25, 0.0, 7.0, 8.0], "<f4"), np.float32),
        ("DoubleStorage", np.array([1.5, -2.0, 3.25, 1e300, 7.0, 8.0], "<f8"), np.float64),
        ("HalfStorage", np.array([1.5, -2.0, 3.25, 0.0, 7.0, 8.0], "<f2"), np.float16),
        ("LongStorage", np.array([1, -2, 2**40, 0, 7, 8], "<i8"), np.int64),
        ("IntStorage", np.array([1, -2, 2**30, 0, 7, 8], "<i4"), np.int32),
        ("ShortStorage", np.array([1, -2, 300, 0, 7, 8], "<i2"), np.int16),
        ("CharStorage", np.array([1, -2, 100, 0, 7, 8], "i1"), np.int8),
        ("ByteStorage", np.array([1, 2, 200, 0, 7, 8], "u1"), np.uint8),
        ("BoolStorage", np.array([1, 0, 1, 0, 0, 1], "u1"), np.bool_),
    ],
)
def test_storage_types_and_strided_layout(tmp_path, storage, values, expected_dtype):
    # A [2, 2] tensor at offset 1 with stride (1, 2): a transposed view of values[1:5].
    path = _write(
        tmp_path,
        "t.pkl",
        _tensor_pickle(f"torch.{storage}", values.tobytes(), 6, 1, (2, 2), (1, 2)),
    )
    tensor = sr.read_snapshot(path)["t"]
    expected = values[1:5].reshape(2, 2).T.astype(expected_dtype)
    assert tensor.dtype == expected_dtype
    np.testing.assert_array_equal(tensor, expected)
    assert tensor.flags.c_contiguous and tensor.flags.owndata


def test_bfloat16_storage_is_decoded_to_float32(tmp_path):
    floats = np.array([1.0, -2.5, 3.140625, 65280.0], np.float32)  # exactly representable in bf16
    bf16 = (floats.view(np.uint32) >> 16).astype("<u2")
    path = _write(
        tmp_path, "t.pkl", _tensor_pickle("torch.BFloat16Storage", bf16.tobytes(), 4, 0, (4,), (1,))
    )
    tensor = sr.read_snapshot(path)["t"]
    assert tensor.dtype == np.float32
    np.testing.assert_array_equal(tensor, floats)


def test_zero_dim_tensor(tmp_path):
    raw = np.array([5.0, 0.1875], "<f4").tobytes()
    tensor = sr.read_snapshot(
        _write(tmp_path, "t.pkl", _tensor_pickle("torch.FloatStorage", raw, 2, 1, (), ()))
    )["t"]
    assert tensor.shape == () and tensor == np.float32(0.1875)


def test_tensor_past_its_storage_is_rejected(tmp_path):
    raw = np.zeros(4, "<f4").tobytes()
    path = _write(
        tmp_path, "t.pkl", _tensor_pickle("torch.FloatStorage", raw, 4, 1, (2, 2), (2, 1))
    )
    with pytest.raises(SnapshotError, match="reads past its storage of 4 elements"):
        sr.read_snapshot(path)


def test_rebuild_from_type_v2_only_wraps_rebuild_functions(tmp_path):
    raw = np.arange(3, dtype="<f4").tobytes()
    storage = _call(
        _global("torch.storage._load_from_bytes"),
        _bytes(_legacy_storage_stream("torch.FloatStorage", raw, 3)),
    )
    args = _tuple(
        storage,
        _int(0),
        _tuple(_int(3)),
        _tuple(_int(1)),
        b"\x89",
        _call(_global("collections.OrderedDict")),
    )
    good = _call(
        _global("torch._tensor._rebuild_from_type_v2"),
        _global("torch._utils._rebuild_tensor_v2"),
        _global("torch.Tensor"),
        args,
        b"}",
    )
    np.testing.assert_array_equal(
        sr.read_snapshot(_write(tmp_path, "good.pkl", _top_dict("t", good)))["t"], [0, 1, 2]
    )
    bad = _call(
        _global("torch._tensor._rebuild_from_type_v2"),
        _global("collections.OrderedDict"),
        _global("torch.Tensor"),
        args,
        b"}",
    )
    with pytest.raises(UnsafePickleError, match="refusing _rebuild_from_type_v2"):
        sr.read_snapshot(_write(tmp_path, "bad.pkl", _top_dict("t", bad)))


def test_numpy_1x_scalar_global(tmp_path):
    data = pickle.dumps({"gain": np.float64(0.25)}, protocol=3)
    new_location = b"cnumpy._core.multiarray\nscalar\n"
    assert new_location in data
    path = _write(
        tmp_path, "np1.pkl", data.replace(new_location, b"cnumpy.core.multiarray\nscalar\n")
    )
    value = sr.read_snapshot(path)["gain"]
    assert type(value) is np.float64 and value == 0.25


def test_object_dtype_is_refused(tmp_path):
    data = pickle.dumps({"gain": np.float64(0.25)}, protocol=3)
    assert data.count(b"X\x02\x00\x00\x00f8") == 1
    path = _write(tmp_path, "obj.pkl", data.replace(b"X\x02\x00\x00\x00f8", b"X\x02\x00\x00\x00O8"))
    with pytest.raises(UnsafePickleError, match="refusing numpy dtype"):
        sr.read_snapshot(path)


# --------------------------------------------------------------------------------------
# Hostile and broken inputs.
# --------------------------------------------------------------------------------------


def test_allow_list():
    assert "torch_utils.persistence._reconstruct_persistent_obj" in sr.ALLOWED_GLOBALS
    assert "numpy.core.multiarray.scalar" in sr.ALLOWED_GLOBALS
    for name in (
        "os.system",
        "posix.system",
        "builtins.eval",
        "builtins.getattr",
        "subprocess.Popen",
        "numpy._core.multiarray._reconstruct",
    ):
        assert name not in sr.ALLOWED_GLOBALS
    assert sr.ALLOWED_STORAGE_GLOBALS == {
        f"torch.{t}Storage"
        for t in (
            "Float",
            "Double",
            "Half",
            "BFloat16",
            "Long",
            "Int",
            "Short",
            "Char",
            "Byte",
            "Bool",
        )
    }


@pytest.mark.parametrize(
    "global_name, make_command",
    [
        ("os.system", lambda marker: f"touch {marker}"),
        ("builtins.eval", lambda marker: f"open({str(marker)!r}, 'w').close()"),
        ("builtins.exec", lambda marker: f"open({str(marker)!r}, 'w').close()"),
        ("subprocess.Popen", lambda marker: f"touch {marker}"),
    ],
)
def test_hostile_global_is_refused(tmp_path, global_name, make_command):
    marker = tmp_path / "pwned"
    payload = _call(_global(global_name), _str(make_command(marker)))
    path = _write(tmp_path, "evil.pkl", _top_dict("G_ema", payload))
    with pytest.raises(
        UnsafePickleError, match=f"refusing to load global '{global_name}' from .*evil.pkl"
    ):
        sr.load_network(path)
    assert not marker.exists()


def test_real_reduce_exploit_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            import os

            return os.system, (f"touch {marker}",)

    path = _write(tmp_path, "evil.pkl", pickle.dumps({"G_ema": Exploit()}, protocol=4))
    with pytest.raises(UnsafePickleError, match=r"refusing to load global '(posix|os)\.system'"):
        sr.read_snapshot(path)
    assert not marker.exists()


def test_hostile_global_inside_storage_bytes_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    inner = b"\x80\x02" + _call(_global("os.system"), _str(f"touch {marker}")) + b"."
    stream = _legacy_storage_stream("torch.FloatStorage", b"", 0, payload=inner)
    outer = _top_dict("G_ema", _call(_global("torch.storage._load_from_bytes"), _bytes(stream)))
    path = _write(tmp_path, "evil.pkl", outer)
    with pytest.raises(
        UnsafePickleError,
        match=r"refusing to load global 'os.system' from .*evil.pkl \(inside a torch storage",
    ):
        sr.load_network(path)
    assert not marker.exists()


def test_hostile_global_in_storage_type_is_refused(tmp_path):
    stream = _legacy_storage_stream("builtins.eval", b"", 0)
    path = _write(
        tmp_path,
        "evil.pkl",
        _top_dict("t", _call(_global("torch.storage._load_from_bytes"), _bytes(stream))),
    )
    with pytest.raises(UnsafePickleError, match="'builtins.eval'"):
        sr.read_snapshot(path)


def test_missing_file(tmp_path):
    with pytest.raises(SnapshotError, match="nope.pkl: no such file"):
        sr.load_network(tmp_path / "nope.pkl")


@needs_fixtures
def test_truncated_file(tmp_path):
    data = (FIXTURES / "tiny128.pkl").read_bytes()
    path = _write(tmp_path, "half.pkl", data[: len(data) // 2])
    with pytest.raises(SnapshotError, match="half.pkl: truncated or corrupt"):
        sr.load_network(path)


def test_random_bytes(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert data[0] != 0x80
    with pytest.raises(SnapshotError, match="random.bin: not a pickle file"):
        sr.load_network(_write(tmp_path, "random.bin", data))


def test_corrupt_body_after_valid_header(tmp_path):
    data = b"\x80\x04" + np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(
        SnapshotError, match="garbage.pkl: truncated or corrupt|garbage.pkl: refusing"
    ):
        sr.load_network(_write(tmp_path, "garbage.pkl", data))


def test_text_file(tmp_path):
    with pytest.raises(SnapshotError, match="notes.txt: not a pickle file"):
        sr.load_network(_write(tmp_path, "notes.txt", b"just some notes\nnot a pickle\n"))


def test_empty_file(tmp_path):
    with pytest.raises(SnapshotError, match="empty.pkl: not a pickle file"):
        sr.load_network(_write(tmp_path, "empty.pkl", b""))


def test_network_missing_or_none(tmp_path):
    path = _write(tmp_path, "g_none.pkl", pickle.dumps({"G": None}))
    with pytest.raises(
        SnapshotError, match=r"g_none.pkl: snapshot has no network 'G_ema'; it has: no networks"
    ):
        sr.load_network(path)
    with pytest.raises(
        SnapshotError, match=r"snapshot has no network 'G' \(entry is NoneType\)"
    ):
        sr.load_network(path, "G")


@needs_fixtures
def test_unknown_network_lists_the_networks_there():
    with pytest.raises(SnapshotError, match=r"no network 'G_ema '; it has: G, G_ema"):
        sr.load_network(FIXTURES / "tiny128.pkl", "G_ema ")


def test_top_level_not_a_dict(tmp_path):
    path = _write(tmp_path, "list.pkl", pickle.dumps([1, 2, 3]))
    with pytest.raises(SnapshotError, match="list.pkl: top-level object is a list"):
        sr.load_network(path)


def test_errors_are_one_line(tmp_path):
    path = _write(tmp_path, "list.pkl", pickle.dumps([1, 2, 3]))
    with pytest.raises(SnapshotError) as info:
        sr.load_network(path)
    assert "\n" not in str(info.value)
    assert issubclass(UnsafePickleError, SnapshotError)


def test_numpy_array_global_is_refused(tmp_path):
    path = _write(tmp_path, "arr.pkl", pickle.dumps({"a": np.zeros(2)}, protocol=4))
    with pytest.raises(UnsafePickleError, match="'numpy._core.multiarray._reconstruct'"):
        sr.read_snapshot(path)


def test_numpy_dtype_singleton_cannot_be_modified(tmp_path):
    data = pickle.dumps({"gain": np.float64(0.25)}, protocol=3)
    # copy=False and a big-endian state: with numpy.dtype itself this would try to change
    # the shared float64 dtype; the reader always builds a private copy.
    hostile = data.replace(b"f8q\x04\x89\x88\x87", b"f8q\x04\x89\x89\x87").replace(
        b"X\x01\x00\x00\x00<", b"X\x01\x00\x00\x00>"
    )
    assert hostile.count(b"\x89\x89\x87") == 1 and hostile.count(b"\x00\x00\x00>") == 1
    value = sr.read_snapshot(_write(tmp_path, "dtype.pkl", hostile))["gain"]
    assert value == np.frombuffer(np.float64(0.25).tobytes(), ">f8")[0]
    assert np.dtype("f8").isnative and np.float64(0.25).dtype.isnative


def test_setstate_on_allowed_function_is_refused(tmp_path):
    hostile = _global("torch._utils._rebuild_tensor_v2") + b"}" + _str("__defaults__") + b"Nsb"
    with pytest.raises(SnapshotError, match=r"b.pkl: refusing to set state on torch._utils"):
        sr.read_snapshot(_write(tmp_path, "b.pkl", _top_dict("f", hostile)))


def test_negative_stride_is_rejected(tmp_path):
    raw = np.zeros(4, "<f4").tobytes()
    path = _write(tmp_path, "t.pkl", _tensor_pickle("torch.FloatStorage", raw, 4, 3, (2,), (-1,)))
    with pytest.raises(SnapshotError, match="t.pkl: malformed tensor layout"):
        sr.read_snapshot(path)


def test_storage_with_wrong_element_count_is_rejected(tmp_path):
    raw = np.zeros(4, "<f4").tobytes()
    path = _write(
        tmp_path, "t.pkl", _tensor_pickle("torch.FloatStorage", raw[:8], 4, 0, (2,), (1,))
    )
    with pytest.raises(SnapshotError, match="t.pkl: truncated torch storage byte string"):
        sr.read_snapshot(path)


def _persistent_object_pickle(class_name: str, module_src: str) -> bytes:
    meta = {"type": "class", "version": 6, "module_src": module_src, "class_name": class_name}
    state = {"_parameters": {}, "_buffers": {}, "_modules": {}, "_init_kwargs": {"x": 1}}
    meta_bytes = pickle.dumps({**meta, "state": state}, protocol=2)[2:-1]  # no PROTO/STOP
    return _top_dict(
        "G_ema", _call(_global("torch_utils.persistence._reconstruct_persistent_obj"), meta_bytes)
    )


@pytest.mark.parametrize(
    "class_name, module_src, expected",
    [
        (
            "Generator",
            "# source omitted: training.networks_stylegan2",
            "training.networks_stylegan2.Generator",
        ),
        (
            "TriPlaneGenerator",
            "import torch\n...\nclass TriPlaneGenerator(torch.nn.Module):\n",
            sr.TRIPLANE_GENERATOR,
        ),
        (
            "Generator",
            "".join(
                f"class {n}(torch.nn.Module):\n    pass\n"
                for n in (
                    "FullyConnectedLayer",
                    "MappingNetwork",
                    "SynthesisInput",
                    "SynthesisLayer",
                    "SynthesisNetwork",
                    "Generator",
                )
            ),
            "training.networks_stylegan3.Generator",
        ),
        (
            "Generator",
            "".join(
                f"class {n}(torch.nn.Module):\n    pass\n"
                for n in (
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
                )
            ),
            "training.networks_stylegan2.Generator",
        ),
        ("MyNet", "class MyNet(torch.nn.Module): pass\n", "MyNet"),
    ],
)
def test_persistent_class_names(tmp_path, class_name, module_src, expected):
    marker = tmp_path / "pwned"
    if not module_src.startswith("# source omitted"):  # real source: must never run
        module_src += f"\nopen({str(marker)!r}, 'w').close()\n"
    snapshot = sr.read_snapshot(
        _write(tmp_path, "p.pkl", _persistent_object_pickle(class_name, module_src))
    )
    record = snapshot["G_ema"]
    assert isinstance(record, sr.ModuleRecord) and record.persistent and record.version == 6
    assert record.class_name == expected
    assert record.module_src == module_src
    assert not marker.exists()
