"""HFA-GP training: jointly fit encoder + personalized basis (stage 1), then also the generator (stage 2).

Entry point: `train_and_evaluate(config, workdir)` (called by `train.py`). The step is one pure
function `train_step(state, batch, constants) -> (state, metrics)`, jit-compiled with explicit
shardings over a 1-D mesh of all devices (batch split along 'data', everything else replicated)
and the state donated. Per-step randomness is `fold_in(state.rng, state.step)`, and the data
iterator position is checkpointed, so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import eg3d_flax
from hfagp import checkpointing, config_checks, data as data_lib, losses, summaries
from hfagp.model import AvatarPrior, avatar_prior_from_config, encoder_inputs
from hfagp.optim import make_optimizer


class TrainingError(RuntimeError):
    """A run cannot start or must stop (bad config, missing files, non-finite loss)."""


@flax.struct.dataclass
class TrainState:
    step: jax.Array          # int32 scalar: number of updates applied
    params: Any              # {'model': {'encoder', 'prior'}, 'generator': EG3D params}
    opt_state: Any
    rng: jax.Array           # base key; step key = fold_in(rng, step)


@dataclasses.dataclass
class Setup:
    """Everything built from a config before the first step (no compilation yet)."""

    config: Any
    generator: eg3d_flax.Generator
    model: AvatarPrior
    datasets: data_lib.Datasets
    lpips_fn: Optional[Any]
    mesh: Mesh
    tx: optax.GradientTransformation


# ----------------------------------------------------------------------------------------------
# Building blocks


def build_generator(gen_cfg) -> eg3d_flax.Generator:
    overrides = {"compute_dtype": gen_cfg.compute_dtype, "remat": gen_cfg.get("remat", "none")}
    if gen_cfg.neural_rendering_resolution:
        overrides["neural_rendering_resolution"] = int(gen_cfg.neural_rendering_resolution)
    if gen_cfg.path:
        path = Path(gen_cfg.path)
        if not (path / "generator.json").is_file():
            raise TrainingError(
                f"generator.path={path} is not a converted generator directory; convert the official "
                f"checkpoint first: python -m convert_weights ffhq512-128.pkl {path}")
        return _with_overrides(eg3d_flax.load_generator(path), overrides)
    config = eg3d_flax.preset(gen_cfg.preset, **overrides)
    return eg3d_flax.random_generator(config, seed=gen_cfg.preset_seed)


RANDOM_GENERATOR_DIR = "generator"


def save_random_generator(generator: eg3d_flax.Generator, config, workdir: Path) -> None:
    """A run on a random preset keeps its (initial) generator in `<workdir>/generator/`, so that inference
    (`hfagp.inference.load_trained`) loads it instead of re-running the random initialisation."""
    out = Path(workdir) / RANDOM_GENERATOR_DIR
    if config.generator.path or (out / "generator.json").is_file() or jax.process_count() > 1:
        return  # (multi-process: orbax saves are collective; inference then rebuilds from the preset seed)
    eg3d_flax.save_generator(generator, out, metadata={"preset": config.generator.preset,
                                                         "preset_seed": config.generator.preset_seed})


def _with_overrides(G: eg3d_flax.Generator, overrides: dict) -> eg3d_flax.Generator:
    return eg3d_flax.Generator(G.config.replace(**overrides), G.variables)


def build_lpips(loss_cfg):
    if loss_cfg.lpips_weight <= 0:
        return None
    from hfagp.lpips import make_lpips

    path = loss_cfg.lpips_weights
    if not path or not Path(path).is_file():
        raise TrainingError(
            f"loss.lpips_weight={loss_cfg.lpips_weight} needs LPIPS weights, but loss.lpips_weights={path!r} "
            f"is not a file. Make one once on a machine with internet and torch: python -m hfagp.lpips_convert "
            f"--net {loss_cfg.lpips_net} --out lpips_{loss_cfg.lpips_net}.npz, then pass "
            f"--config.loss.lpips_weights=PATH (or --config.loss.lpips_weight=0 to train with L2 only).")
    return make_lpips(path, loss_cfg.lpips_net)


def make_mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), ("data",))


def init_params(model: AvatarPrior, generator: eg3d_flax.Generator, sample_inputs: jax.Array, key: jax.Array,
                prior_init: str) -> dict:
    model_params = model.init(key, sample_inputs)["params"]
    model_params = flax.core.unfreeze(model_params)
    if prior_init == "w_avg":
        from prior.basis import init_offset_from_w_avg

        w_avg = generator.variables["buffers"]["backbone"]["mapping"]["w_avg"]
        model_params["prior"] = init_offset_from_w_avg(model_params["prior"], w_avg)
    return {"model": model_params, "generator": generator.variables["params"]}


def load_shared_prior(workdir: str) -> dict:
    """The prior params of another run (latest checkpoint), for training against a frozen basis."""
    restored = checkpointing.restore_params_only(Path(workdir) / "checkpoints")
    if restored is None:
        raise TrainingError(f"model.shared_prior_from={workdir}: no checkpoint found there")
    return restored["model"]["prior"]


# ----------------------------------------------------------------------------------------------
# The step


def make_train_step(setup: Setup, train_generator: bool) -> Callable:
    cfg = setup.config
    model, gen_module = setup.model, setup.generator.module
    kind = cfg.model.encoder
    smoothing = bool(dict(cfg.model.encoder_kwargs).get("temporal_smoothing", False))
    deterministic = bool(cfg.generator.render_deterministic)
    tx = setup.tx

    def train_step(state: TrainState, batch: dict, constants: dict):
        key = jax.random.fold_in(state.rng, state.step)

        def loss_fn(model_params, gen_params):
            ws = model.apply({"params": model_params}, encoder_inputs(batch, kind, smoothing))
            out = gen_module.apply(
                {"params": gen_params, "buffers": constants["generator_buffers"]}, ws, batch["label"],
                "const", deterministic, None, method=gen_module.synthesis, rngs={"render": key})
            loss, metrics = losses.reconstruction_loss(
                out["image"], batch["image"], loss_resolution=cfg.loss.resolution,
                lpips_weight=cfg.loss.lpips_weight, lpips_fn=constants.get("lpips"))
            penalty = model.apply({"params": model_params}, method=model.penalty)
            metrics["orthogonality_penalty"] = penalty
            loss = loss + cfg.model.orthogonality_penalty_weight * penalty
            if cfg.debug.nan_at_step >= 0:
                loss = jnp.where(state.step == cfg.debug.nan_at_step, jnp.nan, loss)
            return loss, metrics

        if train_generator:
            (loss, metrics), (g_model, g_gen) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
                state.params["model"], state.params["generator"])
        else:
            (loss, metrics), g_model = jax.value_and_grad(loss_fn, has_aux=True)(
                state.params["model"], jax.lax.stop_gradient(state.params["generator"]))
            g_gen = jax.tree_util.tree_map(jnp.zeros_like, state.params["generator"])
        grads = {"model": g_model, "generator": g_gen}
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.global_norm(grads)
        metrics.update(loss=loss, grad_norm=grad_norm, finite=jnp.isfinite(loss) & jnp.isfinite(grad_norm))
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return train_step


def make_render_fn(setup: Setup) -> Callable:
    """(params, constants, inputs, cameras [B,25]) -> images [B,R,R,3] (deterministic render)."""
    model, gen_module = setup.model, setup.generator.module

    def render(params, constants, inputs, cameras):
        ws = model.apply({"params": params["model"]}, inputs)
        out = gen_module.apply({"params": params["generator"], "buffers": constants["generator_buffers"]},
                               ws, cameras, method=gen_module.synthesis)
        return out["image"]

    return render


def make_basis_render_fn(setup: Setup, scale: float) -> Callable:
    model, gen_module = setup.model, setup.generator.module

    def render(params, constants, cameras):
        ws = model.apply({"params": params["model"]}, scale, method=model.basis_ws)
        return jax.lax.map(
            lambda w: gen_module.apply({"params": params["generator"], "buffers": constants["generator_buffers"]},
                                       w[None], cameras[:1], method=gen_module.synthesis)["image"][0], ws)

    return render


# ----------------------------------------------------------------------------------------------
# Setup and loop


def build_setup(config, workdir: str) -> Setup:
    config_checks.check_config(config)
    G = build_generator(config.generator)
    datasets = data_lib.build_datasets(config, workdir, G)
    config_checks.check_data_matches(config, G.config, datasets)
    lpips_fn = build_lpips(config.loss)
    model = avatar_prior_from_config(config.model, G.config.num_ws, G.config.w_dim)
    tune = config.schedule.generator_tuning_start < config.schedule.total_steps
    sample = datasets.sample_inputs(config.model.encoder, config)
    shapes = jax.eval_shape(lambda k: init_params(model, G, sample, k, "official"), jax.random.PRNGKey(0))
    tx = make_optimizer(config.optim, shapes, generator_start=config.schedule.generator_tuning_start,
                        freeze_prior=bool(config.model.shared_prior_from), tune_generator=tune)
    return Setup(config, G, model, datasets, lpips_fn, make_mesh(), tx)


def create_train_state(setup: Setup) -> TrainState:
    cfg = setup.config
    key = jax.random.PRNGKey(cfg.seed)
    init_key, train_key = jax.random.split(key)
    sample = setup.datasets.sample_inputs(cfg.model.encoder, cfg)
    params = init_params(setup.model, setup.generator, sample, init_key, cfg.model.prior_init)
    if cfg.model.shared_prior_from:
        params["model"]["prior"] = load_shared_prior(cfg.model.shared_prior_from)
    params = jax.tree_util.tree_map(jnp.asarray, params)
    return TrainState(step=jnp.zeros([], jnp.int32), params=params, opt_state=setup.tx.init(params),
                      rng=train_key)


def wait_for_all_processes(name: str, timeout_s: int = 3600) -> None:
    """A barrier on jax.distributed's coordination service (no-op in a single process).

    CPU collectives (gloo) give up after ~30 s when one process is still compiling, so every
    process waits here after long local work (set-up, compilation) before the next collective."""
    if jax.process_count() == 1:
        return
    from jax._src import distributed  # the coordination-service client; no public barrier API in jax 0.10

    client = distributed.global_state.client
    if client is None:
        return
    client.wait_at_barrier(name, timeout_in_ms=timeout_s * 1000)


class _StopRequest:
    """SIGTERM/SIGINT set a flag; the loop checkpoints and exits at the next step boundary."""

    def __init__(self):
        self.signal: Optional[int] = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _to_host_scalars(metrics: dict) -> dict:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


def train_and_evaluate(config, workdir: str) -> dict:
    """Run (or resume) training in `workdir`. Returns the final evaluation metrics."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if config.compilation_cache_dir and not jax.config.jax_compilation_cache_dir:
        # Restarts (resume after preemption) then load compiled steps instead of recompiling.
        jax.config.update("jax_compilation_cache_dir", str(Path(config.compilation_cache_dir).expanduser()))
    if config.distributed.enabled:
        data_lib.initialize_distributed(config.distributed)
    setup = build_setup(config, str(workdir))
    cfg = setup.config
    is_main = jax.process_index() == 0
    mesh = setup.mesh
    replicated = NamedSharding(mesh, P())
    batch_sharding = NamedSharding(mesh, P("data"))
    if cfg.optim.batch_size % mesh.size:
        raise TrainingError(f"optim.batch_size={cfg.optim.batch_size} is not divisible by the {mesh.size} devices")
    if is_main:
        (workdir / "config.json").write_text(cfg.to_json_best_effort(indent=2) + "\n")
        save_random_generator(setup.generator, cfg, workdir)

    state = create_train_state(setup)
    # Processes reach here at different times (set-up, random init); meet before the first collective.
    wait_for_all_processes("train_state_created")
    state = jax.device_put(state, replicated)
    constants = {"generator_buffers": setup.generator.variables["buffers"]}
    if setup.lpips_fn is not None:
        constants["lpips"] = setup.lpips_fn
    constants = jax.device_put(constants, replicated)

    ckpt = checkpointing.Checkpointer(workdir / "checkpoints", keep=cfg.checkpoint.keep)
    train_iter = setup.datasets.train_iterator(cfg, jax.process_index(), jax.process_count())
    restored = ckpt.restore_latest(state, replicated)
    start_step = 0
    if restored is not None:
        state, data_state = restored
        if data_state is not None:
            data_lib.restore_iterator(train_iter, data_state)
        start_step = int(jax.device_get(state.step))
        if is_main:
            print(f"resumed from {ckpt.directory} at step {start_step}", file=sys.stderr)

    writer = summaries.SummaryWriter(workdir, enabled=is_main)
    evaluator = None
    if cfg.eval.max_frames > 0:
        evaluator = summaries.Evaluator(setup, make_render_fn(setup),
                                        make_basis_render_fn(setup, cfg.eval.basis_scale), workdir, writer)
    if start_step == 0 and evaluator is not None:
        initial = evaluator.evaluate(0, state.params, constants)
        if is_main:
            (workdir / "initial_metrics.json").write_text(json.dumps(initial, indent=2) + "\n")
    total = cfg.schedule.total_steps
    tune_start = cfg.schedule.generator_tuning_start
    jit_step = {
        stage2: jax.jit(make_train_step(setup, train_generator=stage2),
                        in_shardings=(replicated, batch_sharding, replicated),
                        out_shardings=(replicated, replicated), donate_argnums=(0,))
        for stage2 in (False, True)
    }
    compiled = {}
    local_batch = cfg.optim.batch_size // jax.process_count()
    bar = summaries.progress_bar(total, start_step, enabled=is_main and cfg.progress_bar)
    history, pending = [], None
    t_last, steps_since = time.time(), 0
    final = {}
    with _StopRequest() as stop:
        step = start_step
        while step < total:
            batch_np = next(train_iter)
            batch = data_lib.device_batch(batch_np, batch_sharding, local_batch, cfg)
            stage2 = step >= tune_start
            if stage2 not in compiled:  # compile ahead of the first call, then start together
                compiled[stage2] = jit_step[stage2].lower(state, batch, constants).compile()
                wait_for_all_processes(f"compiled_stage{1 + stage2}")
            state, metrics = compiled[stage2](state, batch, constants)
            step += 1
            # Check the previous step's metrics while this one runs (keeps one step in flight).
            if pending is not None:
                _check_finite(pending, history, ckpt)
            pending = (step, metrics)
            steps_since += 1
            if step % cfg.log_every == 0 or step == total:
                _check_finite(pending, history, ckpt)
                pending = None
                rate = steps_since / max(time.time() - t_last, 1e-9)
                t_last, steps_since = time.time(), 0
                recent = history[-1]
                writer.scalars(step, {**{f"train/{k}": v for k, v in recent.items() if k != "step"},
                                      "train/steps_per_s": rate})
                bar.update(step, recent, rate)
            if evaluator is not None and (step % cfg.eval_every == 0 or step == total):
                final = evaluator.evaluate(step, state.params, constants)
            if step % cfg.checkpoint.every == 0 or step == total or stop.signal is not None:
                if pending is not None:
                    _check_finite(pending, history, ckpt)
                    pending = None
                ckpt.save(step, state, data_lib.iterator_state(train_iter))
            if stop.signal is not None:
                ckpt.wait()
                bar.close()
                writer.close()
                msg = f"stopped by signal {stop.signal} at step {step}; checkpoint saved, rerun the same command to resume"
                print(msg, file=sys.stderr)
                return {"stopped_at": step, **final}
        if pending is not None:
            _check_finite(pending, history, ckpt)
    ckpt.wait()
    bar.close()
    writer.close()
    if is_main:
        (workdir / "final_metrics.json").write_text(json.dumps({"step": total, **final}, indent=2) + "\n")
    return final


def _check_finite(pending, history: list, ckpt) -> None:
    step, metrics = pending
    values = _to_host_scalars(metrics)
    if not values.pop("finite", 1.0):
        ckpt.wait()
        last = ckpt.latest_step()
        raise TrainingError(
            f"non-finite loss or gradient at step {step} (loss={values.get('loss')}, "
            f"grad_norm={values.get('grad_norm')}); stopping. The last good checkpoint is step {last} "
            f"in {ckpt.directory}; lower the learning rate or check the data, then rerun to resume.")
    history.append({"step": step, **values})
    ckpt.log_metrics(step, values)
