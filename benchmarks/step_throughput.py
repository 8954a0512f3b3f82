"""Training-step throughput of the JAX implementation (stage 1 and stage 2), with XLA cost analysis.

    python benchmarks/step_throughput.py --configs tiny128,small512 --batch 2 --steps 5 --out bench.json

For each generator config and stage it reports: compile time, median steady-state step time and its
spread (min/max over --steps timed steps after one warm-up), FLOPs per step from XLA's cost analysis
and the achieved FLOP/s, XLA's memory analysis (argument/output/temp bytes), peak host RSS, and
whether the step recompiled after the first call (it must not).

The step mirrors `hfagp.train_lib`'s (latent, G.synthesis with stochastic rendering, L2 loss,
backward, Adam; stage 2 also updates G) on random data, without the input pipeline. The latent is
either W+ codes optimised directly (`--encoder none`, the default: what the PyTorch baseline in
NOTES.md times) or the official RGB encoder + basis (`--encoder rgb`, ~180 GFLOP more per step at 256). The PyTorch baseline is not run by this script
unless --torch-eg3d points at a clone of NVlabs/eg3d and torch is installed (not implemented yet:
the flag only reports that it is skipped).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(config_name: str, batch: int, nrr: int | None, encoder: str):
    import eg3d_flax
    from configs.common import base_config
    from hfagp import losses
    from hfagp.model import avatar_prior_from_config
    from hfagp.optim import make_optimizer
    from hfagp.train_lib import TrainState, init_params

    cfg = base_config("rgb", "paper")
    cfg.loss.lpips_weight = 0.0
    gcfg = eg3d_flax.preset(config_name)
    if nrr:
        gcfg = gcfg.replace(neural_rendering_resolution=nrr)
    cfg.loss.resolution = gcfg.img_resolution
    G = eg3d_flax.random_generator(gcfg, seed=0)
    model = avatar_prior_from_config(cfg.model, gcfg.num_ws, gcfg.w_dim)
    res = gcfg.img_resolution
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(-1, 1, (batch, res, res, 3)), jnp.float32)
    from hfagp.summaries import orbit_cameras

    labels = jnp.asarray(orbit_cameras(batch, 10.0))
    if encoder == "none":  # optimise W+ codes directly, like the PyTorch baseline's "Adam on ws + G"
        ws0 = G.mapping(jnp.asarray(rng.standard_normal((batch, 512)), jnp.float32), labels)
        params = {"model": {"ws": ws0}, "generator": G.variables["params"]}
    else:
        params = init_params(model, G, images[:1], jax.random.PRNGKey(0), "official")
    tx = make_optimizer(cfg.optim, params, generator_start=0, freeze_prior=False, tune_generator=True)
    state = TrainState(step=jnp.zeros([], jnp.int32), params=params, opt_state=tx.init(params),
                       rng=jax.random.PRNGKey(1))
    gen = G.module

    def step_fn(train_generator):
        def train_step(state, batch, buffers):
            key = jax.random.fold_in(state.rng, state.step)

            def loss_fn(mp, gp):
                ws = mp["ws"] if encoder == "none" else model.apply({"params": mp}, batch["image"])
                out = gen.apply({"params": gp, "buffers": buffers}, ws, batch["label"], "const", False, None,
                                method=gen.synthesis, rngs={"render": key})
                return losses.reconstruction_loss(out["image"], batch["image"], loss_resolution=res,
                                                  lpips_weight=0.0)[0]

            if train_generator:
                loss, (gm, gg) = jax.value_and_grad(loss_fn, argnums=(0, 1))(state.params["model"],
                                                                             state.params["generator"])
            else:
                loss, gm = jax.value_and_grad(loss_fn)(state.params["model"], state.params["generator"])
                gg = jax.tree_util.tree_map(jnp.zeros_like, state.params["generator"])
            updates, opt = tx.update({"model": gm, "generator": gg}, state.opt_state, state.params)
            import optax

            params = optax.apply_updates(state.params, updates)
            return state.replace(step=state.step + 1, params=params, opt_state=opt), loss

        return jax.jit(train_step, donate_argnums=(0,))

    return state, {"image": images, "label": labels}, G.variables["buffers"], step_fn, gcfg


def measure(config_name: str, batch: int, stage: int, steps: int, nrr: int | None, encoder: str) -> dict:
    state, batch_data, buffers, step_fn, gcfg = build(config_name, batch, nrr, encoder)
    fn = step_fn(stage == 2)
    t0 = time.perf_counter()
    lowered = fn.lower(state, batch_data, buffers)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
    mem = compiled.memory_analysis()
    mem_info = {}
    if mem is not None:
        for k in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
                  "generated_code_size_in_bytes"):
            mem_info[k] = int(getattr(mem, k, 0))
    state, loss = fn(state, batch_data, buffers)  # warm-up (first call)
    jax.block_until_ready(loss)
    cache_before = fn._cache_size() if hasattr(fn, "_cache_size") else None
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, loss = fn(state, batch_data, buffers)
        jax.block_until_ready(loss)
        times.append(time.perf_counter() - t)
    cache_after = fn._cache_size() if hasattr(fn, "_cache_size") else None
    med = statistics.median(times)
    return {
        "config": config_name, "encoder": encoder, "stage": stage, "batch": batch, "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind), "neural_rendering_resolution": gcfg.neural_rendering_resolution,
        "compile_s": round(compile_s, 2), "step_s_median": round(med, 4), "step_s_min": round(min(times), 4),
        "step_s_max": round(max(times), 4), "flops_per_step": flops,
        "achieved_gflops": round(flops / med / 1e9, 2) if med > 0 else None,
        "memory_analysis": mem_info, "peak_host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "recompiled_after_first_step": (cache_after != cache_before) if cache_before is not None else None,
        "loss": float(loss),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="tiny128", help="comma-separated presets: tiny128,small512,ffhq512-128")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--stages", default="1,2")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--neural-rendering-resolution", type=int, default=None)
    p.add_argument("--encoder", default="none", choices=["none", "rgb"],
                   help="'none': Adam on W+ codes + G (what the PyTorch baseline times); 'rgb': the official RGB encoder")
    p.add_argument("--torch-eg3d", default=None, help="path to a clone of NVlabs/eg3d for the PyTorch baseline")
    p.add_argument("--out", default=None, help="write results as JSON here")
    args = p.parse_args(argv)
    if args.torch_eg3d is None:
        print("PyTorch baseline: skipped (no --torch-eg3d given)", file=sys.stderr)
    else:
        print("PyTorch baseline: not implemented in this version of the script; skipped", file=sys.stderr)
    results = []
    for name in args.configs.split(","):
        for stage in (int(s) for s in args.stages.split(",")):
            r = measure(name, args.batch, stage, args.steps, args.neural_rendering_resolution, args.encoder)
            print(json.dumps(r), flush=True)
            results.append(r)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("\n| config | stage | batch | compile s | step s (median) | min-max | GFLOP/step | GFLOP/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['config']} | {r['stage']} | {r['batch']} | {r['compile_s']} | {r['step_s_median']} | "
              f"{r['step_s_min']}-{r['step_s_max']} | {r['flops_per_step'] / 1e9:.1f} | {r['achieved_gflops']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
