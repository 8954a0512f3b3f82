"""Training's step: the loss of the paper's Eq. 2 on the avatar model, the train step of each stage, and the
render functions of the in-training evaluation (the step is also timed by `benchmarks/step_throughput.py`).

    state, metrics = train_step(state, batch, constants)

`make_stage_step(...)` returns the generic step (`hfagp.runtime.step.make_train_step`) of the reconstruction loss
of the encoder + prior + generator on the batch, differentiated with respect to the groups the freeze schedule
trains at this stage.

Batch: {'image' [B,R,R,3] in [-1, 1], 'label' [B,25], and the encoder's input ('image', 'expression'
[B,E], 'audio' [B,16,29] or 'audio_window' [B,W,16,29])}. Constants: {'generator_buffers', 'lpips'?}.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from hfagp import model as model_lib
from hfagp.runtime.step import make_train_step
from hfagp.train import losses
from hfagp.train.optim import ATTENTION


def make_loss_fn(config, spec: model_lib.ModelSpec, model: model_lib.AvatarModel, gen_module) -> Callable:
    """loss_fn(params, batch, constants, rng) -> (loss, metrics): Eq. 2 (its L2 weighted on the face with
    `loss.face_weight` > 0, from the batch's 'face_points') plus the orthogonality penalty.

    The forward is `model`'s: for the audio encoder `model.audio_smoothing` says whether it uses the attention
    net (the training loop passes the model of the step's stage, `hfagp.model.ModelSpec.smoothing_at`)."""
    loss_cfg = config.loss
    deterministic = bool(config.generator.render_deterministic)
    penalty_weight = float(config.model.orthogonality_penalty_weight)
    face_weight = float(loss_cfg.face_weight)

    def loss_fn(params, batch, constants, rng):
        ws = model.apply({"params": params["model"]}, spec.encoder_inputs(batch))
        out = gen_module.apply(
            {"params": params["generator"], "buffers": constants["generator_buffers"]}, ws, batch["label"],
            "const", deterministic, None, method=gen_module.synthesis, rngs={"render": rng})
        weights = None
        if face_weight > 0:
            weights = losses.face_weights(batch["face_points"], batch["image"].shape[1], face_weight)
        loss, metrics = losses.reconstruction_loss(
            out["image"], batch["image"], loss_resolution=loss_cfg.resolution,
            lpips_weight=loss_cfg.lpips_weight, lpips_fn=constants.get("lpips"), pixel_weights=weights)
        penalty = model.apply({"params": params["model"]}, method=model.penalty)
        metrics["orthogonality_penalty"] = penalty
        return loss + penalty_weight * penalty, metrics

    return loss_fn


def make_stage_step(config, spec: model_lib.ModelSpec, model: model_lib.AvatarModel, gen_module,
                    tx: optax.GradientTransformation, trained: frozenset) -> Callable:
    """The train step of the stage in which the groups `trained` (`FreezeSchedule.trainable_at`) are trained:
    the generator is differentiated only when it trains, and the audio encoder's forward uses the attention
    smoothing once its group ('attention') trains."""
    stage_model = model.clone(audio_smoothing=ATTENTION in trained)
    return make_train_step(make_loss_fn(config, spec, stage_model, gen_module), tx,
                           train_generator="generator" in trained)


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


__all__ = ["make_basis_render_fn", "make_loss_fn", "make_render_fn", "make_stage_step"]
