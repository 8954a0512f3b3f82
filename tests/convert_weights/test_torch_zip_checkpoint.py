"""convert_weights.torch_zip.read_torch_zip_checkpoint: nested training checkpoints, argparse.Namespace as an
inert record, everything else refused (the official HFA-GP checkpoint itself: tests/hfagp/test_from_official.py)."""

from __future__ import annotations

import argparse
import os
import pickle
import zipfile

import numpy as np
import pytest

from convert_weights.torch_zip import (TorchNamespace, TorchZipError, read_torch_zip_checkpoint,
                                       read_torch_zip_state_dict, torch_zip_bytes)
from convert_weights.unpickler import UnsafePickleError


def _write(path, obj) -> None:
    """A torch-style zip whose data.pkl is `obj` pickled (protocol 2, as torch.save), no tensors."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(obj, protocol=2))
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")


def test_nested_values_and_a_namespace(tmp_path):
    args = argparse.Namespace(iter=800000, lr=3e-4, exp_name="v1", resume_ckpt=None, betas=(0.9, 0.999))
    _write(tmp_path / "a.pt", {"args": args, "w_optim": {"state": {}, "param_groups": [{"lr": 3e-4, "params": [0]}]}})
    ckpt = read_torch_zip_checkpoint(tmp_path / "a.pt")
    assert isinstance(ckpt["args"], TorchNamespace)
    assert ckpt["args"].iter == 800000 and ckpt["args"].betas == (0.9, 0.999) and ckpt["args"].resume_ckpt is None
    assert ckpt["w_optim"]["param_groups"][0]["params"] == [0]
    with pytest.raises(UnsafePickleError, match="argparse.Namespace"):  # not in a state dict
        read_torch_zip_state_dict(tmp_path / "a.pt")


def test_tensors_inside_a_checkpoint(tmp_path):
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    path = tmp_path / "s.pt"
    path.write_bytes(torch_zip_bytes(state))
    np.testing.assert_array_equal(read_torch_zip_checkpoint(path)["w"], state["w"])


def test_namespaces_with_objects_and_other_globals_are_refused(tmp_path):
    _write(tmp_path / "dict.pt", {"args": argparse.Namespace(x={"a": 1})})
    with pytest.raises(TorchZipError, match="Namespace"):
        read_torch_zip_checkpoint(tmp_path / "dict.pt")
    _write(tmp_path / "set.pt", {"args": argparse.Namespace(x={1, 2})})
    with pytest.raises(UnsafePickleError, match="set"):
        read_torch_zip_checkpoint(tmp_path / "set.pt")

    class Evil:
        def __reduce__(self):
            return os.system, ("true",)

    _write(tmp_path / "evil.pt", {"args": Evil()})
    with pytest.raises(UnsafePickleError, match="os.system|posix.system"):
        read_torch_zip_checkpoint(tmp_path / "evil.pt")
    _write(tmp_path / "ns.pt", argparse.Namespace(x=1))
    with pytest.raises(TorchZipError, match="does not hold a dict"):
        read_torch_zip_checkpoint(tmp_path / "ns.pt")
