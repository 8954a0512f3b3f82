"""Training-step throughput of the JAX implementation (stage 1 and stage 2), against PyTorch EG3D.

    python benchmarks/step_throughput.py --configs tiny128,small512 --batch 2 --steps 5 --out bench.json
    python benchmarks/step_throughput.py --configs tiny128 --torch-eg3d ~/src/eg3d --torch-python ~/torchenv/bin/python

For each generator config and stage it reports: compile time, median steady-state step time and its
spread (min/max over --steps timed steps after one warm-up), FLOPs per step from XLA's cost analysis
and the achieved FLOP/s, XLA's memory analysis (argument/output/temp bytes), peak host RSS, and
whether the step recompiled after the first call (it must not).

The step is training's own (`hfagp.train.step.make_train_step`: latent, G.synthesis with stochastic
rendering, L2 loss, backward, Adam; stage 2 also updates G) on random data, without the input pipeline. The latent is
either W+ codes optimised directly (`--encoder none`, the default: what the PyTorch baseline in
the PyTorch baseline times) or the official RGB encoder + basis (`--encoder rgb`, ~180 GFLOP more per step at 256).

PyTorch baseline: with `--torch-eg3d PATH` (a user's clone of NVlabs/eg3d; never vendored or
downloaded) `benchmarks/torch_step.py` runs in a subprocess of `--torch-python` right after the JAX
measurement of the same config and stage. It builds EG3D's `TriPlaneGenerator` from
`GeneratorConfig.to_eg3d_kwargs()` of the same preset and times the same step; the table gets the
ratio torch/jax per config and stage. A missing path, a folder that is not an EG3D clone, or an
interpreter without torch prints one "skipped: ..." line and the JAX numbers are still reported.

FLOP floor: the machine's convolution rate is measured once (a jitted 3x3 conv, [2,128,128,128] NHWC,
128->128 channels, best of 5) and each side's FLOPs per step divided by it is printed beside its step
time (JAX: XLA's count of the step traced with XLA's own convolution gradients, which includes the zero
taps of padded/polyphase convolutions; the CPU step runs its weight gradients in a loop whose body XLA's
cost analysis would count once, see `counted_flops`; PyTorch: `torch.utils.flop_counter`'s count of
convolutions and matmuls).

Host memory: run as a script, the benchmark restarts itself with glibc's huge-page malloc tunable where
that helps (`hfagp/host.py`), and the PyTorch child inherits it, so both sides run with the same setting;
`HFAGP_NO_HUGE_PAGES=1` measures both without. The JSON records it as `malloc_huge_pages`.

Threads: `--threads N` (default 2) gives the PyTorch side `torch.set_num_threads(N)` (and
OMP/MKL_NUM_THREADS). XLA:CPU has no thread-count flag (`--xla_cpu_multi_thread_eigen=false` only
selects one thread); it sizes its thread pools from the process's CPU affinity, so when N is below
the number of CPUs this process may use, the benchmark pins itself (and so the PyTorch child) to N
of them before JAX starts. On a 2-core machine with N=2 that changes nothing: both sides use 2 cores.
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hfagp_common import cli  # noqa: E402  (no JAX import)

NAME = "step_throughput.py"


def _stages(text: str) -> str:
    """argparse type of --stages: 1 and/or 2, comma-separated."""
    if not text or any(s not in ("1", "2") for s in text.split(",")):
        raise argparse.ArgumentTypeError(f"expected 1 and/or 2, comma-separated, got {text!r}")
    return text


from hfagp_common.host import huge_pages_requested  # noqa: E402  (no JAX import)

TORCH_STEP = Path(__file__).resolve().with_name("torch_step.py")
# Speed targets on CPU (2 threads): the JAX step at least this many times faster than PyTorch EG3D's.
TARGET_SPEEDUP = {"tiny128": 4.0, "small512": 1.3, "ffhq512-128": 1.3}
CONV_SHAPE = dict(batch=2, size=128, channels=128)


def limit_cpus(threads: int) -> str:
    """Pins this process to `threads` CPUs if it may use more (call before JAX starts); says what it did."""
    allowed = sorted(os.sched_getaffinity(0))
    if threads >= len(allowed):
        return f"{len(allowed)} CPUs available; both sides use {min(threads, len(allowed))} threads"
    os.sched_setaffinity(0, allowed[:threads])
    return f"pinned to CPUs {allowed[:threads]} of {allowed} (XLA sizes its pools from the affinity)"


def conv_rate_gflops(batch: int, size: int, channels: int, reps: int = 5) -> float:
    """Best-of-`reps` GFLOP/s of a jitted 3x3 same-padded conv, NHWC [batch,size,size,channels] -> same."""
    import jax
    import jax.numpy as jnp

    kx, kw = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(kx, (batch, size, size, channels), jnp.float32)
    w = jax.random.normal(kw, (3, 3, channels, channels), jnp.float32)
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


def build(config_name: str, batch: int, nrr: int | None, encoder: str, stage: int = 2, remat: str = "none",
          conv_impl: str = "auto"):
    """(state, batch, constants, jitted step, generator config, spec of the PyTorch side, parameter counts).

    The step is `hfagp.train.step.make_train_step` (the one training uses) on a loss of the same form:
    'rgb' is the training loss of the RGB encoder + basis; 'none' optimises W+ codes directly (params
    {'model': {'encoder': {'ws'}}}), like the PyTorch baseline's "Adam on ws + G".
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    import eg3d_flax
    from avatar_data.cameras import EG3D_FOV_DEG, fov_to_intrinsics, yaw_sweep
    from configs.common import make_config
    from hfagp import model as model_lib
    from hfagp.train import losses
    from hfagp.train.optim import FreezeSchedule
    from hfagp.train.step import create_train_state, make_loss_fn, make_train_step

    cfg = make_config("rgb", "paper")
    cfg.loss.lpips_weight = 0.0
    gcfg = eg3d_flax.preset(config_name, remat=remat, conv_impl=conv_impl)
    if nrr:
        gcfg = gcfg.replace(neural_rendering_resolution=nrr)
    res = gcfg.img_resolution
    cfg.loss.resolution = res
    G = eg3d_flax.random_generator(gcfg, seed=0)
    model = model_lib.avatar_model_from_config(cfg.model, gcfg.num_ws, gcfg.w_dim, G.config.conv_impl)
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(-1, 1, (batch, res, res, 3)), jnp.float32)
    labels_np = yaw_sweep(batch, 10.0, intrinsics=fov_to_intrinsics(EG3D_FOV_DEG))
    labels = jnp.asarray(labels_np)
    gen = G.module
    if encoder == "none":
        ws0 = G.mapping(jnp.asarray(rng.standard_normal((batch, 512)), jnp.float32), labels)
        params = {"model": {"encoder": {"ws": ws0}}, "generator": G.variables["params"]}

        def loss_fn(params, batch_, constants, key):
            out = gen.apply({"params": params["generator"], "buffers": constants["generator_buffers"]},
                            params["model"]["encoder"]["ws"], batch_["label"], "const", False, None,
                            method=gen.synthesis, rngs={"render": key})
            return losses.reconstruction_loss(out["image"], batch_["image"], loss_resolution=res, lpips_weight=0.0)
    else:
        params = model_lib.init_params(model, G, images[:1], jax.random.PRNGKey(0))
        loss_fn = make_loss_fn(cfg, model, gen)
    # As in training: stage 1 routes the generator to set_to_zero (no Adam moments, nothing computed
    # for it), stage 2 gives it Adam; the PyTorch side likewise has no optimizer state for a frozen G.
    schedule = FreezeSchedule({"encoder": 0, "prior": 0, "generator": 0 if stage == 2 else None})
    tx = schedule.optimizer(cfg.optim, params)
    state = create_train_state(params, tx, jax.random.PRNGKey(1))

    def step_fn(train_generator):
        return jax.jit(make_train_step(loss_fn, tx, train_generator), donate_argnums=(0,))

    kwargs, spec_nrr = gcfg.to_eg3d_kwargs()
    torch_spec = {
        "config": config_name, "init_kwargs": kwargs, "neural_rendering_resolution": spec_nrr,
        "labels": np.asarray(labels_np).tolist(), "loss_resolution": res,
        "learning_rate": float(cfg.optim.learning_rate),
    }
    if encoder == "rgb":
        from encoders import make_encoder

        enc = make_encoder("rgb", cfg.model.k, **dict(cfg.model.encoder_kwargs))
        torch_spec["encoder"] = {"k": cfg.model.k, **{f: getattr(enc, f) for f in (
            "input_size", "feature_dim", "mlp_layers", "nonlinear", "channel_base", "channel_max")}}
        if cfg.model.orthogonality != "qr":
            raise ValueError("the PyTorch baseline's basis is the official QR one")
    counts = {k: sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(v)) for k, v in params.items()}
    constants = {"generator_buffers": G.variables["buffers"]}
    return state, {"image": images, "label": labels}, constants, step_fn, G.config, torch_spec, counts


def measure(config_name: str, batch: int, stage: int, steps: int, nrr: int | None, encoder: str,
            conv_gflops: float | None = None, remat: str = "none") -> tuple[dict, dict]:
    """Times the JAX step; returns (result, the spec for the PyTorch side). steps=0: compile only
    (FLOPs and XLA's memory analysis, e.g. for a config too slow to run here)."""
    import jax

    load_before = os.getloadavg()[0]
    # FLOPs from the same step with XLA's convolution gradients (traced only; see counted_flops).
    xla_parts = build(config_name, batch, nrr, encoder, stage, remat, conv_impl="xla")
    flops = counted_flops(xla_parts[3](stage == 2), *xla_parts[:3])
    del xla_parts
    state, batch_data, buffers, step_fn, gcfg, torch_spec, counts = build(config_name, batch, nrr, encoder, stage, remat)
    fn = step_fn(stage == 2)
    t0 = time.perf_counter()
    lowered = fn.lower(state, batch_data, buffers)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    flops_compiled, mem_info = xla_cost(compiled)
    if steps == 0:
        return {"config": config_name, "encoder": encoder, "stage": stage, "batch": batch, "remat": remat,
                "backend": jax.default_backend(), "device": str(jax.devices()[0].device_kind),
                "neural_rendering_resolution": gcfg.neural_rendering_resolution,
                "params_optimised": counts["model"] + (counts["generator"] if stage == 2 else 0),
                "compile_s": round(compile_s, 2), "step_s_median": None, "step_s_min": None, "step_s_max": None,
                "flops_per_step": flops, "flops_compiled_xla": flops_compiled, "memory_analysis": mem_info,
                "peak_host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}, torch_spec
    state, metrics = fn(state, batch_data, buffers)  # warm-up (first call)
    jax.block_until_ready(metrics["loss"])
    cache_before = fn._cache_size() if hasattr(fn, "_cache_size") else None
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, metrics = fn(state, batch_data, buffers)
        jax.block_until_ready(metrics["loss"])
        times.append(time.perf_counter() - t)
    cache_after = fn._cache_size() if hasattr(fn, "_cache_size") else None
    med = statistics.median(times)
    result = {
        "config": config_name, "encoder": encoder, "stage": stage, "batch": batch, "remat": remat,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind), "neural_rendering_resolution": gcfg.neural_rendering_resolution,
        "params_optimised": counts["model"] + (counts["generator"] if stage == 2 else 0),
        "compile_s": round(compile_s, 2), "step_s_median": round(med, 4), "step_s_min": round(min(times), 4),
        "step_s_max": round(max(times), 4), "step_times_s": [round(t, 4) for t in times], "flops_per_step": flops,
        "flops_compiled_xla": flops_compiled,
        "achieved_gflops": round(flops / med / 1e9, 2) if med > 0 else None,
        "flop_floor_s": round(flops / (conv_gflops * 1e9), 3) if conv_gflops else None,
        "memory_analysis": mem_info, "peak_host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "recompiled_after_first_step": (cache_after != cache_before) if cache_before is not None else None,
        "loss": float(metrics["loss"]), "loadavg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    return result, torch_spec


def release_memory() -> None:
    """Frees what the finished JAX measurement held (so the PyTorch child does not run beside it)."""
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


def run_torch(eg3d_path: str, python: str, spec: dict, *, batch: int, stage: int, steps: int, encoder: str,
              threads: int, conv_rate: bool) -> dict:
    """Runs torch_step.py in a subprocess; returns its result, or {'skipped': reason} / {'error': ...}."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as tmp:
        spec_file, out_file = Path(tmp, "spec.json"), Path(tmp, "result.json")
        spec_file.write_text(json.dumps(spec))
        cmd = [python, str(TORCH_STEP), eg3d_path, "--spec", str(spec_file), "--batch", str(batch),
               "--stage", str(stage), "--steps", str(steps), "--encoder", encoder, "--threads", str(threads),
               "--json", str(out_file)] + (["--conv-rate"] if conv_rate else [])
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
    rows = ["| config | stage | batch | remat | compile s | JAX step s (median) | min-max | GFLOP/step (XLA) | JAX floor s "
            "| device memory (XLA: args + temp) | PyTorch step s (median) | min-max | GFLOP/step (torch) "
            "| PyTorch floor s | speedup torch/jax | target |",
            "| --- " * 16 + "|"]
    for r in results:
        t = r.get("torch") or {}
        speed = r.get("speedup_vs_torch")
        target = TARGET_SPEEDUP.get(r["config"])
        verdict = "—" if speed is None or target is None else f"{target}x: {'met' if speed >= target else 'NOT met'}"
        mem = r.get("memory_analysis") or {}
        dev_mem = (mem.get("argument_size_in_bytes", 0) + mem.get("temp_size_in_bytes", 0)) / 2**30 if mem else None
        timed = r.get("step_s_median") is not None
        rows.append(
            f"| {r['config']} | {r['stage']} | {r['batch']} | {r.get('remat', 'none')} | {r['compile_s']} | "
            + (f"{r['step_s_median']:.3f} | {r['step_s_min']:.2f}-{r['step_s_max']:.2f}" if timed else "— | —")
            + f" | {r['flops_per_step'] / 1e9:.1f} | {_fmt(r.get('flop_floor_s'))} | "
            f"{'—' if dev_mem is None else f'{dev_mem:.2f} GiB'} | {_fmt(t.get('step_s_median'), '.3f')} | "
            + (f"{t['step_s_min']:.2f}-{t['step_s_max']:.2f}" if t.get("step_s_min") is not None else "—")
            + f" | {_fmt(t.get('flops_per_step_counted') and t['flops_per_step_counted'] / 1e9, '.1f')} | "
            f"{_fmt(t.get('flop_floor_s'))} | {_fmt(speed)}{'x' if speed is not None else ''} | {verdict} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = cli.ArgumentParser(NAME, prog="python benchmarks/step_throughput.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="tiny128", help="comma-separated presets: tiny128,small512,ffhq512-128")
    p.add_argument("--batch", type=cli.positive_int, default=2)
    p.add_argument("--stages", type=_stages, default="1,2")
    p.add_argument("--steps", type=cli.non_negative_int, default=3, help="timed steps after one warm-up; 0: compile only")
    p.add_argument("--remat", default="none", choices=["none", "renderer", "full"],
                   help="the generator's rematerialisation policy (GeneratorConfig.remat)")
    p.add_argument("--neural-rendering-resolution", type=int, default=None)
    p.add_argument("--encoder", default="none", choices=["none", "rgb"],
                   help="'none': Adam on W+ codes + G (what the PyTorch baseline times); 'rgb': the official RGB encoder")
    p.add_argument("--threads", type=cli.positive_int, default=2, help="CPU threads for each side (see the module doc)")
    p.add_argument("--torch-eg3d", default=None, help="path to a clone of NVlabs/eg3d for the PyTorch baseline")
    p.add_argument("--torch-python", default=sys.executable,
                   help="interpreter with torch (+ numpy, scipy, click, pillow, requests) for the baseline")
    p.add_argument("--out", default=None, help="write results as JSON here")
    args = p.parse_args(argv)
    print(f"threads: {limit_cpus(args.threads)}", file=sys.stderr)
    huge_pages = huge_pages_requested()
    print(f"host memory: glibc malloc {'with' if huge_pages else 'without'} transparent huge pages "
          f"(both sides; hfagp_common/host.py)", file=sys.stderr)
    if args.torch_eg3d is None:
        ok, msg = False, "no --torch-eg3d given"
    else:
        ok, msg = torch_preflight(args.torch_eg3d, args.torch_python)
    torch_skipped = None if ok else msg
    print(f"PyTorch baseline: {msg if ok else 'skipped: ' + msg}", file=sys.stderr, flush=True)
    conv_gflops = conv_rate_gflops(**CONV_SHAPE)
    print(f"conv rate (JAX, 3x3 {CONV_SHAPE}): {conv_gflops:.1f} GFLOP/s", file=sys.stderr)
    results, torch_enabled, first_torch = [], torch_skipped is None, True
    for name in args.configs.split(","):
        for stage in (int(s) for s in args.stages.split(",")):
            r, spec = measure(name, args.batch, stage, args.steps, args.neural_rendering_resolution, args.encoder,
                              conv_gflops, remat=args.remat)
            r["conv_gflops"] = round(conv_gflops, 1)
            r["malloc_huge_pages"] = huge_pages
            if torch_skipped:
                r["torch_skipped"] = torch_skipped
            if torch_enabled and args.steps > 0:
                release_memory()
                t = run_torch(args.torch_eg3d, args.torch_python, spec, batch=args.batch, stage=stage,
                              steps=args.steps, encoder=args.encoder, threads=args.threads, conv_rate=first_torch)
                if "skipped" in t:
                    print(f"PyTorch baseline: skipped: {t['skipped']}", file=sys.stderr)
                    torch_enabled = False
                    r["torch_skipped"] = t["skipped"]
                elif "error" in t:
                    print(f"PyTorch baseline ({name}, stage {stage}): {t['error']}", file=sys.stderr)
                    r["torch_error"] = t["error"]
                else:
                    first_torch = False
                    t["flop_floor_s"] = round(t["flops_per_step_counted"] / (conv_gflops * 1e9), 3)
                    r["torch"] = t
                    r["speedup_vs_torch"] = round(t["step_s_median"] / r["step_s_median"], 3)
                    if t["params_optimised"] != r["params_optimised"]:
                        print(f"warning: {name} stage {stage}: PyTorch optimises {t['params_optimised']} values, "
                              f"JAX {r['params_optimised']}", file=sys.stderr)
            print(json.dumps(r), flush=True)
            results.append(r)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("\n" + markdown_table(results))
    return 0


if __name__ == "__main__":
    from hfagp_common.host import reexec_with_huge_pages

    reexec_with_huge_pages()  # before JAX starts; the PyTorch child inherits the same setting
    sys.exit(cli.run(NAME, main))  # an error in the measurement: one line, exit 2
