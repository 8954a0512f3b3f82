"""Inference rendering throughput: images/s of `G.synthesis` at batch sizes 1..N.

    python benchmarks/render_throughput.py --configs ffhq512-128 --batches 1,2,4 --reps 3 --out render.json
    python benchmarks/render_throughput.py --generator ~/gens/ffhq512-128 --batches 1,8,16

What is timed is what `hfagp.render` does per frame: W+ codes + cameras -> the final image
(deterministic importance rendering at the config's neural rendering resolution, tri-plane backbone,
super-resolution), one jitted call per batch with the generator's variables as arguments. For each
batch size: compile time, median seconds per batch (and spread) over --reps calls after a warm-up,
images/s, XLA's FLOP count and memory analysis, peak device memory (`memory_stats` where the backend
has it, the process's peak so far; else XLA's analysis), peak host RSS, and whether a call recompiled.
`--dtype` is the generator's compute dtype and `--precision` the float32 matmul/conv precision
(`hfagp/precision.py`); both are printed at start and recorded in every row.
Randomly initialised weights (`--configs`) render as fast as trained ones; `--generator` times a
converted checkpoint instead. `--remat` has no effect here (no backward pass) and is not offered.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hfagp_common import cli  # noqa: E402  (no JAX import)

NAME = "render_throughput.py"

from hfagp.precision import PRECISIONS  # noqa: E402
from step_throughput import device_memory, random_generator, xla_cost  # noqa: E402  (a sibling script)


def build(config_name: str | None, generator_path: str | None, dtype: str):
    import eg3d_flax

    if generator_path:
        G = eg3d_flax.load_generator(generator_path)
        G = eg3d_flax.Generator(G.config.replace(compute_dtype=dtype), G.variables)
        return G, Path(generator_path).name
    return random_generator(eg3d_flax.preset(config_name, compute_dtype=dtype), seed=0), config_name


def measure(G, label: str, batch: int, reps: int, precision: str = "highest", rows_before: int = 0) -> dict:
    """One row: `G` rendering `batch` images per call (the caller applies the precision context)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from avatar_data.cameras import EG3D_FOV_DEG, fov_to_intrinsics, yaw_sweep

    module = G.module
    rng = np.random.default_rng(0)
    cameras = jnp.asarray(yaw_sweep(batch, 20.0, intrinsics=fov_to_intrinsics(EG3D_FOV_DEG)))
    ws = G.mapping(jnp.asarray(rng.standard_normal((batch, G.config.z_dim)), jnp.float32), cameras)

    @jax.jit
    def render(variables, ws, cameras):
        return module.apply(variables, ws, cameras, method=module.synthesis)["image"]

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    compiled = render.lower(G.variables, ws, cameras).compile()
    compile_s = time.perf_counter() - t0
    flops, mem_info = xla_cost(compiled)
    jax.block_until_ready(render(G.variables, ws, cameras))  # warm-up through the jit cache
    cache_before = render._cache_size()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        img = render(G.variables, ws, cameras)
        jax.block_until_ready(img)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {
        "generator": label, "batch": batch, "img_resolution": G.config.img_resolution,
        "neural_rendering_resolution": G.config.neural_rendering_resolution,
        "compute_dtype": G.config.compute_dtype, "precision": precision, "backend": jax.default_backend(),
        "jax_version": jax.__version__,
        "device": str(jax.devices()[0].device_kind), "compile_s": round(compile_s, 2),
        "batch_s_median": round(med, 4), "batch_s_min": round(min(times), 4), "batch_s_max": round(max(times), 4),
        "images_per_s": round(batch / med, 3), "flops_per_batch": flops,
        "achieved_gflops": round(flops / med / 1e9, 2) if med > 0 else None, "memory_analysis": mem_info,
        **device_memory(mem_info, rows_before),
        "peak_host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "recompiled": render._cache_size() != cache_before,
        "finite": bool(np.isfinite(np.asarray(img)).all()),
        "loadavg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def markdown_table(results: list[dict]) -> str:
    rows = ["| generator | dtype | precision | batch | compile s | s/batch (median) | min-max | images/s | GFLOP/batch | "
            "temp memory (XLA) | peak device memory | recompiled |", "| --- " * 12 + "|"]
    for r in results:
        temp = r["memory_analysis"].get("temp_size_in_bytes")
        peak = r.get("device_peak_bytes")
        rows.append(
            f"| {r['generator']} | {r['compute_dtype']} | {r.get('precision', 'highest')} | {r['batch']} | "
            f"{r['compile_s']} | {r['batch_s_median']:.4f} | "
            f"{r['batch_s_min']:.4f}-{r['batch_s_max']:.4f} | {r['images_per_s']:.2f} | "
            f"{r['flops_per_batch'] / 1e9:.0f} | {'—' if temp is None else f'{temp / 2**30:.2f} GiB'} | "
            f"{'—' if peak is None else f'{peak / 2**30:.2f} GiB'} | {'YES' if r['recompiled'] else 'no'} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = cli.ArgumentParser(NAME, prog="python benchmarks/render_throughput.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="ffhq512-128",
                   help="comma-separated presets with random weights (tiny128, small512, ffhq512-128)")
    p.add_argument("--generator", default=None, help="a converted generator directory instead of --configs")
    p.add_argument("--batches", default="1,2,4", help="comma-separated batch sizes")
    p.add_argument("--reps", type=cli.int_in(1, 10_000), default=3, help="timed calls per batch size (after one warm-up)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="compute dtype of the backbone/SR convolutions")
    p.add_argument("--precision", default="highest", choices=PRECISIONS,
                   help="float32 matmul/conv precision (hfagp/precision.py)")
    p.add_argument("--out", default=None, help="write results as JSON here")
    args = p.parse_args(argv)
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        p.error(f"--batches must be comma-separated integers, got {args.batches!r}")
    if any(b < 1 for b in batches) or args.reps < 1:
        p.error("batch sizes and --reps must be >= 1")
    if args.generator and not Path(args.generator, "generator.json").is_file():
        p.error(f"--generator {args.generator}: not a converted generator directory (no generator.json)")
    from hfagp import precision as precision_lib

    results = []
    sources = [(None, args.generator)] if args.generator else [(c, None) for c in args.configs.split(",")]
    with precision_lib.matmul_precision(args.precision):
        print(precision_lib.describe(args.precision, args.dtype), file=sys.stderr, flush=True)
        for config_name, path in sources:
            G, label = build(config_name, path, args.dtype)
            for batch in batches:
                r = measure(G, label, batch, args.reps, args.precision, rows_before=len(results))
                print(json.dumps(r), flush=True)
                results.append(r)
                if args.out:  # after every row, so a run stopped midway keeps what it measured
                    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("\n" + markdown_table(results))
    return 0


if __name__ == "__main__":
    from hfagp_common.host import reexec_with_huge_pages

    reexec_with_huge_pages()  # before JAX starts (hfagp_common/host.py)
    sys.exit(cli.run(NAME, main))  # an error in the measurement: one line, exit 2
