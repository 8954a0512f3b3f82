"""HFA-GP training: fit encoder + personalized basis (stage 1), then the generator too (stage 2).

Entry point: `train_and_evaluate(config, workdir)` (called by `train.py`). The step (`hfagp.train.step`)
is jit-compiled with explicit shardings over a 1-D mesh of all devices (batch split along 'data',
everything else replicated) and the state donated; the freeze schedule (`hfagp.train.optim`) says which
of its programs (one per set of trained groups: stage 1, stage 2, and for the audio encoder with smoothing
also before/after the attention net's start, whose forward differs) runs at each step. The data iterator
position is checkpointed with the state, so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import eg3d_flax
import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from hfagp import datasets as datasets_lib
from hfagp import model as model_lib
from hfagp import precision as precision_lib
from hfagp import workdir as workdir_lib
from hfagp.runtime import checkpointing, summaries
from hfagp.runtime.step import TrainState, create_train_state
from hfagp.runtime.stopping import StopRequest, TrainingError
from hfagp.train import distributed, resume, validate
from hfagp.train.evaluator import Evaluator
from hfagp.train.optim import FreezeSchedule
from hfagp.train.step import make_basis_render_fn, make_render_fn, make_stage_step
from hfagp_common import atomic


@dataclasses.dataclass
class Setup:
    """Everything built from a config before the first step (no compilation yet)."""

    config: Any
    spec: model_lib.ModelSpec
    generator: eg3d_flax.Generator
    model: model_lib.AvatarModel
    datasets: datasets_lib.Datasets
    lpips_fn: Optional[Any]
    mesh: Mesh
    schedule: FreezeSchedule
    tx: optax.GradientTransformation


def build_setup(config, workdir) -> Setup:
    """Validates the config and builds generator, data, LPIPS, model, freeze schedule and optimizer."""
    validate.check_config(config)
    spec = model_lib.ModelSpec.from_config(config)
    G = model_lib.build_generator(config.generator)
    datasets = datasets_lib.build_datasets(config, workdir)
    validate.check_data_matches(config, spec, G.config, datasets)
    lpips_fn = None
    if config.loss.lpips_weight > 0:
        from hfagp.lpips import make_lpips

        lpips_fn = make_lpips(config.loss.lpips_weights, config.loss.lpips_net)
    model = model_lib.avatar_model(spec, G.config.num_ws, G.config.w_dim, G.config.conv_impl)
    schedule = FreezeSchedule.from_config(config)
    sample = datasets.sample_inputs(spec)
    shapes = jax.eval_shape(lambda k: model_lib.init_params(model, G, sample, k), jax.random.PRNGKey(0))
    return Setup(config, spec, G, model, datasets, lpips_fn, distributed.make_mesh(), schedule,
                 schedule.optimizer(config.optim, shapes))


def initial_state(setup: Setup) -> TrainState:
    """Step 0: initial params (a shared prior loaded from its run), fresh optimizer state."""
    cfg = setup.config
    init_key, train_key = jax.random.split(jax.random.PRNGKey(cfg.seed))
    params = model_lib.init_params(setup.model, setup.generator, setup.datasets.sample_inputs(setup.spec), init_key)
    if cfg.model.shared_prior_from:
        _, shared = workdir_lib.restore_params(cfg.model.shared_prior_from)
        params["model"]["prior"] = shared["model"]["prior"]
    return create_train_state(params, setup.tx, train_key)


def save_random_generator(setup: Setup, workdir: Path) -> None:
    """A random-preset run keeps its initial generator in `<workdir>/generator/`, so that inference loads it
    instead of re-running the random initialisation (multi-process: inference rebuilds it from the seed)."""
    cfg = setup.config
    out = Path(workdir) / workdir_lib.RANDOM_GENERATOR_DIR
    if cfg.generator.path or (out / "generator.json").is_file() or jax.process_count() > 1:
        return
    eg3d_flax.save_generator(setup.generator, out, metadata={"preset": cfg.generator.preset,
                                                             "preset_seed": cfg.generator.preset_seed})


def device_batch(batch: dict, sharding, local_batch: int, input_key: str, face_points: bool = False) -> dict:
    """Host numpy batch (this process's share) -> global jax arrays sharded along the batch axis: 'image',
    'label', the encoder's input `input_key` (`ModelSpec.input_key`) and, for a face-weighted loss, 'face_points'."""
    out = {}
    for key in {"image", "label", input_key} | ({"face_points"} if face_points else set()):
        value = np.asarray(batch[key], np.float32)
        if value.shape[0] != local_batch:
            raise ValueError(f"batch[{key!r}] has {value.shape[0]} rows, expected {local_batch}")
        out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out


class MetricsLog:
    """Checks every step's metrics for finiteness and logs them, one step behind the device.

    The host reads step t's metrics while step t+1 runs, so logging never stalls the device; `flush`
    settles the pending step (before a checkpoint, an evaluation or the end)."""

    def __init__(self, ckpt: checkpointing.Checkpointer):
        self.ckpt = ckpt
        self.pending: Optional[tuple[int, dict]] = None
        self.latest: dict = {}

    def push(self, step: int, metrics: dict) -> None:
        self.flush()
        self.pending = (step, metrics)

    def flush(self) -> None:
        if self.pending is None:
            return
        step, metrics = self.pending
        self.pending = None
        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if not values.pop("finite", 1.0):
            self.ckpt.wait()
            raise TrainingError(
                f"non-finite loss or gradient at step {step} (loss={values.get('loss')}, "
                f"grad_norm={values.get('grad_norm')}); stopping. The last good checkpoint is step "
                f"{self.ckpt.latest_step()} in {self.ckpt.directory}; lower the learning rate or check the data, "
                f"then rerun to resume.")
        self.latest = {"step": step, **values}
        self.ckpt.log_metrics(step, values)


def train_and_evaluate(config, workdir) -> dict:
    """Run (or resume) training in `workdir`. Returns the final evaluation metrics.

    The run holds the workdir's lock throughout and may resume only with a compatible config
    (`hfagp.train.resume.claim`). Everything is traced under the config's float32 matmul/conv precision
    (`hfagp.precision`)."""
    with precision_lib.matmul_precision(precision_lib.of_config(config)), resume.claim(config, workdir) as workdir:
        return _train_and_evaluate(config, workdir)


def _train_and_evaluate(config, workdir) -> dict:
    # Decide how to start. The order is important: 1. the compilation cache and the distributed runtime
    # before any computation; 2. everything built from the config (it validates first); 3. the initial or
    # the restored state, on the mesh.
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if config.compilation_cache_dir and not jax.config.jax_compilation_cache_dir:
        # Restarts (resume after preemption) then load compiled steps instead of recompiling.
        jax.config.update("jax_compilation_cache_dir", str(Path(config.compilation_cache_dir).expanduser()))
    if config.distributed.enabled:
        distributed.initialize(config.distributed)
    setup = build_setup(config, workdir)
    cfg, mesh = setup.config, setup.mesh
    is_main = jax.process_index() == 0
    if is_main:
        print(precision_lib.describe(precision_lib.of_config(cfg), setup.generator.config.compute_dtype),
              file=sys.stderr)
    replicated, batch_sharding = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    if cfg.optim.batch_size % mesh.size:
        raise TrainingError(f"optim.batch_size={cfg.optim.batch_size} is not divisible by the {mesh.size} devices")
    if is_main:
        atomic.write_text(workdir / workdir_lib.CONFIG_FILE, cfg.to_json_best_effort(indent=2) + "\n")
        save_random_generator(setup, workdir)

    state = initial_state(setup)
    distributed.barrier("train_state_created")  # processes get here at different times (set-up, init)
    state = jax.device_put(state, replicated)
    constants = {"generator_buffers": setup.generator.variables["buffers"]}
    if setup.lpips_fn is not None:
        constants["lpips"] = setup.lpips_fn
    constants = jax.device_put(constants, replicated)

    ckpt = checkpointing.Checkpointer(workdir, keep=cfg.checkpoint.keep)
    train_iter = setup.datasets.train_iterator(cfg, jax.process_index(), jax.process_count())
    restored = ckpt.restore_latest(state, replicated)
    if restored is not None:
        from avatar_data.pipeline import restore_iterator_state

        state, data_state = restored
        if data_state is not None:
            restore_iterator_state(train_iter, data_state)
        if is_main:
            print(f"resumed from {ckpt.directory} at step {int(jax.device_get(state.step))}", file=sys.stderr)
    start_step = int(jax.device_get(state.step))

    writer = summaries.SummaryWriter(workdir, enabled=is_main)
    gen_module = setup.generator.module
    evaluator = None
    if cfg.eval.max_frames > 0:
        smoothed = None
        if setup.spec.temporal_smoothing:
            smoothed = make_render_fn(setup.model.clone(audio_smoothing=True), gen_module)
        evaluator = Evaluator(cfg, setup.spec, setup.datasets.test, mesh, make_render_fn(setup.model, gen_module),
                              make_basis_render_fn(setup.model, gen_module, cfg.eval.basis_scale), workdir, writer,
                              world_dir=setup.datasets.world_dir, smoothed_render_fn=smoothed)
    if start_step == 0 and evaluator is not None:
        initial = evaluator.evaluate(0, state.params, constants)
        if is_main:
            (workdir / workdir_lib.INITIAL_METRICS_FILE).write_text(json.dumps(initial, indent=2) + "\n")

    programs = {}  # one compiled step per set of trained groups (the freeze schedule's stages)
    total = cfg.schedule.total_steps
    local_batch = cfg.optim.batch_size // jax.process_count()
    bar = summaries.ProgressBar(total, start_step, enabled=is_main and cfg.progress_bar)
    log = MetricsLog(ckpt)
    final, t_last, steps_since = {}, time.time(), 0
    from avatar_data.pipeline import iterator_state

    try:
        with StopRequest() as stop:
            for step in range(start_step, total):
                batch_np = next(train_iter)
                if step == cfg.debug.nan_at_step:  # fault injection for the non-finite-loss guard's tests
                    batch_np = {**batch_np, "image": np.full_like(batch_np["image"], np.nan, np.float32)}
                batch = device_batch(batch_np, batch_sharding, local_batch, setup.spec.input_key,
                                     face_points=cfg.loss.face_weight > 0)
                trained = setup.schedule.trainable_at(step)
                if trained not in programs:  # compile ahead of the first call, then start together
                    step_fn = make_stage_step(cfg, setup.spec, setup.model, gen_module, setup.tx, trained)
                    programs[trained] = jax.jit(
                        step_fn, in_shardings=(replicated, batch_sharding, replicated),
                        out_shardings=(replicated, replicated), donate_argnums=(0,),
                    ).lower(state, batch, constants).compile()
                    distributed.barrier(f"compiled_{'_'.join(sorted(trained))}")
                state, metrics = programs[trained](state, batch, constants)
                done = step + 1
                ckpt.check()  # a save that failed in the background stops the run now
                log.push(done, metrics)
                steps_since += 1
                if done % cfg.log_every == 0 or done == total:
                    log.flush()
                    rate = steps_since / max(time.time() - t_last, 1e-9)
                    t_last, steps_since = time.time(), 0
                    scalars = {f"train/{k}": v for k, v in log.latest.items() if k != "step"}
                    writer.scalars(done, {**scalars, "train/steps_per_s": rate})
                    bar.update(done, log.latest, rate)
                if evaluator is not None and (done % cfg.eval_every == 0 or done == total):
                    final = evaluator.evaluate(done, state.params, constants,
                                               smoothing=setup.spec.smoothing_after(done))
                if done % cfg.checkpoint.every == 0 or done == total or stop.signal is not None:
                    log.flush()
                    ckpt.save(done, state, iterator_state(train_iter))
                if stop.signal is not None:
                    print(f"stopped by signal {stop.signal} at step {done}; checkpoint saved, rerun the same "
                          f"command to resume", file=sys.stderr)
                    return {"stopped_at": done, **final}
            log.flush()
    finally:
        ckpt.wait()
        bar.close()
        writer.close()
    if is_main:
        (workdir / workdir_lib.FINAL_METRICS_FILE).write_text(json.dumps({"step": total, **final}, indent=2) + "\n")
    return final


__all__ = ["Setup", "build_setup", "device_batch", "initial_state", "save_random_generator", "train_and_evaluate"]
