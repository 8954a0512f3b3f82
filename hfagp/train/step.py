"""The train state and the one train step (also timed by `benchmarks/step_throughput.py`).

    state, metrics = train_step(state, batch, constants)

`make_train_step(...)` returns a pure function of (TrainState, batch, constants): the reconstruction loss
of the encoder + prior + generator on the batch, its gradient with respect to the groups the freeze
schedule trains at this stage, one optimizer update. Per-step randomness (EG3D's stratified ray jitter) is
`fold_in(state.rng, state.step)`, so a resumed run repeats an uninterrupted one exactly.

Batch: {'image' [B,R,R,3] in [-1, 1], 'label' [B,25], and the encoder's input ('image', 'expression'
[B,E], 'audio' [B,16,29] or 'audio_window' [B,W,16,29])}. Constants: {'generator_buffers', 'lpips'?}.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from hfagp import model as model_lib
from hfagp.train import losses
from hfagp.train.optim import ATTENTION


@flax.struct.dataclass
class TrainState:
    step: jax.Array          # int32 scalar: number of updates applied
    params: Any              # {'model': {'encoder', 'prior'}, 'generator': EG3D params}
    opt_state: Any
    rng: jax.Array           # base key; step key = fold_in(rng, step)


def create_train_state(params: dict, tx: optax.GradientTransformation, rng: jax.Array) -> TrainState:
    params = jax.tree_util.tree_map(jnp.asarray, params)
    return TrainState(step=jnp.zeros([], jnp.int32), params=params, opt_state=tx.init(params), rng=rng)


def make_loss_fn(config, model: model_lib.AvatarModel, gen_module) -> Callable:
    """loss_fn(params, batch, constants, rng) -> (loss, metrics): Eq. 2 plus the orthogonality penalty.

    The forward is `model`'s: for the audio encoder `model.audio_smoothing` says whether it uses the attention
    net (the training loop passes the model of the step's stage, `hfagp.model.smoothing_at`)."""
    loss_cfg = config.loss
    deterministic = bool(config.generator.render_deterministic)
    penalty_weight = float(config.model.orthogonality_penalty_weight)

    def loss_fn(params, batch, constants, rng):
        ws = model.apply({"params": params["model"]}, model_lib.encoder_inputs(batch, config))
        out = gen_module.apply(
            {"params": params["generator"], "buffers": constants["generator_buffers"]}, ws, batch["label"],
            "const", deterministic, None, method=gen_module.synthesis, rngs={"render": rng})
        loss, metrics = losses.reconstruction_loss(
            out["image"], batch["image"], loss_resolution=loss_cfg.resolution,
            lpips_weight=loss_cfg.lpips_weight, lpips_fn=constants.get("lpips"))
        penalty = model.apply({"params": params["model"]}, method=model.penalty)
        metrics["orthogonality_penalty"] = penalty
        return loss + penalty_weight * penalty, metrics

    return loss_fn


def make_train_step(loss_fn: Callable, tx: optax.GradientTransformation, train_generator: bool) -> Callable:
    """The train step of one stage. train_generator=False (stage 1) differentiates only the model's params
    (the generator's gradient is zero and never computed); True (stage 2) all of them."""

    def split(params):
        if train_generator:
            return params, {}
        return {"model": params["model"]}, {"generator": params["generator"]}

    def objective(trainable, frozen, batch, constants, rng):
        return loss_fn({**trainable, **frozen}, batch, constants, rng)

    def train_step(state: TrainState, batch: dict, constants: dict):
        rng = jax.random.fold_in(state.rng, state.step)
        trainable, frozen = split(state.params)
        (loss, metrics), grads = jax.value_and_grad(objective, has_aux=True)(trainable, frozen, batch, constants,
                                                                             rng)
        grads = {**grads, **jax.tree_util.tree_map(jnp.zeros_like, frozen)}
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.tree.norm(grads)
        metrics.update(loss=loss, grad_norm=grad_norm, finite=jnp.isfinite(loss) & jnp.isfinite(grad_norm))
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return train_step


def make_stage_step(config, model: model_lib.AvatarModel, gen_module, tx: optax.GradientTransformation,
                    trained: frozenset) -> Callable:
    """The train step of the stage in which the groups `trained` (`FreezeSchedule.trainable_at`) are trained:
    the generator is differentiated only when it trains, and the audio encoder's forward uses the attention
    smoothing once its group ('attention') trains."""
    stage_model = model.clone(audio_smoothing=ATTENTION in trained)
    return make_train_step(make_loss_fn(config, stage_model, gen_module), tx, train_generator="generator" in trained)


def make_render_fn(model: model_lib.AvatarModel, gen_module) -> Callable:
    """(params, constants, inputs, cameras [B,25]) -> images [B,R,R,3] clipped to [-1, 1] (deterministic)."""

    def render(params, constants, inputs, cameras):
        ws = model.apply({"params": params["model"]}, inputs)
        out = gen_module.apply({"params": params["generator"], "buffers": constants["generator_buffers"]},
                               ws, cameras, method=gen_module.synthesis)
        return jnp.clip(out["image"], -1.0, 1.0)

    return render


def make_basis_render_fn(model: model_lib.AvatarModel, gen_module, scale: float) -> Callable:
    """(params, constants, camera [1,25]) -> [k,R,R,3]: offset + scale * basis row i, one image per row."""

    def render(params, constants, cameras):
        ws = model.apply({"params": params["model"]}, scale, method=model.basis_ws)
        return jax.lax.map(
            lambda w: gen_module.apply({"params": params["generator"], "buffers": constants["generator_buffers"]},
                                       w[None], cameras[:1], method=gen_module.synthesis)["image"][0], ws)

    return render


__all__ = ["TrainState", "create_train_state", "make_basis_render_fn", "make_loss_fn", "make_render_fn",
           "make_stage_step", "make_train_step"]
