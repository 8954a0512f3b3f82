"""The PyTorch-baseline plumbing of benchmarks/step_throughput.py and benchmarks/torch_step.py (no torch needed)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def step_throughput():
    return _load("step_throughput")


@pytest.fixture(scope="module")
def torch_step():
    return _load("torch_step")


def _fake_measure(config_name, batch, stage, steps, settings, conv_gflops=None, pipelined_steps=0, rows_before=0):
    result = {"config": config_name, "encoder": settings.encoder, "stage": stage, "batch": batch, "compile_s": 1.0,
              "compute_dtype": settings.compute_dtype, "precision": settings.precision,
              "step_s_median": 0.5, "step_s_min": 0.4, "step_s_max": 0.6, "flops_per_step": 2e9,
              "flop_floor_s": 2e9 / (conv_gflops * 1e9), "params_optimised": 10}
    return result, {"config": config_name, "init_kwargs": {}, "labels": []}


@pytest.fixture
def fast_jax(step_throughput, monkeypatch):
    """Replaces the JAX measurements (the slow part) so only the CLI flow runs."""
    monkeypatch.setattr(step_throughput, "measure", _fake_measure)
    monkeypatch.setattr(step_throughput, "conv_rate_gflops", lambda **_: 50.0)


def test_no_torch_path_skips_and_still_reports_jax(step_throughput, fast_jax, capsys, tmp_path):
    out = tmp_path / "bench.json"
    affinity = os.sched_getaffinity(0)
    assert step_throughput.main(["--configs", "tiny128", "--stages", "1", "--precision", "tf32", "--out", str(out)]) == 0
    assert os.sched_getaffinity(0) == affinity  # no --threads: no pinning
    captured = capsys.readouterr()
    assert "PyTorch baseline: skipped: no --torch-eg3d given" in captured.err
    results = json.loads(out.read_text())
    assert [(r["config"], r["stage"], r["torch_skipped"], r["precision"]) for r in results] == [
        ("tiny128", 1, "no --torch-eg3d given", "tf32")]
    assert "precision: tf32: float32 matmuls/convolutions TF32" in captured.err
    table_row = [ln for ln in captured.out.splitlines() if ln.startswith("| tiny128 | 1 |")]
    assert len(table_row) == 1 and "0.500" in table_row[0] and "0.04" in table_row[0]  # JAX step and floor


def test_not_an_eg3d_clone_skips_with_one_line(step_throughput, fast_jax, capsys, tmp_path):
    assert step_throughput.main(["--configs", "tiny128", "--stages", "2", "--torch-eg3d", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("PyTorch baseline:")]
    assert lines == [f"PyTorch baseline: skipped: {tmp_path} is not a clone of NVlabs/eg3d "
                     "(no training/triplane.py in it or in its eg3d/ folder)"]


def test_torch_step_rejects_non_clone(torch_step, capsys, tmp_path):
    assert torch_step.main([str(tmp_path / "missing"), "--config", "tiny128"]) == torch_step.SKIP_EXIT
    assert "is not a directory" in capsys.readouterr().err
    assert torch_step.main([str(tmp_path), "--config", "tiny128"]) == torch_step.SKIP_EXIT
    assert "is not a clone of NVlabs/eg3d" in capsys.readouterr().err


def test_torch_step_names_missing_parts_of_a_partial_clone(torch_step, capsys, tmp_path):
    (tmp_path / "eg3d" / "training").mkdir(parents=True)
    (tmp_path / "eg3d" / "training" / "triplane.py").write_text("")
    assert torch_step.main([str(tmp_path), "--check"]) == torch_step.SKIP_EXIT
    err = capsys.readouterr().err
    assert err.startswith("skipped: ") and "torch_utils/ops/bias_act.py" in err and "dnnlib/util.py" in err


def test_interpreter_without_torch_is_a_skip(step_throughput, tmp_path):
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is importable here")
    clone = tmp_path / "eg3d"
    for marker in ("training/triplane.py", "torch_utils/ops/bias_act.py", "dnnlib/util.py"):
        (clone / marker).parent.mkdir(parents=True, exist_ok=True)
        (clone / marker).write_text("")
    ok, msg = step_throughput.torch_preflight(str(tmp_path), sys.executable)
    assert not ok and msg.startswith(f"torch is not importable by {sys.executable}")


def test_missing_interpreter_is_a_skip(step_throughput, tmp_path):
    ok, msg = step_throughput.torch_preflight(str(tmp_path), str(tmp_path / "no-python"))
    assert not ok and "cannot run --torch-python" in msg


def test_ratio_floor_and_target_with_a_torch_result(step_throughput, fast_jax, monkeypatch, capsys, tmp_path):
    calls = []

    def fake_run_torch(eg3d_path, python, spec, *, batch, stage, steps, encoder, threads, conv_rate, options):
        calls.append((spec["config"], stage, threads, conv_rate, options))
        return {"step_s_median": 2.5 if stage == 1 else 1.5, "step_s_min": 1.0, "step_s_max": 3.0,
                "flops_per_step_counted": 5e9, "params_optimised": 10}

    monkeypatch.setattr(step_throughput, "torch_preflight", lambda path, python: (True, "ok: torch"))
    monkeypatch.setattr(step_throughput, "run_torch", fake_run_torch)
    out = tmp_path / "bench.json"
    argv = ["--configs", "tiny128", "--torch-eg3d", str(tmp_path), "--out", str(out), "--steps", "3"]
    assert step_throughput.main(argv) == 0
    cpu_fp32 = {"device": "cpu", "tf32": "off", "sr": "float32"}  # the counterpart of a CPU float32 'highest' row
    assert calls == [("tiny128", 1, None, True, cpu_fp32), ("tiny128", 2, None, False, cpu_fp32)]
    results = json.loads(out.read_text())
    assert [r["speedup_vs_torch"] for r in results] == [5.0, 3.0]
    assert results[0]["torch"]["flop_floor_s"] == pytest.approx(0.1)
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| tiny128 |")]
    assert "5.00x | 4.0x: met |" in rows[0] and "3.00x | 4.0x: NOT met |" in rows[1]


def test_render_throughput_reports_images_per_second(tmp_path, capsys):
    """The rendering benchmark runs end to end on the tiny config: one entry per batch size, no recompiles."""
    render_throughput = _load("render_throughput")
    out = tmp_path / "render.json"
    assert render_throughput.main(["--configs", "tiny128", "--batches", "1,2", "--reps", "1", "--precision", "tf32",
                                   "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r["batch"] for r in results] == [1, 2]
    for r in results:
        assert r["img_resolution"] == 128 and r["finite"] and not r["recompiled"]
        assert r["images_per_s"] > 0 and r["flops_per_batch"] > 0
        assert r["memory_analysis"]["temp_size_in_bytes"] > 0
        assert r["precision"] == "tf32" and r["device_peak_bytes"] > 0  # CPU: XLA's analysis
        assert r["device_memory_source"].startswith("xla_memory_analysis")
    captured = capsys.readouterr()
    assert "| tiny128 | float32 | tf32 | 2 |" in captured.out and "precision: tf32" in captured.err
    with pytest.raises(SystemExit):
        render_throughput.main(["--batches", "0"])
    with pytest.raises(SystemExit):
        render_throughput.main(["--generator", str(tmp_path / "missing")])


def test_counted_flops_include_every_iteration_of_the_weight_gradient_loop(step_throughput, monkeypatch):
    import jax
    import jax.numpy as jnp

    import conv_kernels
    from conv_kernels import cpu_gemm

    monkeypatch.setattr(cpu_gemm, "WGRAD_CHUNK_BYTES", 1)  # one output row per loop iteration: 16 iterations
    x = jnp.ones((2, 8, 8, 4))
    w = jnp.ones((3, 3, 4, 5))
    step = lambda impl: jax.jit(jax.grad(lambda w, x: jnp.sum(conv_kernels.conv2d(x, w, 1, impl) ** 2)))
    expected = step("xla").lower(w, x).cost_analysis()
    expected = float((expected[0] if isinstance(expected, (list, tuple)) else expected)["flops"])
    counted = step_throughput.counted_flops(step("xla"), w, x)
    assert counted == pytest.approx(expected, rel=1e-6)
    loop_flops, _ = step_throughput.xla_cost(step("cpu_gemm").lower(w, x).compile())
    wgrad_flops = 2 * 2 * 8 * 8 * 3 * 3 * 4 * 5
    assert loop_flops < counted - wgrad_flops / 2  # XLA counts the loop body once: why the step is traced with 'xla'
    np.testing.assert_allclose(step("cpu_gemm")(w, x), step("xla")(w, x), rtol=1e-5)


def test_torch_counterpart_of_each_jax_setting(step_throughput):
    S = step_throughput.Settings
    auto = ("auto", "auto", "auto")
    assert step_throughput.torch_options(*auto, "gpu", S(precision="highest")) == {
        "device": "cuda", "tf32": "off", "sr": "float32"}
    assert step_throughput.torch_options(*auto, "gpu", S(compute_dtype="bfloat16", precision="tf32")) == {
        "device": "cuda", "tf32": "on", "sr": "fp16"}
    assert step_throughput.torch_options(*auto, "cpu", S(compute_dtype="bfloat16")) == {
        "device": "cpu", "tf32": "off", "sr": "float32"}
    assert step_throughput.torch_options("cuda", "on", "fp16", "cpu", S()) == {"device": "cuda", "tf32": "on",
                                                                               "sr": "fp16"}


def test_torch_step_builds_the_same_spec_as_step_throughput(step_throughput, torch_step):
    spec = step_throughput.torch_spec("ffhq512-128", 2)
    assert torch_step.spec_from_library("ffhq512-128", 2, None) == spec
    assert np.asarray(spec["labels"]).shape == (2, 25) and spec["neural_rendering_resolution"] == 128
    assert spec["init_kwargs"]["sr_num_fp16_res"] == 4  # the released checkpoint's fp16 SR blocks
    assert spec["learning_rate"] == step_throughput.PAPER_ADAM["learning_rate"]


def test_paper_adam_is_the_configs(step_throughput):
    from configs.common import make_config

    optim = make_config("rgb", "paper").optim
    assert step_throughput.PAPER_ADAM == {k: optim[k] for k in ("learning_rate", "b1", "b2", "eps")}


def test_torch_step_cuda_without_torch_or_cuda_is_a_skip(torch_step, capsys, tmp_path):
    clone = tmp_path / "eg3d"
    for marker in ("training/triplane.py", "torch_utils/ops/bias_act.py", "dnnlib/util.py"):
        (clone / marker).parent.mkdir(parents=True, exist_ok=True)
        (clone / marker).write_text("")
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is importable here")
    assert torch_step.main([str(tmp_path), "--check", "--device", "cuda"]) == torch_step.SKIP_EXIT
    assert capsys.readouterr().err.startswith("skipped: torch is not importable")


BLOCKER = """
import importlib.abc, runpy, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"ml_collections", "grain", "tensorboardX", "tensorflow_datasets", "array_record"}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
sys.path.insert(0, sys.argv[1])
import step_throughput, render_throughput, precision_report, device_check
step_throughput.build_parser().parse_args([])
spec = step_throughput.torch_spec("tiny128", 2)
import eg3d_flax, hfagp.runtime.step, hfagp.train.step, hfagp.train.optim, hfagp.train.losses, hfagp.precision, hfagp.lpips
import convert_weights.convert
print("ok", len(spec["labels"]))
"""


def test_device_code_paths_import_without_the_training_only_packages():
    """What the GPU check runs imports without ml_collections, grain, tfds or tensorboardX (absent there)."""
    proc = subprocess.run([sys.executable, "-c", BLOCKER, str(BENCHMARKS)], capture_output=True, text=True,
                          cwd=BENCHMARKS.parent, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", "2"]
