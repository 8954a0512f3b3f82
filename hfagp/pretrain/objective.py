"""The auto-decoder: a learned W code per scene (identity code + scene offset) and the reconstruction loss.

Params: {'model': {'codes': {'identity' [I, w_dim], 'scene' [S, w_dim]}}, 'generator': EG3D params}. The W+
latent of a scene is its code ``identity[i] + scene[s]`` on every layer. The loss of a batch (module doc of
`hfagp.pretrain.data` for the targets):

    image * mean((image - target)^2) + raw * mean((image_raw - raw)^2)
      + depth * sum(mask |image_depth - depth|) / sum(mask) + mask * mean((image_mask - mask)^2)
      + code_penalty * mean(|code|^2 over the batch's scenes)
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hfagp.metrics import psnr_from_mse


def init_codes(num_identities: int, num_scenes: int, w_dim: int, identity_std: float, seed: int) -> dict:
    """Identity codes ~ N(0, identity_std^2), scene offsets zero (float32)."""
    gen = np.random.default_rng([int(seed), 11])
    return {"identity": jnp.asarray(identity_std * gen.standard_normal((num_identities, w_dim)), jnp.float32),
            "scene": jnp.zeros((num_scenes, w_dim), jnp.float32)}


def scene_codes(codes: dict, scene_identity) -> jax.Array:
    """W codes [S, w_dim] of every scene (scene_identity [S]: each scene's identity index)."""
    return codes["identity"][jnp.asarray(scene_identity)] + codes["scene"]


def latents(codes: dict, identity, scene, num_ws: int) -> jax.Array:
    """W+ latents [B, num_ws, w_dim] of a batch's (identity [B], scene [B])."""
    w = codes["identity"][identity] + codes["scene"][scene]
    return jnp.broadcast_to(w[:, None], (w.shape[0], num_ws, w.shape[-1]))


def make_loss_fn(config, gen_module, num_ws: int) -> Callable:
    """loss_fn(params, batch, constants, rng) -> (loss, metrics), for `hfagp.runtime.step.make_train_step`."""
    weights = config.loss
    penalty = float(config.model.code_penalty)

    def loss_fn(params, batch, constants, rng):
        codes = params["model"]["codes"]
        ws = latents(codes, batch["identity"], batch["scene"], num_ws)
        out = gen_module.apply({"params": params["generator"], "buffers": constants["generator_buffers"]}, ws,
                               batch["label"], "const", False, None, method=gen_module.synthesis,
                               rngs={"render": rng})
        mse = jnp.mean(jnp.square(out["image"] - batch["image"]))
        raw = jnp.mean(jnp.square(out["image_raw"] - batch["raw"]))
        mask = batch["mask"]
        depth = jnp.sum(mask * jnp.abs(out["image_depth"][..., 0] - batch["depth"])) / jnp.maximum(jnp.sum(mask), 1.0)
        opacity = jnp.mean(jnp.square(out["image_mask"][..., 0] - mask))
        code = jnp.mean(jnp.sum(jnp.square(ws[:, 0]), axis=-1))
        loss = (weights.image * mse + weights.raw * raw + weights.depth * depth + weights.mask * opacity
                + penalty * code)
        return loss, {"l2": mse, "psnr": psnr_from_mse(mse), "raw_l2": raw, "depth_l1": depth, "mask_l2": opacity,
                      "code_sq": code}

    return loss_fn


def make_optimizer(optim_cfg, total_steps: int, params: dict) -> optax.GradientTransformation:
    """Adam for the generator and for the codes, each with its learning rate under one cosine decay."""
    def adam(lr):
        schedule = optax.cosine_decay_schedule(lr, max(int(total_steps), 1), alpha=optim_cfg.final_lr_fraction)
        return optax.adam(schedule)

    labels = {"model": jax.tree_util.tree_map(lambda _: "codes", params["model"]),
              "generator": jax.tree_util.tree_map(lambda _: "generator", params["generator"])}
    return optax.multi_transform({"codes": adam(optim_cfg.code_lr), "generator": adam(optim_cfg.generator_lr)},
                                 labels)
