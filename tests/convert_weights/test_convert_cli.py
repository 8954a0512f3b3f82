"""Acceptance tests of the converter CLI `python -m convert_weights`.

Conversions whose CLI plumbing is not the point run in-process through
`convert_weights.__main__.main`; the hostile inputs and the torch-free run go through real
subprocesses. Generator *outputs* against the reference npz are tested in
tests/eg3d_flax/test_generator_parity.py; here the converted tensors are compared bitwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import pickle
import shlex
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shared_fixtures import EG3D_FIXTURES, REPO_ROOT, require_fixtures

FULL = EG3D_FIXTURES / "tiny128_full_snapshot.pkl"
TINY = EG3D_FIXTURES / "tiny128.pkl"
CHECK = EG3D_FIXTURES / "tiny128_full_snapshot_G_ema_check.npz"
ERROR_PREFIX = "convert_weights: error:"
# Neither PyTorch nor any EG3D code may be imported by the converter.
BLOCKED_MODULES = ("torch", "torch_utils", "dnnlib", "training")
# tiny128 sizes from the fixture README.
TINY_PARAMS, TINY_BUFFER_ELEMENTS, TINY_TENSORS = 1_708_048, 216_640, 177
# bfloat16 keeps 8 significant bits: unit roundoff 2**-9.
BF16_EPS = 2.0**-9


def cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def convert(*args) -> tuple[int, str, str]:
    """Runs the CLI entry point in-process; returns (exit code, stdout, stderr)."""
    from convert_weights.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def bitwise_equal(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def torch_layout_state_dict(generator_dir) -> dict[str, np.ndarray]:
    """The converted variables, loaded back and mapped to EG3D's state_dict layout."""
    import eg3d_flax
    from convert_weights import eg3d_keys

    return eg3d_keys.variables_to_state_dict(eg3d_flax.load_generator(generator_dir).variables)


def dir_snapshot(path) -> dict[str, bytes]:
    """relative path -> file bytes (directories as b'<dir>') of everything below `path`."""
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), path)] = b"<dir>"
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = f.read()
    return out


@pytest.fixture(scope="module")
def check_arrays():
    require_fixtures()
    with np.load(CHECK) as z:
        return dict(z)


@pytest.fixture(scope="module")
def full_converted(tmp_path_factory):
    """The full training snapshot converted twice: default network, and --network G."""
    require_fixtures()
    root = tmp_path_factory.mktemp("full_snapshot")
    runs = {}
    for name, extra in (("G_ema", ()), ("G", ("--network", "G"))):
        rc, stdout, stderr = convert(FULL, root / name, *extra)
        assert rc == 0, stderr
        runs[name] = {"dir": root / name, "stdout": stdout, "stderr": stderr}
    return runs


# ---------------------------------------------------------------------------------------
# The full training snapshot (G, D, G_ema, augment_pipe).
# ---------------------------------------------------------------------------------------


def test_default_network_is_g_ema_bitwise(full_converted, check_arrays):
    from convert_weights.snapshot_reader import load_network

    state = torch_layout_state_dict(full_converted["G_ema"]["dir"])
    g_ema_keys = [k for k in check_arrays if not k.startswith("G__")]
    assert len(g_ema_keys) == 5
    for key in g_ema_keys:
        torch_key = key.replace("__", ".")
        assert bitwise_equal(state[torch_key], check_arrays[key]), torch_key
        assert not np.array_equal(state[torch_key], check_arrays["G__" + key]), f"{torch_key} matches G"
    # The README: G_ema of the full snapshot equals tiny128.pkl's G_ema, so every tensor can be checked.
    reference = load_network(TINY).state_dict
    assert sorted(state) == sorted(reference) and len(state) == TINY_TENSORS
    assert all(bitwise_equal(state[k], v) for k, v in reference.items())


def test_network_g_option_converts_g_bitwise(full_converted, check_arrays):
    from convert_weights.snapshot_reader import load_network

    state = torch_layout_state_dict(full_converted["G"]["dir"])
    for key in (k for k in check_arrays if k.startswith("G__")):
        assert bitwise_equal(state[key[3:].replace("__", ".")], check_arrays[key]), key
    reference = load_network(FULL, "G").state_dict
    assert reference.pop("dataset_label_std").shape == (25,)
    assert sorted(state) == sorted(reference)
    assert all(bitwise_equal(state[k], v) for k, v in reference.items())


def test_generator_json_is_readable_and_complete(full_converted):
    import eg3d_flax

    text = (full_converted["G_ema"]["dir"] / "generator.json").read_text()
    assert text.count("\n") > 60 and '\n  "config": {\n' in text, "expected indented JSON, one key a line"
    doc = json.loads(text)
    assert doc["format_version"] == 1
    assert doc["config"] == eg3d_flax.preset("tiny128").to_dict()
    assert doc["params_dtype"] == ["float32"]
    meta = doc["metadata"]
    assert meta["source"] == str(FULL.resolve())
    assert meta["source_sha256"] == hashlib.sha256(FULL.read_bytes()).hexdigest()
    assert meta["network"] == "G_ema" and meta["params_dtype"] == "float32"
    assert (meta["num_tensors"], meta["num_parameters"], meta["num_buffer_elements"]) == (
        TINY_TENSORS, TINY_PARAMS, TINY_BUFFER_ELEMENTS)
    assert meta["skipped_keys"] == ["dataset_label_std"]
    kwargs = meta["eg3d_init_kwargs"]
    assert (kwargs["channel_base"], kwargs["channel_max"], kwargs["img_resolution"]) == (1024, 32, 128)
    assert kwargs["rendering_kwargs"]["superresolution_module"] == "training.superresolution.SuperresolutionHybrid2X"
    other = json.loads((full_converted["G"]["dir"] / "generator.json").read_text())["metadata"]
    assert other["network"] == "G" and other["source_sha256"] == meta["source_sha256"]


def test_progress_lines_and_json_summary(full_converted):
    run = full_converted["G_ema"]
    lines = run["stderr"].splitlines()
    assert [line[:5] for line in lines] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"], run["stderr"]
    assert "skipped ['dataset_label_std']" in lines[2]
    summary = json.loads(run["stdout"])
    assert summary["output"] == str(run["dir"].absolute())
    meta = json.loads((run["dir"] / "generator.json").read_text())["metadata"]
    for key in ("network", "params_dtype", "num_tensors", "num_parameters", "num_buffer_elements",
                "skipped_keys", "source_sha256"):
        assert summary[key] == meta[key], key


# ---------------------------------------------------------------------------------------
# No torch.
# ---------------------------------------------------------------------------------------

_TORCHLESS_RUNNER = f"""
import sys
BLOCKED = {BLOCKED_MODULES!r}
for name in BLOCKED:
    sys.modules[name] = None  # any `import torch` (or EG3D module) now raises ImportError
from convert_weights.__main__ import main
rc = main(sys.argv[1:])
leaked = sorted(m for m, v in sys.modules.items() if m.split('.')[0] in BLOCKED and v is not None)
if leaked:
    print('imported:', leaked, file=sys.stderr)
    rc = 3
sys.exit(rc)
"""


def test_cli_converts_with_torch_unimportable(tmp_path):
    require_fixtures()
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-c", _TORCHLESS_RUNNER, str(FULL), str(out)],
                            capture_output=True, text=True, env=cli_env(), cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [line[:5] for line in result.stderr.splitlines()] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    summary = json.loads(result.stdout)
    assert summary["network"] == "G_ema" and summary["num_tensors"] == TINY_TENSORS
    assert (out / "generator.json").is_file() and (out / "variables").is_dir()
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_torch_is_not_installed():
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed in this environment; CI installs none, and there this test "
                    "proves the test suite runs without it")
    assert importlib.util.find_spec("torch") is None


# ---------------------------------------------------------------------------------------
# Hostile inputs through the real CLI.
# ---------------------------------------------------------------------------------------


class _SystemCall:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _hostile_cases(inputs, marker) -> dict[str, tuple[list, str, bool]]:
    """name -> ([INPUT, extra options], expected part of the error line, whether OUTPUT_DIR exists before)."""
    evil = inputs / "evil.pkl"
    evil.write_bytes(pickle.dumps({"G_ema": _SystemCall(f"touch {shlex.quote(str(marker))}")}, protocol=4))
    truncated = inputs / "truncated.pkl"
    with open(FULL, "rb") as f:
        truncated.write_bytes(f.read(FULL.stat().st_size * 2 // 5))
    text = inputs / "notes.pkl"
    text.write_text("this is not a pickle\n")
    empty = inputs / "empty.pkl"
    empty.write_bytes(b"")
    no_g_ema = inputs / "no_g_ema.pkl"
    no_g_ema.write_bytes(pickle.dumps({"training_set_kwargs": {}, "G": None, "D": None}, protocol=4))
    return {
        "os_system_payload": ([evil], "'posix.system'", False),
        "os_system_payload_overwrite": ([evil, "--overwrite"], "'posix.system'", True),
        "truncated_file": ([truncated, "--quiet"], "truncated", False),
        "not_a_pickle": ([text], "not a pickle", False),
        "empty_file": ([empty, "--quiet"], "not a pickle", False),
        "missing_file": ([inputs / "missing.pkl"], "no such file", False),
        "network_is_none": ([TINY, "--network", "D"], "no network 'D'", False),
        "network_is_discriminator": ([FULL, "--network", "D", "--quiet"], "DualDiscriminator", False),
        "dict_without_g_ema": ([no_g_ema], "no network 'G_ema'", False),
        "output_exists": ([TINY], "already exists", True),
        "overwrite_non_generator_dir": ([TINY, "--overwrite"], "not a generator directory", True),
        "bad_dtype": ([TINY, "--dtype", "float16"], "invalid choice", False),
    }


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory):
    """Every hostile case run through `python -m convert_weights`, all processes at once."""
    require_fixtures()
    root = tmp_path_factory.mktemp("hostile")
    inputs = root / "inputs"
    inputs.mkdir()
    marker = root / "PWNED"
    cases = _hostile_cases(inputs, marker)
    procs = {}
    for name, (args, _, pre_existing) in cases.items():
        case_dir = root / name
        case_dir.mkdir()
        out = case_dir / "out"
        if pre_existing:
            out.mkdir()
            (out / "keep.txt").write_text("user data\n")
            if "overwrite" in name and "non_generator" not in name:
                (out / "generator.json").write_text('{"format_version": 1}\n')
        before = dir_snapshot(case_dir)
        argv = [sys.executable, "-m", "convert_weights", str(args[0]), str(out), *map(str, args[1:])]
        procs[name] = (subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=cli_env(), cwd=case_dir), case_dir, before)
    results = {}
    for name, (proc, case_dir, before) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        results[name] = dict(rc=proc.returncode, stdout=stdout, stderr=stderr, before=before,
                             after=dir_snapshot(case_dir), quiet="--quiet" in map(str, cases[name][0]))
    return results, {name: case[1] for name, case in cases.items()}, marker


HOSTILE_CASES = ["os_system_payload", "os_system_payload_overwrite", "truncated_file", "not_a_pickle",
                 "empty_file", "missing_file", "network_is_none", "network_is_discriminator",
                 "dict_without_g_ema", "output_exists", "overwrite_non_generator_dir", "bad_dtype"]


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_hostile_input_fails_cleanly(case, hostile_runs):
    results, expected, marker = hostile_runs
    run = results[case]
    assert sorted(results) == sorted(HOSTILE_CASES)
    assert run["rc"] == 2, run["stderr"]
    errors = [line for line in run["stderr"].splitlines() if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1, run["stderr"]
    assert expected[case] in errors[0], errors[0]
    assert "Traceback" not in run["stderr"] and run["stdout"] == ""
    if run["quiet"]:
        assert run["stderr"].splitlines() == errors
    # No output directory, no `.out.tmp-*` sibling, and an existing directory exactly as it was.
    assert run["after"] == run["before"]
    assert not marker.exists(), "the pickle's os.system payload ran"


# ---------------------------------------------------------------------------------------
# --dtype bfloat16 and --overwrite.
# ---------------------------------------------------------------------------------------


def test_bfloat16_round_trip(tmp_path, full_converted):
    import eg3d_flax
    from convert_weights.snapshot_reader import load_network
    from convert_weights import eg3d_keys

    out = tmp_path / "bf16"
    rc, stdout, stderr = convert(TINY, out, "--dtype", "bfloat16", "--quiet")
    assert rc == 0 and stderr == "", stderr
    assert json.loads(stdout)["params_dtype"] == "bfloat16"
    doc = json.loads((out / "generator.json").read_text())
    assert doc["params_dtype"] == ["bfloat16"] and doc["metadata"]["params_dtype"] == "bfloat16"

    def stored_bytes(path):
        return sum(f.stat().st_size for f in (path / "variables").rglob("*") if f.is_file())

    # Parameters stored as bf16: about half the bytes of the float32 directory (buffers stay float32).
    assert stored_bytes(out) < 0.6 * stored_bytes(full_converted["G_ema"]["dir"])

    as_stored = eg3d_flax.load_generator(out, dtype=jnp.bfloat16)
    assert {x.dtype for x in jax.tree_util.tree_leaves(as_stored.variables["params"])} == {jnp.dtype("bfloat16")}
    assert {x.dtype for x in jax.tree_util.tree_leaves(as_stored.variables["buffers"])} == {jnp.dtype("float32")}
    state = eg3d_keys.variables_to_state_dict(as_stored.variables)
    for key, original in load_network(TINY).state_dict.items():
        is_buffer = key.rsplit(".", 1)[-1] in eg3d_keys.BUFFER_NAMES
        expected = original if is_buffer else original.astype(jnp.bfloat16).astype(np.float32)
        assert bitwise_equal(state[key], expected), key

    # Loads (parameters upcast to float32) and runs; outputs match the float32 reference to bf16 precision.
    G = eg3d_flax.load_generator(out)
    with np.load(EG3D_FIXTURES / "tiny128_reference.npz") as z:
        ref = dict(z)

    def rel_l2(a, b):
        return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))

    ws_error = rel_l2(G.mapping(ref["z"], ref["c"]), ref["ws"])
    out_images = G.synthesis(ref["ws"], ref["c"], noise_mode="const", deterministic=True)
    image_error = rel_l2(np.transpose(np.asarray(out_images["image"]), (0, 3, 1, 2)), ref["image"])
    depth_error = rel_l2(np.transpose(np.asarray(out_images["image_depth"]), (0, 3, 1, 2)), ref["image_depth"])
    # Measured: ws 2.9e-3, image 3.4e-3, depth 1e-4 (rounding every weight by up to BF16_EPS).
    # Bounds: a few units of bf16 roundoff above, and clearly above float32 error below.
    assert 1e-4 < ws_error < 8 * BF16_EPS
    assert 1e-4 < image_error < 8 * BF16_EPS
    assert depth_error < BF16_EPS
    assert np.isfinite(np.asarray(out_images["image"])).all()


def test_overwrite_replaces_a_valid_directory_atomically(tmp_path, full_converted, check_arrays):
    out = tmp_path / "out"
    shutil.copytree(full_converted["G_ema"]["dir"], out)
    rc, stdout, stderr = convert(FULL, out, "--network", "G", "--overwrite", "--quiet")
    assert rc == 0, stderr
    assert json.loads((out / "generator.json").read_text())["metadata"]["network"] == "G"
    state = torch_layout_state_dict(out)
    for key in (k for k in check_arrays if k.startswith("G__")):
        assert bitwise_equal(state[key[3:].replace("__", ".")], check_arrays[key]), key
    assert sorted(os.listdir(tmp_path)) == ["out"], "temporary or old siblings left behind"


class _Unserializable:
    def tolist(self):
        raise RuntimeError("metadata cannot be written")


@pytest.mark.parametrize("atomic_exchange", [True, False], ids=["renameat2", "two-renames"])
def test_interrupted_overwrite_leaves_old_directory(tmp_path, full_converted, monkeypatch, atomic_exchange):
    """write_generator_dir: a failure after the variables were written leaves the old directory as it
    was and no temporary sibling; a successful overwrite leaves nothing else behind (both with the
    atomic renameat2 exchange and with the two-rename fallback of other platforms)."""
    import eg3d_flax
    from eg3d_flax import checkpoint
    from hfagp_common import atomic

    if not atomic_exchange:
        monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    out = tmp_path / "out"
    shutil.copytree(full_converted["G_ema"]["dir"], out)
    before = dir_snapshot(out)
    G = eg3d_flax.load_generator(out)
    with pytest.raises(RuntimeError, match="metadata cannot be written"):
        checkpoint.write_generator_dir(out, G.config, G.variables, metadata={"x": _Unserializable()},
                                       overwrite=True)
    assert dir_snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == ["out"]
    checkpoint.write_generator_dir(out, G.config, G.variables, metadata={"note": "rewritten"}, overwrite=True)
    assert json.loads((out / "generator.json").read_text())["metadata"] == {"note": "rewritten"}
    assert sorted(os.listdir(tmp_path)) == ["out"]
