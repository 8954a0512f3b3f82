"""From a trained auto-decoder to a complete generator directory.

The auto-decoder never runs EG3D's mapping network (codes are given in W). So that everything that samples
the generator (`G.mapping(z, c)`: the synthetic world, PTI's start code and code spread) sees the prior's
latents, the mapping network is fitted to the distribution of the scene codes by minimising a sliced
Wasserstein distance between mapped z ~ N(0, I) and the codes; `w_avg` is set to the mean code, so that
`prior_init='w_avg'` and PTI start from the average person.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import eg3d_flax
from avatar_data.cameras import frontal_camera

# Random projections per sliced-Wasserstein estimate, samples per step, and the Adam step size (the mapping's
# weights are stored pre-gain, about 1 / lr_multiplier = 100 in scale, hence the large step).
SWD_PROJECTIONS = 128
SWD_BATCH = 512
MAPPING_LR = 1.0


def sliced_wasserstein(a: jax.Array, b: jax.Array, directions: jax.Array) -> jax.Array:
    """Mean squared distance of the sorted projections of samples a, b [N, D] on unit directions [P, D]."""
    pa = jnp.sort(a @ directions.T, axis=0)
    pb = jnp.sort(b @ directions.T, axis=0)
    return jnp.mean(jnp.square(pa - pb))


def fit_mapping(generator: eg3d_flax.Generator, codes: np.ndarray, steps: int, seed: int = 0) -> tuple[dict, list]:
    """Generator params whose mapping network maps z ~ N(0, I) (at the frontal camera) onto the code
    distribution of `codes` [S, w_dim]; returns (params, the sliced Wasserstein distance per step)."""
    module = generator.module
    codes = jnp.asarray(codes, jnp.float32)
    cam = jnp.asarray(frontal_camera()[None])
    w_dim = codes.shape[1]
    mapping_params = generator.variables["params"]["backbone"]["mapping"]
    tx = optax.adam(MAPPING_LR)

    def mapped(mp, z):
        params = dict(generator.variables["params"])
        params["backbone"] = dict(params["backbone"], mapping=mp)
        variables = {"params": params, "buffers": generator.variables["buffers"]}
        return module.apply(variables, z, jnp.broadcast_to(cam, (z.shape[0], 25)), method=module.mapping)[:, 0]

    @jax.jit
    def step(mp, opt_state, key):
        kz, kc, kd = jax.random.split(key, 3)
        z = jax.random.normal(kz, (SWD_BATCH, generator.config.z_dim))
        target = codes[jax.random.randint(kc, (SWD_BATCH,), 0, codes.shape[0])]
        directions = jax.random.normal(kd, (SWD_PROJECTIONS, w_dim))
        directions = directions / jnp.linalg.norm(directions, axis=1, keepdims=True)
        loss, grads = jax.value_and_grad(lambda p: sliced_wasserstein(mapped(p, z), target, directions))(mp)
        updates, opt_state = tx.update(grads, opt_state, mp)
        return optax.apply_updates(mp, updates), opt_state, loss

    opt_state = tx.init(mapping_params)
    losses = []
    key = jax.random.PRNGKey(seed)
    for i in range(steps):
        mapping_params, opt_state, loss = step(mapping_params, opt_state, jax.random.fold_in(key, i))
        losses.append(loss)
    params = dict(generator.variables["params"])
    params["backbone"] = dict(params["backbone"], mapping=mapping_params)
    return params, [float(v) for v in jax.device_get(losses)]


def with_w_avg(generator: eg3d_flax.Generator, w_avg) -> eg3d_flax.Generator:
    """The generator with its `w_avg` buffer replaced (shape [w_dim])."""
    buffers = dict(generator.variables["buffers"])
    backbone = dict(buffers["backbone"])
    backbone["mapping"] = dict(backbone["mapping"], w_avg=jnp.asarray(w_avg, jnp.float32))
    buffers["backbone"] = backbone
    return generator.replace_variables({"params": generator.variables["params"], "buffers": buffers})


def storage_cast(generator: eg3d_flax.Generator, dtype: str) -> eg3d_flax.Generator:
    """The generator with its parameters rounded to `dtype` and back to float32 (what loading the stored
    weights gives), so metrics measured on it are those of the shipped file."""
    cast = lambda x: jnp.asarray(np.asarray(x).astype(dtype).astype(np.float32))
    params = jax.tree_util.tree_map(cast, generator.variables["params"])
    return generator.replace_variables({"params": params, "buffers": generator.variables["buffers"]})


def save(generator: eg3d_flax.Generator, path, dtype: str, metadata: dict) -> None:
    """Writes the generator directory (parameters stored as `dtype`) atomically, replacing an earlier one."""
    params = jax.tree_util.tree_map(lambda x: np.asarray(x).astype(dtype), generator.variables["params"])
    stored = eg3d_flax.Generator(generator.config, {"params": params, "buffers": generator.variables["buffers"]})
    eg3d_flax.save_generator(stored, path, metadata=metadata, overwrite=True)
