"""benchmarks/device_check.py: the dry run end to end (CPU, tiny configs), its targets and the bundle helper."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared_fixtures import EG3D_FIXTURES, REPO_ROOT, SHARED, require_fixtures

BENCHMARKS = REPO_ROOT / "benchmarks"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def device_check():
    return _load(BENCHMARKS / "device_check.py", "bench_device_check")


@pytest.fixture(scope="module")
def bundle():
    return _load(REPO_ROOT / "scripts" / "device_bundle.py", "device_bundle")


def _step(stage, dtype, precision, median, pipelined=None, peak=10 * 2**30, recompiled=False):
    return {"config": "ffhq512-128", "stage": stage, "compute_dtype": dtype, "precision": precision,
            "step_s_median": median, "step_s_pipelined": pipelined, "device_peak_bytes": peak,
            "recompiled_after_first_step": recompiled, "status": "ok"}


def _summary(steps, torch=(), parity=None, loader=None):
    return {"parts": {"parity": {"status": "ok" if parity and not parity["skipped"] else "failed"}},
            "parity": parity, "steps": list(steps), "torch": list(torch), "loader": loader}


def test_targets_verdicts(device_check):
    plan = device_check.gpu_plan()
    steps = [_step(2, "float32", "highest", 0.040), _step(2, "bfloat16", "tf32", 0.030, pipelined=0.024),
             _step(1, "float32", "highest", 0.027), _step(1, "bfloat16", "tf32", 0.020, pipelined=0.016)]
    torch = [{"stage": 2, "requested_sr": "float32", "requested_tf32": "off", "step_s_median": 0.050,
              "cuda_kernels": "built", "status": "ok"}]
    parity = {"tests": 20, "failures": 0, "errors": 0, "skipped": 0}
    verdicts = {t["target"].split(" (CUDA")[0]: t["verdict"] for t in device_check.targets(
        _summary(steps, torch, parity, {"frames_per_s_workers4": 500.0}), plan)}
    assert verdicts == {
        "parity tests pass on the device at 'highest' with zero skips": "met",
        "ffhq512-128 stage 2 float32 ('highest') at least as fast as PyTorch float32 TF32-off": "met",
        "ffhq512-128 stage 2 bfloat16 at most 25 ms/step": "met",             # the pipelined figure counts
        "stage 1 about 2/3 of stage 2": "met",                                # 0.68 and 0.67
        "peak device memory within 16 GiB at batch 2 (stage 2)": "met",
        "no recompilation after the first step": "met",
        "input pipeline never the bottleneck": "met"}                         # 500 frames/s >= 2 / 16 ms
    slow = [_step(2, "float32", "highest", 0.060, peak=20 * 2**30, recompiled=True),
            _step(2, "bfloat16", "tf32", 0.030), _step(1, "float32", "highest", 0.058)]
    skipped = {"tests": 20, "failures": 0, "errors": 0, "skipped": 1}
    verdicts = {t["target"].split(" (CUDA")[0]: t["verdict"] for t in device_check.targets(
        _summary(slow, torch, skipped), plan)}
    assert verdicts == {
        "parity tests pass on the device at 'highest' with zero skips": "NOT met",
        "ffhq512-128 stage 2 float32 ('highest') at least as fast as PyTorch float32 TF32-off": "NOT met",
        "ffhq512-128 stage 2 bfloat16 at most 25 ms/step": "NOT met",
        "stage 1 about 2/3 of stage 2": "NOT met",
        "peak device memory within 16 GiB at batch 2 (stage 2)": "NOT met",
        "no recompilation after the first step": "NOT met",
        "input pipeline never the bottleneck": "not measured"}


def test_a_part_that_outlives_its_timeout_is_killed(device_check, tmp_path):
    runner = device_check.Runner(tmp_path, budget_s=60, env={})
    r = runner.run("sleeper", [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"],
                   timeout_s=6)
    assert r["timed_out"] and r["seconds"] < 30
    assert "started" in (tmp_path / "device_check.log").read_text()
    runner.budget_s = 0
    assert runner.run("late", [sys.executable, "-c", "pass"], timeout_s=10)["skipped"] == "out of time"


@pytest.mark.slow
def test_dry_run_runs_every_part_on_cpu(tmp_path):
    """The whole check on tiny configs: every part passes (torch: skipped without it), one summary."""
    require_fixtures(EG3D_FIXTURES / "tiny128.pkl")
    out = tmp_path / "check"
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "device_check.py"), "--dry-run", "--out", str(out),
                           "--shared", str(SHARED)], capture_output=True, text=True, timeout=3900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["device_check.log", "parity-junit.xml", "summary.json",
                                                     "summary.md"]
    s = json.loads((out / "summary.json").read_text())
    torch_ok = importlib.util.find_spec("torch") is not None
    statuses = {name: p["status"] for name, p in s["parts"].items()}
    assert statuses == {"env": "ok", "parity": "ok", "steps": "ok", "render": "ok",
                        "torch": "ok" if torch_ok else "skipped", "precision": "ok", "loader": "ok"}
    assert s["parity"]["tests"] == 1 and s["parity"]["skipped"] == 0
    assert [(r["stage"], r["compute_dtype"], r["precision"]) for r in s["steps"]] == [
        (2, "float32", "highest"), (1, "bfloat16", "tf32")]
    for r in s["steps"]:
        assert r["status"] == "ok" and r["step_s_median"] > 0 and r["device_peak_bytes"] > 0
        assert r["recompiled_after_first_step"] is False and r["conv_impl"] == "cpu_gemm"
    assert [(r["compute_dtype"], r["precision"], r["status"]) for r in s["render"]] == [("float32", "highest", "ok")]
    assert [(r["generator"], r["precision"], r["within_parity_tolerance"]) for r in s["precision"]] == [
        ("tiny128", "tf32", True)]  # XLA:CPU ignores the precision: float32 parity
    assert s["loader"]["frames_per_s_workers0"] > 0
    md = (out / "summary.md").read_text()
    assert "## Targets" in md and "| tiny128 | 2 | float32 | highest |" in md


def test_bundle_copies_the_fixtures_and_the_eg3d_code(bundle, tmp_path, capsys):
    shared = tmp_path / "shared"
    for kind, names in bundle.FIXTURES.items():
        (shared / "fixtures" / kind).mkdir(parents=True)
        for n in names:
            (shared / "fixtures" / kind / n).write_bytes(b"x" * 100)
    (shared / "fixtures" / "eg3d" / "tiny128_full_snapshot.pkl").write_bytes(b"big")  # stays behind
    clone = tmp_path / "clone"
    for f in ("eg3d/training/triplane.py", "eg3d/torch_utils/ops/bias_act.cu", "eg3d/dnnlib/util.py",
              "eg3d/camera_utils.py", "eg3d/docs/teaser.jpeg", "LICENSE.txt"):
        (clone / f).parent.mkdir(parents=True, exist_ok=True)
        (clone / f).write_text("code")
    out = tmp_path / "bundle"
    assert bundle.main(["--out", str(out), "--shared", str(shared), "--eg3d", str(clone)]) == 0
    assert not (out / "shared" / "fixtures" / "eg3d" / "tiny128_full_snapshot.pkl").exists()
    assert (out / "shared" / "fixtures" / "lpips" / "lpips_alex_weights.npz").is_file()
    copied = sorted(str(p.relative_to(out / "eg3d")) for p in (out / "eg3d").rglob("*") if p.is_file())
    assert copied == ["LICENSE.txt", "camera_utils.py", "dnnlib/util.py", "torch_utils/ops/bias_act.cu",
                      "training/triplane.py"]
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["total_bytes"] == manifest["working_tree_bytes"] + sum(manifest["sizes_bytes"].values())
    assert "device_check.py --out $OUT" in capsys.readouterr().out
    (shared / "fixtures" / "eg3d" / "small512.pkl").unlink()
    assert bundle.main(["--out", str(out), "--shared", str(shared)]) == 2
    assert capsys.readouterr().err.strip().endswith("small512.pkl")
