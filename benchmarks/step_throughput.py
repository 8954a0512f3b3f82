"""Training-step throughput of the JAX implementation (stage 1 and stage 2), against PyTorch EG3D.

    python benchmarks/step_throughput.py --configs tiny128,small512 --batch 2 --out bench.json
    python benchmarks/step_throughput.py --configs ffhq512-128 --stages 2 --compute-dtype bfloat16 --precision tf32
    python benchmarks/step_throughput.py --configs tiny128 --torch-eg3d ~/src/eg3d --torch-python ~/torchenv/bin/python

For each generator config and stage (one row each) it reports: compile time, the median step time and
its spread over --steps timed steps after one warm-up step (each step synchronised), on accelerators also
the time per step of --pipelined-steps steps dispatched back to back (one sync at the end, as the training
loop runs), FLOPs per step and the achieved FLOP/s, peak device memory, peak host RSS, and whether the step
recompiled after the first call (it must not). Every row records the settings it ran under: compute dtype,
float32 precision, convolution kernels (as resolved), remat, backend, device and jax version.

Settings (printed at start):
  --compute-dtype float32|bfloat16   the generator's convolutions (`GeneratorConfig.compute_dtype`)
  --precision highest|tf32|default   float32 matmul/conv precision of the whole step (`hfagp/precision.py`)
  --conv-impl, --upconv-impl         the kernels (`conv_kernels`; 'auto': per backend)

The step is training's own (`hfagp.runtime.step.make_train_step`: latent, G.synthesis with stochastic
rendering, L2 loss, backward, Adam; stage 2 also updates G) on random data, without the input pipeline.
The latent is either W+ codes optimised directly (`--encoder none`, the default: what the PyTorch baseline
times) or the official RGB encoder + basis (`--encoder rgb`, ~180 GFLOP more per step at 256; needs
ml_collections for the training config). `--encoder none` needs neither ml_collections, grain nor
tensorboardX, so it runs on machines that have only the JAX stack.

Memory: peak device memory is `device.memory_stats()['peak_bytes_in_use']` where the backend has it (GPU,
TPU; the process's peak so far, so a row after another row of the same process reports the larger of the
two: run one row per process for exact figures, as `benchmarks/device_check.py` does), else XLA's memory
analysis of the compiled step (arguments + temporaries; the outputs alias the donated state).

FLOPs: XLA's cost analysis of the compiled step. On CPU the weight-gradient kernel (`conv_kernels.cpu_gemm`)
loops over blocks whose body XLA counts once, so `--count-flops` traces the same step once more with XLA's
own convolution gradients and counts that (`counted_flops`; tracing only, no second compilation). FLOP
floor: the machine's convolution rate is measured once (a jitted 3x3 conv, [2,128,128,128] NHWC, 128->128
channels, best of 5, in the row's compute dtype and precision) and each side's FLOPs per step divided by it
is printed beside its step time.

PyTorch baseline: with `--torch-eg3d PATH` (a user's clone of NVlabs/eg3d; never vendored or
downloaded) `benchmarks/torch_step.py` runs in a subprocess of `--torch-python` right after the JAX
measurement of the same config and stage, on `--torch-device` (default: cuda when JAX runs on a GPU),
with TF32 off when --precision is highest (`--torch-tf32`) and, on CUDA, the checkpoint's float16
super-resolution blocks when --compute-dtype is bfloat16 (`--torch-sr`). The table gets the ratio
torch/jax per config and stage. A missing path, a folder that is not an EG3D clone, or an interpreter
without torch prints one "skipped: ..." line and the JAX numbers are still reported.

Host memory: run as a script, the benchmark restarts itself with glibc's huge-page malloc tunable where
that helps (`hfagp_common/host.py`), and the PyTorch child inherits it; `HFAGP_NO_HUGE_PAGES=1` measures
both without. The JSON records it as `malloc_huge_pages`.

Threads: by default both sides use what the process may use. `--threads N` pins this process (and so the
PyTorch child) to N CPUs before JAX starts, since XLA:CPU sizes its thread pools from the CPU affinity
and has no thread-count flag, and gives PyTorch `torch.set_num_threads(N)` (and OMP/MKL_NUM_THREADS).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hfagp_common import cli  # noqa: E402  (no JAX import)

NAME = "step_throughput.py"


def _stages(text: str) -> str:
    """argparse type of --stages: 1 and/or 2, comma-separated."""
    if not text or any(s not in ("1", "2") for s in text.split(",")):
        raise argparse.ArgumentTypeError(f"expected 1 and/or 2, comma-separated, got {text!r}")
    return text


_stages.bad_values = ("", "3", "1,x")


def _presets(text: str) -> str:
    """argparse type of --configs: comma-separated generator presets."""
    from eg3d_flax.config import PRESETS

    names = text.split(",")
    unknown = [name for name in names if name not in PRESETS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown presets {unknown}; known: {','.join(PRESETS)}")
    return text


_presets.bad_values = ("", "huge", "tiny128,huge")


from hfagp_common.host import huge_pages_requested  # noqa: E402  (no JAX import)

TORCH_STEP = Path(__file__).resolve().with_name("torch_step.py")
# Speed targets on CPU (2 threads): the JAX step at least this many times faster than PyTorch EG3D's.
TARGET_SPEEDUP = {"tiny128": 4.0, "small512": 1.3, "ffhq512-128": 1.3}
CONV_SHAPE = dict(batch=2, size=128, channels=128)
# The paper's Adam (configs/common.py, `optim`); tests/benchmarks checks that the two agree.
PAPER_ADAM = {"learning_rate": 3e-4, "b1": 0.9, "b2": 0.999, "eps": 1e-8}
COMPUTE_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class Settings:
    """How one row is measured (every field is recorded in the row)."""

    compute_dtype: str = "float32"
    precision: str = "highest"
    conv_impl: str = "auto"
    upconv_impl: str = "auto"
    remat: str = "none"
    encoder: str = "none"
    neural_rendering_resolution: Optional[int] = None
    count_flops: bool = False


def limit_cpus(threads: Optional[int]) -> str:
    """Pins this process to `threads` CPUs if given and it may use more (call before JAX starts); says what it did."""
    allowed = sorted(os.sched_getaffinity(0))
    if threads is None:
        return f"{len(allowed)} CPUs available, not pinned (--threads N pins)"
    if threads >= len(allowed):
        return f"{len(allowed)} CPUs available; both sides use {min(threads, len(allowed))} threads"
    os.sched_setaffinity(0, allowed[:threads])
    return f"pinned to CPUs {allowed[:threads]} of {allowed} (XLA sizes its pools from the affinity)"


def conv_rate_gflops(batch: int, size: int, channels: int, reps: int = 5, dtype: str = "float32") -> float:
    """Best-of-`reps` GFLOP/s of a jitted 3x3 same-padded conv, NHWC [batch,size,size,channels] -> same.

    Traced under the caller's precision context, in `dtype`."""
    import jax
    import jax.numpy as jnp

    kx, kw = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(kx, (batch, size, size, channels), jnp.float32).astype(dtype)
    w = jax.random.normal(kw, (3, 3, channels, channels), jnp.float32).astype(dtype)
    conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                             dimension_numbers=("NHWC", "HWIO", "NHWC")))
    conv(x, w).block_until_ready()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        conv(x, w).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2.0 * batch * size * size * channels * channels * 9 / best / 1e9


def _flops(cost) -> float:
    """The "flops" entry of an XLA cost analysis (a dict, or a one-element list of them), or nan."""
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan"))) if cost else float("nan")


def xla_cost(compiled) -> tuple[float, dict]:
    """(FLOPs from XLA's cost analysis, or nan; XLA's memory analysis as {field: bytes}) of a compiled function."""
    flops = _flops(compiled.cost_analysis())
    mem = compiled.memory_analysis()
    fields = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes", "generated_code_size_in_bytes")
    return flops, ({k: int(getattr(mem, k, 0)) for k in fields} if mem is not None else {})


def counted_flops(fn, *args) -> float:
    """FLOPs of `fn(*args)` by XLA's cost analysis of the lowered (unoptimised) program; tracing only.

    Pass the step built with `conv_impl='xla'`: the CPU weight-gradient kernel (`conv_kernels.cpu_gemm`)
    does the same arithmetic in a loop whose body XLA's cost analysis counts only once."""
    return _flops(fn.lower(*args).cost_analysis())


def device_peak_bytes() -> Optional[int]:
    """The device allocator's peak bytes in use so far (`memory_stats`), or None where the backend has none (CPU)."""
    import jax

    stats = jax.devices()[0].memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return int(stats["peak_bytes_in_use"])


def device_memory(mem_info: dict, rows_before: int) -> dict:
    """Peak device memory of a row: the allocator's peak where available, else XLA's analysis (args + temps)."""
    peak = device_peak_bytes()
    if peak is not None:
        return {"device_peak_bytes": peak, "device_memory_source": "memory_stats.peak_bytes_in_use"
                + (f" (process peak over {rows_before + 1} rows)" if rows_before else "")}
    if mem_info:
        return {"device_peak_bytes": mem_info.get("argument_size_in_bytes", 0) + mem_info.get("temp_size_in_bytes", 0),
                "device_memory_source": "xla_memory_analysis (arguments + temporaries)"}
    return {"device_peak_bytes": None, "device_memory_source": None}


def benchmark_cameras(batch: int):
    """The [batch, 25] EG3D labels both sides render (a +-10 degree yaw sweep at EG3D's field of view)."""
    from avatar_data.cameras import EG3D_FOV_DEG, fov_to_intrinsics, yaw_sweep

    return yaw_sweep(batch, 10.0, intrinsics=fov_to_intrinsics(EG3D_FOV_DEG))


def generator_config(config_name: str, settings: Settings):
    import eg3d_flax

    gcfg = eg3d_flax.preset(config_name, remat=settings.remat, conv_impl=settings.conv_impl,
                            upconv_impl=settings.upconv_impl, compute_dtype=settings.compute_dtype)
    if settings.neural_rendering_resolution:
        gcfg = gcfg.replace(neural_rendering_resolution=settings.neural_rendering_resolution)
    return gcfg


def random_generator(gcfg, seed: int = 0):
    """A generator of `gcfg` with random weights, initialised under the preset's own settings (float32, 'auto'
    kernels, no remat): the weights do not depend on those settings (same parameter tree, float32), so every
    row of one preset compiles the same init program, which the persistent compilation cache then serves."""
    import eg3d_flax

    base = gcfg.replace(compute_dtype="float32", remat="none", conv_impl="auto", upconv_impl="auto")
    return eg3d_flax.Generator(gcfg, eg3d_flax.random_generator(base, seed=seed).variables)


def torch_spec(config_name: str, batch: int, neural_rendering_resolution: Optional[int] = None) -> dict:
    """What `torch_step.py` needs to build and time the same generator and step (no JAX computation)."""
    import numpy as np

    gcfg = generator_config(config_name, Settings(neural_rendering_resolution=neural_rendering_resolution))
    kwargs, spec_nrr = gcfg.to_eg3d_kwargs()
    return {"config": config_name, "init_kwargs": kwargs, "neural_rendering_resolution": spec_nrr,
            "labels": np.asarray(benchmark_cameras(batch)).tolist(), "loss_resolution": gcfg.img_resolution,
            "learning_rate": PAPER_ADAM["learning_rate"]}


def build(config_name: str, batch: int, settings: Settings, stage: int = 2):
    """(state, batch, constants, step builder, generator config, spec of the PyTorch side, parameter counts).

    The step is `hfagp.runtime.step.make_train_step` (the one training uses) on a loss of the same form:
    'rgb' is the training loss of the RGB encoder + basis; 'none' optimises W+ codes directly (params
    {'model': {'encoder': {'ws'}}}), like the PyTorch baseline's "Adam on ws + G".
    """
    import types

    import jax
    import jax.numpy as jnp
    import numpy as np

    from hfagp.runtime.step import create_train_state, make_train_step
    from hfagp.train import losses
    from hfagp.train.optim import FreezeSchedule

    gcfg = generator_config(config_name, settings)
    res = gcfg.img_resolution
    G = random_generator(gcfg, seed=0)
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(-1, 1, (batch, res, res, 3)), jnp.float32)
    labels = jnp.asarray(benchmark_cameras(batch))
    gen = G.module
    spec = torch_spec(config_name, batch, settings.neural_rendering_resolution)
    optim = types.SimpleNamespace(**PAPER_ADAM)
    if settings.encoder == "none":
        ws0 = G.mapping(jnp.asarray(rng.standard_normal((batch, 512)), jnp.float32), labels)
        params = {"model": {"encoder": {"ws": ws0}}, "generator": G.variables["params"]}

        def loss_fn(params, batch_, constants, key):
            out = gen.apply({"params": params["generator"], "buffers": constants["generator_buffers"]},
                            params["model"]["encoder"]["ws"], batch_["label"], "const", False, None,
                            method=gen.synthesis, rngs={"render": key})
            return losses.reconstruction_loss(out["image"], batch_["image"], loss_resolution=res, lpips_weight=0.0)
    else:
        from configs.common import make_config  # the training config: needs ml_collections
        from encoders import make_encoder
        from hfagp import model as model_lib
        from hfagp.train.step import make_loss_fn

        cfg = make_config("rgb", "paper")
        cfg.loss.lpips_weight = 0.0
        cfg.loss.resolution = res
        optim = cfg.optim
        model_spec = model_lib.ModelSpec.from_config(cfg)
        model = model_lib.avatar_model(model_spec, gcfg.num_ws, gcfg.w_dim, G.config.conv_impl)
        params = model_lib.init_params(model, G, images[:1], jax.random.PRNGKey(0))
        loss_fn = make_loss_fn(cfg, model_spec, model, gen)
        enc = make_encoder("rgb", cfg.model.k, **dict(cfg.model.encoder_kwargs))
        spec["encoder"] = {"k": cfg.model.k, **{f: getattr(enc, f) for f in (
            "input_size", "feature_dim", "mlp_layers", "nonlinear", "channel_base", "channel_max")}}
        if cfg.model.orthogonality != "qr":
            raise ValueError("the PyTorch baseline's basis is the official QR one")
    # As in training: stage 1 routes the generator to set_to_zero (no Adam moments, nothing computed
    # for it), stage 2 gives it Adam; the PyTorch side likewise has no optimizer state for a frozen G.
    schedule = FreezeSchedule({"encoder": 0, "prior": 0, "generator": 0 if stage == 2 else None})
    tx = schedule.optimizer(optim, params)
    state = create_train_state(params, tx, jax.random.PRNGKey(1))

    def step_fn(train_generator):
        return jax.jit(make_train_step(loss_fn, tx, train_generator), donate_argnums=(0,))

    counts = {k: sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(v)) for k, v in params.items()}
    constants = {"generator_buffers": G.variables["buffers"]}
    return state, {"image": images, "label": labels}, constants, step_fn, G.config, spec, counts


def measure(config_name: str, batch: int, stage: int, steps: int, settings: Settings,
            conv_gflops: Optional[float] = None, pipelined_steps: int = 0, rows_before: int = 0) -> tuple[dict, dict]:
    """Times the JAX step under `settings`; returns (result row, the spec for the PyTorch side).

    steps=0: compile only (FLOPs and memory, e.g. for a config too slow to run here). The caller applies
    the precision context (`hfagp.precision.matmul_precision`)."""
    import jax

    load_before = os.getloadavg()[0]
    counted = None
    if settings.count_flops:  # the same step with XLA's convolution gradients, traced only (see counted_flops)
        xla_parts = build(config_name, batch, dataclasses.replace(settings, conv_impl="xla"), stage)
        counted = counted_flops(xla_parts[3](stage == 2), *xla_parts[:3])
        del xla_parts
    state, batch_data, buffers, step_fn, gcfg, spec, counts = build(config_name, batch, settings, stage)
    fn = step_fn(stage == 2)
    t0 = time.perf_counter()
    compiled = fn.lower(state, batch_data, buffers).compile()
    compile_s = time.perf_counter() - t0
    flops_compiled, mem_info = xla_cost(compiled)
    flops = counted if counted is not None else flops_compiled
    row = {
        "config": config_name, "encoder": settings.encoder, "stage": stage, "batch": batch,
        "compute_dtype": gcfg.compute_dtype, "precision": settings.precision, "conv_impl": gcfg.conv_impl,
        "upconv_impl": gcfg.upconv_impl, "remat": gcfg.remat, "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind), "jax_version": jax.__version__,
        "neural_rendering_resolution": gcfg.neural_rendering_resolution,
        "params_optimised": counts["model"] + (counts["generator"] if stage == 2 else 0),
        "compile_s": round(compile_s, 2), "flops_per_step": flops,
        "flops_source": "traced with XLA convolutions (--count-flops)" if counted is not None else "compiled step",
        "flops_compiled_xla": flops_compiled, "memory_analysis": mem_info,
    }
    if steps == 0:
        row.update(step_s_median=None, step_s_min=None, step_s_max=None, **device_memory(mem_info, rows_before),
                   peak_host_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
        return row, spec
    del compiled
    state, metrics = fn(state, batch_data, buffers)  # warm-up (first call)
    jax.block_until_ready(metrics["loss"])
    cache_before = fn._cache_size() if hasattr(fn, "_cache_size") else None
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, metrics = fn(state, batch_data, buffers)
        jax.block_until_ready(metrics["loss"])
        times.append(time.perf_counter() - t)
    pipelined = None
    if pipelined_steps > 0:
        t = time.perf_counter()
        for _ in range(pipelined_steps):
            state, metrics = fn(state, batch_data, buffers)
        jax.block_until_ready(metrics["loss"])
        pipelined = (time.perf_counter() - t) / pipelined_steps
    cache_after = fn._cache_size() if hasattr(fn, "_cache_size") else None
    med = statistics.median(times)
    row.update({
        "step_s_median": round(med, 5), "step_s_min": round(min(times), 5), "step_s_max": round(max(times), 5),
        "step_times_s": [round(t, 5) for t in times],
        "step_s_pipelined": round(pipelined, 5) if pipelined is not None else None,
        "pipelined_steps": pipelined_steps,
        "achieved_gflops": round(flops / med / 1e9, 2) if med > 0 else None,
        "flop_floor_s": round(flops / (conv_gflops * 1e9), 4) if conv_gflops else None,
        **device_memory(mem_info, rows_before),
        "peak_host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "recompiled_after_first_step": (cache_after != cache_before) if cache_before is not None else None,
        "loss": float(metrics["loss"]), "loadavg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    })
    return row, spec


def release_memory() -> None:
    """Frees what the finished JAX measurement held (so the next row or the PyTorch child starts clean)."""
    import ctypes

    import jax

    gc.collect()
    jax.clear_caches()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap pages back to the OS (glibc)
    except (OSError, AttributeError):
        pass


def torch_preflight(eg3d_path: str, python: str) -> tuple[bool, str]:
    """(ok, message): whether `python` imports torch and EG3D's generator from `eg3d_path` (a few seconds)."""
    try:
        proc = subprocess.run([python, str(TORCH_STEP), eg3d_path, "--check"], capture_output=True, text=True)
    except OSError as e:
        return False, f"cannot run --torch-python {python!r}: {e}"
    if proc.returncode == 0:
        return True, proc.stdout.strip()
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    skip = [ln for ln in lines if ln.startswith("skipped: ")]
    return False, (skip[-1][len("skipped: "):] if skip else
                   f"torch_step.py --check exited with {proc.returncode}: {lines[-1] if lines else '(no output)'}")


def torch_options(device: str, tf32: str, sr: str, backend: str, settings: Settings) -> dict:
    """The PyTorch side's device, TF32 switch and SR dtype for a JAX row ('auto': the matching setting)."""
    device = ("cuda" if backend == "gpu" else "cpu") if device == "auto" else device
    tf32 = ("off" if settings.precision == "highest" else "on") if tf32 == "auto" else tf32
    if sr == "auto":
        sr = "fp16" if device == "cuda" and settings.compute_dtype == "bfloat16" else "float32"
    return {"device": device, "tf32": tf32, "sr": sr}


def run_torch(eg3d_path: str, python: str, spec: dict, *, batch: int, stage: int, steps: int, encoder: str,
              threads: Optional[int], conv_rate: bool, options: Optional[dict] = None) -> dict:
    """Runs torch_step.py in a subprocess; returns its result, or {'skipped': reason} / {'error': ...}."""
    options = options or {"device": "cpu", "tf32": "off", "sr": "float32"}
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as tmp:
        spec_file, out_file = Path(tmp, "spec.json"), Path(tmp, "result.json")
        spec_file.write_text(json.dumps(spec))
        cmd = [python, str(TORCH_STEP), eg3d_path, "--spec", str(spec_file), "--batch", str(batch),
               "--stage", str(stage), "--steps", str(steps), "--encoder", encoder, "--json", str(out_file),
               "--device", options["device"], "--tf32", options["tf32"], "--sr", options["sr"]]
        cmd += (["--threads", str(threads)] if threads else []) + (["--conv-rate"] if conv_rate else [])
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        except OSError as e:
            return {"skipped": f"cannot run --torch-python {python!r}: {e}"}
        if proc.returncode == 0 and out_file.is_file():
            return json.loads(out_file.read_text())
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        skip = [ln for ln in lines if ln.startswith("skipped: ")]
        if skip:
            return {"skipped": skip[-1][len("skipped: "):]}
        if proc.returncode == 1 and any("No module named" in ln for ln in lines[-1:]):
            return {"skipped": f"{python}: {lines[-1]}"}
        return {"error": f"torch_step.py exited with {proc.returncode}: {lines[-1] if lines else '(no output)'}"}


def _fmt(v, spec=".2f"):
    return "—" if v is None else format(v, spec)


def markdown_table(results: list[dict]) -> str:
    rows = ["| config | stage | batch | dtype | precision | kernels | remat | compile s | JAX step s (median) "
            "| min-max | pipelined s | GFLOP/step | JAX floor s | peak device memory | recompiled "
            "| PyTorch step s (median) | min-max | GFLOP/step (torch) | PyTorch floor s | speedup torch/jax | target |",
            "| --- " * 21 + "|"]
    for r in results:
        t = r.get("torch") or {}
        speed = r.get("speedup_vs_torch")
        target = TARGET_SPEEDUP.get(r["config"]) if r.get("backend", "cpu") == "cpu" else None
        verdict = "—" if speed is None or target is None else f"{target}x: {'met' if speed >= target else 'NOT met'}"
        peak = r.get("device_peak_bytes")
        timed = r.get("step_s_median") is not None
        recompiled = r.get("recompiled_after_first_step")
        rows.append(
            f"| {r['config']} | {r['stage']} | {r['batch']} | {r.get('compute_dtype', 'float32')} | "
            f"{r.get('precision', 'highest')} | {r.get('conv_impl', '?')}/{r.get('upconv_impl', '?')} | "
            f"{r.get('remat', 'none')} | {r['compile_s']} | "
            + (f"{r['step_s_median']:.4f} | {r['step_s_min']:.4f}-{r['step_s_max']:.4f}" if timed else "— | —")
            + f" | {_fmt(r.get('step_s_pipelined'), '.4f')} | {r['flops_per_step'] / 1e9:.1f} | "
            f"{_fmt(r.get('flop_floor_s'), '.3f')} | {'—' if peak is None else f'{peak / 2**30:.2f} GiB'} | "
            f"{'—' if recompiled is None else ('YES' if recompiled else 'no')} | "
            f"{_fmt(t.get('step_s_median'), '.4f')} | "
            + (f"{t['step_s_min']:.4f}-{t['step_s_max']:.4f}" if t.get("step_s_min") is not None else "—")
            + f" | {_fmt(t.get('flops_per_step_counted') and t['flops_per_step_counted'] / 1e9, '.1f')} | "
            f"{_fmt(t.get('flop_floor_s'), '.3f')} | {_fmt(speed)}{'x' if speed is not None else ''} | {verdict} |")
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    from hfagp.precision import PRECISIONS

    p = cli.ArgumentParser(NAME, prog="python benchmarks/step_throughput.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", type=_presets, default="tiny128", help="comma-separated presets: tiny128,small512,ffhq512-128")
    p.add_argument("--batch", type=cli.batch_size, default=2)
    p.add_argument("--stages", type=_stages, default="1,2")
    p.add_argument("--steps", type=cli.int_in(0, 100_000), default=20, help="timed steps after one warm-up step; 0: compile only")
    p.add_argument("--pipelined-steps", type=cli.int_in(0, 100_000), default=None,
                   help="steps dispatched back to back after the timed ones (default: --steps on GPU/TPU, 0 on CPU)")
    p.add_argument("--compute-dtype", default="float32", choices=COMPUTE_DTYPES,
                   help="dtype of the generator's convolutions (GeneratorConfig.compute_dtype)")
    p.add_argument("--precision", default="highest", choices=PRECISIONS,
                   help="float32 matmul/conv precision of the step (hfagp/precision.py)")
    p.add_argument("--conv-impl", default="auto", choices=["auto", "xla", "cpu_gemm"],
                   help="convolution weight-gradient kernel (conv_kernels; 'auto': per backend)")
    p.add_argument("--upconv-impl", default="auto", choices=["auto", "xla", "polyphase"],
                   help="stride-2 transposed convolution kernel (conv_kernels; 'auto': per backend)")
    p.add_argument("--remat", default="none", choices=["none", "renderer", "full"],
                   help="the generator's rematerialisation policy (GeneratorConfig.remat)")
    p.add_argument("--neural-rendering-resolution", type=cli.resolution, default=None)
    p.add_argument("--encoder", default="none", choices=["none", "rgb"],
                   help="'none': Adam on W+ codes + G (what the PyTorch baseline times); 'rgb': the official RGB encoder")
    p.add_argument("--count-flops", action="store_true",
                   help="count FLOPs on the step traced with XLA's convolution gradients (see the module doc)")
    p.add_argument("--threads", type=cli.jobs, default=None, help="pin both sides to N CPUs (see the module doc)")
    p.add_argument("--torch-eg3d", type=cli.path, default=None, help="path to a clone of NVlabs/eg3d for the PyTorch baseline")
    p.add_argument("--torch-python", type=cli.path, default=sys.executable,
                   help="interpreter with torch (+ numpy, scipy, click, pillow, requests) for the baseline")
    p.add_argument("--torch-device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="the PyTorch side's device ('auto': cuda when JAX runs on a GPU)")
    p.add_argument("--torch-tf32", default="auto", choices=["auto", "on", "off"],
                   help="PyTorch's TF32 matmul/cuDNN switch ('auto': off when --precision is highest)")
    p.add_argument("--torch-sr", default="auto", choices=["auto", "fp16", "float32"],
                   help="PyTorch's SR blocks on CUDA: the checkpoint's fp16 or float32 ('auto': fp16 with bfloat16)")
    p.add_argument("--out", type=cli.path, default=None, help="write results as JSON here")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    print(f"threads: {limit_cpus(args.threads)}", file=sys.stderr)
    from hfagp import precision as precision_lib

    settings = Settings(compute_dtype=args.compute_dtype, precision=args.precision, conv_impl=args.conv_impl,
                        upconv_impl=args.upconv_impl, remat=args.remat, encoder=args.encoder,
                        neural_rendering_resolution=args.neural_rendering_resolution, count_flops=args.count_flops)
    huge_pages = huge_pages_requested()
    print(f"host memory: glibc malloc {'with' if huge_pages else 'without'} transparent huge pages "
          f"(both sides; hfagp_common/host.py)", file=sys.stderr)
    if args.torch_eg3d is None:
        ok, msg = False, "no --torch-eg3d given"
    else:
        ok, msg = torch_preflight(args.torch_eg3d, args.torch_python)
    torch_skipped = None if ok else msg
    print(f"PyTorch baseline: {msg if ok else 'skipped: ' + msg}", file=sys.stderr, flush=True)
    with precision_lib.matmul_precision(settings.precision):
        print(precision_lib.describe(settings.precision, settings.compute_dtype), file=sys.stderr)
        print(f"settings: {json.dumps(dataclasses.asdict(settings))}", file=sys.stderr)
        conv_gflops = conv_rate_gflops(**CONV_SHAPE, dtype=settings.compute_dtype)
        print(f"conv rate (JAX, 3x3 {CONV_SHAPE}, {settings.compute_dtype}): {conv_gflops:.1f} GFLOP/s",
              file=sys.stderr, flush=True)
        import jax

        backend = jax.default_backend()
        pipelined = args.pipelined_steps if args.pipelined_steps is not None else (
            0 if backend == "cpu" else args.steps)
        results, torch_enabled, first_torch = [], torch_skipped is None, True
        for name in args.configs.split(","):
            for stage in (int(s) for s in args.stages.split(",")):
                r, spec = measure(name, args.batch, stage, args.steps, settings, conv_gflops,
                                  pipelined_steps=pipelined, rows_before=len(results))
                r["conv_gflops"] = round(conv_gflops, 1)
                r["malloc_huge_pages"] = huge_pages
                r["threads"] = args.threads
                if torch_skipped:
                    r["torch_skipped"] = torch_skipped
                if torch_enabled and args.steps > 0:
                    release_memory()
                    options = torch_options(args.torch_device, args.torch_tf32, args.torch_sr, backend, settings)
                    t = run_torch(args.torch_eg3d, args.torch_python, spec, batch=args.batch, stage=stage,
                                  steps=args.steps, encoder=args.encoder, threads=args.threads,
                                  conv_rate=first_torch, options=options)
                    if "skipped" in t:
                        print(f"PyTorch baseline: skipped: {t['skipped']}", file=sys.stderr)
                        torch_enabled = False
                        r["torch_skipped"] = t["skipped"]
                    elif "error" in t:
                        print(f"PyTorch baseline ({name}, stage {stage}): {t['error']}", file=sys.stderr)
                        r["torch_error"] = t["error"]
                    else:
                        first_torch = False
                        t["flop_floor_s"] = round(t["flops_per_step_counted"] / (conv_gflops * 1e9), 4)
                        r["torch"] = t
                        r["speedup_vs_torch"] = round(t["step_s_median"] / r["step_s_median"], 3)
                        if t["params_optimised"] != r["params_optimised"]:
                            print(f"warning: {name} stage {stage}: PyTorch optimises {t['params_optimised']} "
                                  f"values, JAX {r['params_optimised']}", file=sys.stderr)
                print(json.dumps(r), flush=True)
                results.append(r)
                if args.out:  # after every row, so a run stopped midway keeps what it measured
                    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
                release_memory()
    print("\n" + markdown_table(results))
    return 0


if __name__ == "__main__":
    from hfagp_common.host import reexec_with_huge_pages

    reexec_with_huge_pages()  # before JAX starts; the PyTorch child inherits the same setting
    sys.exit(cli.run(NAME, main))  # an error in the measurement: one line, exit 2
