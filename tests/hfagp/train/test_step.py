"""The train step of each stage (hfagp.train.step on hfagp.runtime.step) on a tiny model: stages, determinism,
LPIPS inside training."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shared_fixtures import LPIPS_FIXTURES, require_fixtures

pytestmark = pytest.mark.slow  # two step compilations (~1 min on 2 cores)

GENERATOR_START = 2


@pytest.fixture(scope="module")
def tiny():
    import eg3d_flax
    from avatar_data.cameras import yaw_sweep
    from configs.common import make_config
    from hfagp import model as model_lib
    from hfagp.lpips import make_lpips
    from hfagp.train.optim import FreezeSchedule
    from hfagp.runtime.step import create_train_state, make_train_step
    from hfagp.train.step import make_loss_fn

    cfg = make_config("rgb", "cpu")
    cfg.model.k = 4
    weights = require_fixtures(LPIPS_FIXTURES / "lpips_alex_weights.npz")
    cfg.loss.lpips_weight = 1.0
    G = eg3d_flax.random_generator(eg3d_flax.preset("tiny128", neural_rendering_resolution=16), seed=0)
    spec = model_lib.ModelSpec.from_config(cfg)
    model = model_lib.avatar_model(spec, G.config.num_ws, G.config.w_dim, G.config.conv_impl)
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.uniform(-1, 1, (2, 128, 128, 3)), jnp.float32),
             "label": jnp.asarray(yaw_sweep(2, 10.0))}
    params = model_lib.init_params(model, G, batch["image"][:1], jax.random.PRNGKey(0))
    schedule = FreezeSchedule({"encoder": 0, "prior": 0, "generator": GENERATOR_START})
    tx = schedule.optimizer(cfg.optim, params)
    constants = {"generator_buffers": G.variables["buffers"]}
    if cfg.loss.lpips_weight > 0:
        constants["lpips"] = make_lpips(weights, "alex")
    loss_fn = make_loss_fn(cfg, spec, model, G.module)
    programs = {stage2: jax.jit(make_train_step(loss_fn, tx, stage2)) for stage2 in (False, True)}
    state = create_train_state(params, tx, jax.random.PRNGKey(1))
    return {"state": state, "batch": batch, "constants": constants, "programs": programs, "schedule": schedule,
            "lpips_weight": cfg.loss.lpips_weight}


def _generator_adam(opt_state):
    """The generator group's Adam state (count, mu, nu) inside the freeze schedule's multi_transform."""
    import optax

    group = opt_state.inner_states["generator"]
    states = [x for x in jax.tree_util.tree_leaves(group, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
              if isinstance(x, optax.ScaleByAdamState)]
    assert len(states) == 1
    return states[0]


def _leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def test_stages_deterministic_steps_and_lpips(tiny):
    state0, batch, constants, programs = tiny["state"], tiny["batch"], tiny["constants"], tiny["programs"]
    states, losses = [state0], []
    for step in range(GENERATOR_START + 2):
        stage2 = "generator" in tiny["schedule"].trainable_at(step)
        new, metrics = programs[stage2](states[-1], batch, constants)
        assert bool(metrics["finite"]) and int(new.step) == step + 1
        # LPIPS is in the training loss: loss = l2 + lambda * lpips (plus the zero 'qr' penalty).
        assert float(metrics["lpips"]) > 0
        np.testing.assert_allclose(float(metrics["loss"]),
                                   float(metrics["l2"]) + tiny["lpips_weight"] * float(metrics["lpips"]), rtol=1e-6)
        states.append(new)
        losses.append(float(metrics["loss"]))
    g0 = state0.params["generator"]
    # Stage 1: the generator is bitwise unchanged, the encoder and the basis move.
    assert _leaves_equal(states[GENERATOR_START].params["generator"], g0)
    assert not _leaves_equal(states[1].params["model"]["encoder"], state0.params["model"]["encoder"])
    assert not _leaves_equal(states[1].params["model"]["prior"], state0.params["model"]["prior"])
    # The first generator update is exactly at GENERATOR_START, with fresh Adam moments: untouched (zero, count
    # 0) through stage 1, one step old right after it.
    assert not _leaves_equal(states[GENERATOR_START + 1].params["generator"], g0)
    for step in range(GENERATOR_START + 1):
        adam = _generator_adam(states[step].opt_state)
        assert int(adam.count) == 0
        assert all(not np.any(np.asarray(x)) for x in jax.tree_util.tree_leaves((adam.mu, adam.nu)))
    adam = _generator_adam(states[GENERATOR_START + 1].opt_state)
    assert int(adam.count) == 1 and any(np.any(np.asarray(x)) for x in jax.tree_util.tree_leaves(adam.mu))
    # Same state and batch: the same step (randomness is fold_in(rng, step)); the next step differs.
    again, metrics = programs[False](state0, batch, constants)
    assert float(metrics["loss"]) == losses[0]
    assert _leaves_equal(again.params, states[1].params)
    assert losses[1] != losses[0]
