"""The auto-decoder: a W code per scene, and the reconstruction loss.

A scene's W code (its W+ latent is that code on every layer) comes from one of two models (`model.code`):
  'scene'   free codes, ``identity[i] + scene[s]``: params {'codes': {'identity' [I, w_dim], 'scene' [S, w_dim]}};
  'params'  a code map shared by every scene, an MLP of the world's parameters of the scene (the batch's
            'condition': standardised identity vector and expression, `hfagp.pretrain.data`):
            params {'code_map': {'hidden_k': {'w', 'b'}, ..., 'out': {'w', 'b'}}}. Every step then teaches every
            scene how an expression looks.
The loss of a batch (module doc of `hfagp.pretrain.data` for the targets):

    image * wmean_f(d(image - target)) + gradient * wmean_f(|D_x e| + |D_y e|, e = image - target)
      + raw * wmean_f_raw((image_raw - raw)^2)
      + depth * sum(mask |image_depth - depth|) / sum(mask) + mask * mean((image_mask - mask)^2)
      + code_penalty * mean(|code|^2 over the batch's scenes)

where f = 1 + `loss.face_weight` * the batch's face mask (f_raw with its coverage at the neural rendering
resolution) and wmean_f(x) = sum(f x) / sum(f) (with face_weight 0 the plain means); d is the square or the
absolute value (`loss.image_distance`) and D_x, D_y the differences of neighbouring pixels. L1 and the error's
gradient keep the small, high-contrast parts of a face (an eye, the lips' edge) from being averaged away, as a
pure L2 does.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hfagp.metrics import psnr_from_mse

# Slope of the code map's leaky ReLUs.
CODE_MAP_SLOPE = 0.2


def init_codes(num_identities: int, num_scenes: int, w_dim: int, identity_std: float, seed: int) -> dict:
    """Free codes: identity codes ~ N(0, identity_std^2), scene offsets zero (float32)."""
    gen = np.random.default_rng([int(seed), 11])
    return {"identity": jnp.asarray(identity_std * gen.standard_normal((num_identities, w_dim)), jnp.float32),
            "scene": jnp.zeros((num_scenes, w_dim), jnp.float32)}


def init_code_map(condition_dim: int, width: int, hidden_layers: int, w_dim: int, output_std: float,
                  seed: int) -> dict:
    """The code map's weights: He-initialised hidden layers, an output layer whose codes start with about
    `output_std` per coordinate (as free identity codes do), zero biases (float32)."""
    gen = np.random.default_rng([int(seed), 12])
    layers, fan_in = {}, condition_dim
    for k in range(hidden_layers):
        w = gen.standard_normal((fan_in, width)) * np.sqrt(2.0 / (1.0 + CODE_MAP_SLOPE ** 2) / fan_in)
        layers[f"hidden_{k}"] = {"w": jnp.asarray(w, jnp.float32), "b": jnp.zeros((width,), jnp.float32)}
        fan_in = width
    w = gen.standard_normal((fan_in, w_dim)) * output_std / np.sqrt(fan_in)
    layers["out"] = {"w": jnp.asarray(w, jnp.float32), "b": jnp.zeros((w_dim,), jnp.float32)}
    return layers


def init_model(model_cfg, data, w_dim: int, seed: int) -> dict:
    """The auto-decoder's params for `data` (`hfagp.pretrain.data.PretrainData`) under `model.code`."""
    if model_cfg.code == "scene":
        return {"codes": init_codes(data.num_identities, data.num_scenes, w_dim, model_cfg.identity_code_std, seed)}
    return {"code_map": init_code_map(data.condition_dim, int(model_cfg.code_map_width),
                                      int(model_cfg.code_map_layers), w_dim, model_cfg.identity_code_std, seed)}


def apply_code_map(layers: dict, condition: jax.Array) -> jax.Array:
    """W codes [B, w_dim] of conditions [B, condition_dim]."""
    x = condition
    for k in range(len(layers) - 1):
        x = jax.nn.leaky_relu(x @ layers[f"hidden_{k}"]["w"] + layers[f"hidden_{k}"]["b"], CODE_MAP_SLOPE)
    return x @ layers["out"]["w"] + layers["out"]["b"]


def batch_codes(model: dict, batch: dict) -> jax.Array:
    """W codes [B, w_dim] of a batch's scenes (its 'identity' and 'scene' indices, or its 'condition')."""
    if "codes" in model:
        return model["codes"]["identity"][batch["identity"]] + model["codes"]["scene"][batch["scene"]]
    return apply_code_map(model["code_map"], batch["condition"])


def scene_codes(model: dict, data) -> np.ndarray:
    """W codes float32 [S, w_dim] of every scene of `data` (where inversion starts: w_avg is their mean; what
    the exported mapping network is fitted to)."""
    if "codes" in model:
        codes = model["codes"]
        return np.asarray(codes["identity"][jnp.asarray(data.scene_identity)] + codes["scene"], np.float32)
    return np.asarray(apply_code_map(model["code_map"], jnp.asarray(data.scene_conditions())), np.float32)


def weighted_mean(x: jax.Array, weights: jax.Array) -> jax.Array:
    """sum(weights * x) / sum(weights) over x [B, H, W, C] with weights [B, H, W]."""
    w = jnp.broadcast_to(weights[..., None], x.shape)
    return jnp.sum(w * x) / jnp.maximum(jnp.sum(w), 1e-12)


def gradient_error(err: jax.Array, weights: jax.Array) -> jax.Array:
    """wmean(|D_x err| + |D_y err|) of an error [B, H, W, C] with pixel weights [B, H, W] (each difference weighed
    by the larger of its two pixels' weights)."""
    wx = jnp.maximum(weights[:, :, 1:], weights[:, :, :-1])
    wy = jnp.maximum(weights[:, 1:], weights[:, :-1])
    return (weighted_mean(jnp.abs(err[:, :, 1:] - err[:, :, :-1]), wx)
            + weighted_mean(jnp.abs(err[:, 1:] - err[:, :-1]), wy))


def make_loss_fn(config, gen_module, num_ws: int) -> Callable:
    """loss_fn(params, batch, constants, rng) -> (loss, metrics), for `hfagp.runtime.step.make_train_step`."""
    weights = config.loss
    penalty = float(config.model.code_penalty)
    face_weight = float(config.loss.face_weight)
    l2 = config.loss.image_distance == "l2"
    # A batch holds `views_per_scene` consecutive views of each scene (one code): the tri-planes once per scene.
    views_per_scene = int(config.optim.views_per_scene)

    def loss_fn(params, batch, constants, rng):
        w = batch_codes(params["model"], batch)
        ws = jnp.broadcast_to(w[:, None], (w.shape[0], num_ws, w.shape[-1]))
        out = gen_module.apply({"params": params["generator"], "buffers": constants["generator_buffers"]}, ws,
                               batch["label"], "const", False, None, method=gen_module.synthesis,
                               rngs={"render": rng}, views_per_latent=views_per_scene)
        pixel_weights = 1.0 + face_weight * batch["face"]
        err = out["image"] - batch["image"]
        mse = weighted_mean(jnp.square(err), pixel_weights)
        distance = mse if l2 else weighted_mean(jnp.abs(err), pixel_weights)
        edges = gradient_error(err, pixel_weights) if weights.gradient > 0 else jnp.zeros([])
        raw = weighted_mean(jnp.square(out["image_raw"] - batch["raw"]), 1.0 + face_weight * batch["face_raw"])
        mask = batch["mask"]
        depth = jnp.sum(mask * jnp.abs(out["image_depth"][..., 0] - batch["depth"])) / jnp.maximum(jnp.sum(mask), 1.0)
        opacity = jnp.mean(jnp.square(out["image_mask"][..., 0] - mask))
        code = jnp.mean(jnp.sum(jnp.square(w), axis=-1))
        loss = (weights.image * distance + weights.gradient * edges + weights.raw * raw + weights.depth * depth
                + weights.mask * opacity + penalty * code)
        return loss, {"l2": mse, "psnr": psnr_from_mse(mse), "gradient_l1": edges, "raw_l2": raw, "depth_l1": depth,
                      "mask_l2": opacity, "code_sq": code}

    return loss_fn


def make_optimizer(optim_cfg, total_steps: int, params: dict) -> optax.GradientTransformation:
    """Adam for the generator and for the codes (or the code map), each with its learning rate under one cosine
    decay."""
    def adam(lr):
        schedule = optax.cosine_decay_schedule(lr, max(int(total_steps), 1), alpha=optim_cfg.final_lr_fraction)
        return optax.adam(schedule)

    labels = {"model": jax.tree_util.tree_map(lambda _: "codes", params["model"]),
              "generator": jax.tree_util.tree_map(lambda _: "generator", params["generator"])}
    return optax.multi_transform({"codes": adam(optim_cfg.code_lr), "generator": adam(optim_cfg.generator_lr)},
                                 labels)
