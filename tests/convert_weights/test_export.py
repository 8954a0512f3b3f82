"""Tests of `python -m convert_weights.export` and the torch zip writer/reader (no torch needed).

Whether real torch loads the files is not tested here (torch is not installed). The stand-ins:
the file layout and pickle are checked against what torch's serialization code writes and what
its `weights_only=True` unpickler accepts (opcodes and globals listed below), and the contents
are read back with the package's own restricted reader and compared bitwise.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import json
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

from shared_fixtures import EG3D_FIXTURES, REPO_ROOT
from convert_weights import torch_zip
from convert_weights.torch_zip import TorchZipError, read_torch_zip_state_dict, torch_zip_bytes

ERROR_PREFIX = "convert_weights.export: error:"
from convert_weights.unpickler import UnsafePickleError
# Opcodes that torch/_weights_only_unpickler.py (torch 2.x) implements; anything else is refused.
WEIGHTS_ONLY_OPCODES = {
    "PROTO", "STOP", "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS",
    "MARK", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE",
    "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "BININT", "BININT1", "BININT2", "BINFLOAT", "BINUNICODE",
    "SHORT_BINSTRING", "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT", "LONG1",
}


def bitwise_equal(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def make_zip(path, entries: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def storage_zip_entries(data_pkl: bytes, storages: dict[str, bytes]) -> dict[str, bytes]:
    entries = {"archive/data.pkl": data_pkl, "archive/byteorder": b"little", "archive/version": b"3\n"}
    entries.update({f"archive/data/{k}": v for k, v in storages.items()})
    return entries


@pytest.fixture(scope="module")
def exported(converted_dirs, tmp_path_factory):
    """tiny128, converted from its pickle and exported through the CLI entry point."""
    from convert_weights.export import main

    out = tmp_path_factory.mktemp("export") / "tiny128_G_ema.pth"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main([str(converted_dirs["tiny128"]), str(out)])
    assert rc == 0, stderr.getvalue()
    return {"path": out, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "dir": converted_dirs["tiny128"]}


def test_export_round_trip_is_bitwise(exported):
    from convert_weights.snapshot_reader import load_network

    state = read_torch_zip_state_dict(exported["path"])
    assert isinstance(state, collections.OrderedDict)
    original = load_network(EG3D_FIXTURES / "tiny128.pkl").state_dict  # pickle -> Flax -> .pth is lossless
    assert sorted(state) == sorted(original) and len(state) == 177
    for key, value in original.items():
        assert bitwise_equal(state[key], value), key
    assert {v.dtype for v in state.values()} == {np.dtype("float32")}


def test_export_summary_and_progress(exported):
    summary = json.loads(exported["stdout"])
    data = exported["path"].read_bytes()
    assert summary["output"] == str(exported["path"]) and summary["bytes"] == len(data)
    assert summary["sha256"] == hashlib.sha256(data).hexdigest()
    assert summary["num_tensors"] == 177 and summary["num_elements"] == 1_708_048 + 216_640
    assert [line[:5] for line in exported["stderr"].splitlines()] == ["[1/2]", "[2/2]"]
    assert sorted(os.listdir(exported["path"].parent)) == [exported["path"].name]


def test_exported_file_has_torch_save_layout(exported):
    with zipfile.ZipFile(exported["path"]) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert all(n.startswith("archive/") for n in names)
        assert names[0] == "archive/data.pkl"
        assert zf.read("archive/version") == b"3\n" and zf.read("archive/byteorder") == b"little"
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        data_pkl = zf.read("archive/data.pkl")
        storages = {n[len("archive/data/"):]: zf.getinfo(n).file_size for n in names if n.startswith("archive/data/")}
    assert len(storages) == 177
    raw = exported["path"].read_bytes()
    for info in infos:  # data of every entry starts on a 64-byte boundary, as torch's writer does
        name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
        assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename
    assert data_pkl[:2] == b"\x80\x02"  # protocol 2, torch.save's default
    ops = list(pickletools.genops(data_pkl))
    assert {op.name for op, _, _ in ops} <= WEIGHTS_ONLY_OPCODES
    globals_used = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
    assert globals_used == {"collections OrderedDict", "torch._utils _rebuild_tensor_v2", "torch FloatStorage"}
    assert sum(op.name == "BINPERSID" for op, _, _ in ops) == 177
    state = read_torch_zip_state_dict(exported["path"])
    assert sorted(storages.values()) == sorted(v.nbytes for v in state.values())


def test_writer_round_trips_dtypes_and_layouts(tmp_path):
    rng = np.random.default_rng(0)
    state = collections.OrderedDict(
        scalar=np.array(0.1875, np.float32),
        transposed=rng.standard_normal((3, 5)).astype(np.float32).T,  # not C-contiguous
        conv=rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        empty=np.zeros((0, 3), np.float32),
        double=rng.standard_normal(4),
        half=rng.standard_normal(4).astype(np.float16),
        bf16=rng.standard_normal(4).astype(jnp.bfloat16),
        long=np.arange(-3, 3, dtype=np.int64),
        big_endian=np.arange(6, dtype=">f4").reshape(2, 3),
        mask=np.array([True, False, True]),
    )
    path = tmp_path / "x.pth"
    torch_zip.write_torch_zip_state_dict(state, path)
    back = read_torch_zip_state_dict(path)
    assert list(back) == list(state)
    for key, value in state.items():
        expected = np.asarray(value)
        if key == "bf16":  # numpy has no bfloat16: the reader decodes it exactly to float32
            expected = expected.astype(np.float32)
        elif key == "big_endian":
            expected = expected.astype("<f4")
        assert bitwise_equal(back[key], np.array(expected, order="C")), key
    with pytest.raises(TorchZipError, match="cannot store a complex64"):
        torch_zip_bytes({"c": np.zeros(2, np.complex64)})


class _SystemCall:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_reader_refuses_code_and_malformed_files(tmp_path):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pth"
    make_zip(evil, storage_zip_entries(pickle.dumps(_SystemCall(f"touch '{marker}'"), protocol=2), {}))
    with pytest.raises(UnsafePickleError, match="posix.system"):
        read_torch_zip_state_dict(evil)
    assert not marker.exists()

    good = torch_zip_bytes({"w": np.arange(4, dtype=np.float32)})
    cases = {
        "not_a_zip.pth": (b"\x80\x02}q\x00.", "not a torch zip checkpoint"),
        "truncated.pth": (good[: len(good) // 2], "not a torch zip checkpoint"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(TorchZipError, match=message):
            read_torch_zip_state_dict(tmp_path / name)
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    broken = {
        "short_storage": ({**entries, "archive/data/0": entries["archive/data/0"][:8]}, "has 8 bytes, expected 16"),
        "no_version": ({k: v for k, v in entries.items() if k != "archive/version"}, "missing entry"),
        "flat": ({k.split("/", 1)[1]: v for k, v in entries.items()}, "one top-level folder"),
        "not_a_dict": (storage_zip_entries(pickle.dumps([1, 2], protocol=2), {}), "does not hold a dict"),
        "bad_version": ({**entries, "archive/version": b"99\n"}, "unsupported serialization version"),
    }
    for name, (zip_entries, message) in broken.items():
        make_zip(tmp_path / f"{name}.pth", zip_entries)
        with pytest.raises(TorchZipError, match=message):
            read_torch_zip_state_dict(tmp_path / f"{name}.pth")


def test_export_errors_are_one_line(tmp_path, exported):
    """Through the real module entry point: a missing generator directory and an existing output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    existing = tmp_path / "existing.pth"
    existing.write_bytes(b"keep me")
    runs = {
        "no such generator directory": [str(tmp_path / "missing_dir"), str(tmp_path / "a.pth")],
        "already exists": [str(exported["dir"]), str(existing)],
    }
    procs = {msg: subprocess.Popen([sys.executable, "-m", "convert_weights.export", *args], cwd=tmp_path, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for msg, args in runs.items()}
    for message, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        errors = [line for line in stderr.splitlines() if line.startswith(ERROR_PREFIX)]
        assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], stderr
        assert stdout == "" and "Traceback" not in stderr
    assert sorted(os.listdir(tmp_path)) == ["existing.pth"] and existing.read_bytes() == b"keep me"


def test_export_of_a_non_generator_directory_fails_without_output(tmp_path, capsys):
    from convert_weights.export import main

    (tmp_path / "not_a_generator").mkdir()
    assert main([str(tmp_path / "not_a_generator"), str(tmp_path / "out.pth"), "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(ERROR_PREFIX) and "not a generator directory" in err[0]
    assert sorted(os.listdir(tmp_path)) == ["not_a_generator"]
