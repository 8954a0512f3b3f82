"""The generic train step (hfagp.runtime.step) on a toy loss: what each stage differentiates, its metrics, and
per-step randomness from the state alone."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hfagp.runtime.step import create_train_state, make_train_step


def _loss_fn(params, batch, constants, rng):
    """(w * g - target)^2 plus a rng-dependent term, so that the step's key shows in the loss."""
    noise = jax.random.normal(rng, batch["target"].shape)
    residual = params["model"]["w"] * params["generator"]["g"] * constants["scale"] - batch["target"]
    mse = jnp.mean(jnp.square(residual + 0.1 * noise))
    return mse, {"mse": mse}


def _setup():
    params = {"model": {"w": np.ones(3, np.float32)}, "generator": {"g": np.full(3, 2.0, np.float32)}}
    tx = optax.sgd(0.1)
    state = create_train_state(params, tx, jax.random.PRNGKey(0))
    return state, tx, {"target": jnp.asarray([1.0, -1.0, 0.5])}, {"scale": jnp.asarray(1.0)}


def test_the_generator_moves_only_when_trained():
    state, tx, batch, constants = _setup()
    frozen, metrics = jax.jit(make_train_step(_loss_fn, tx, train_generator=False))(state, batch, constants)
    assert int(frozen.step) == 1 and bool(metrics["finite"])
    np.testing.assert_array_equal(frozen.params["generator"]["g"], state.params["generator"]["g"])
    assert not np.array_equal(frozen.params["model"]["w"], state.params["model"]["w"])
    both, _ = jax.jit(make_train_step(_loss_fn, tx, train_generator=True))(state, batch, constants)
    assert not np.array_equal(both.params["generator"]["g"], state.params["generator"]["g"])
    np.testing.assert_array_equal(both.params["model"]["w"], frozen.params["model"]["w"])


def test_metrics_and_per_step_randomness():
    state, tx, batch, constants = _setup()
    step = jax.jit(make_train_step(_loss_fn, tx, train_generator=True))
    first, m1 = step(state, batch, constants)
    again, m1_again = step(state, batch, constants)
    assert set(m1) == {"mse", "loss", "grad_norm", "finite"}
    assert float(m1["loss"]) == float(m1_again["loss"]) == float(m1["mse"]) and float(m1["grad_norm"]) > 0
    np.testing.assert_array_equal(first.params["model"]["w"], again.params["model"]["w"])
    # The key is fold_in(rng, step): the same params at another step draw another noise.
    _, m_other = step(state.replace(step=state.step + 1), batch, constants)
    assert float(m_other["loss"]) != float(m1["loss"])
    _, bad = step(state, {"target": jnp.full(3, jnp.nan)}, constants)
    assert not bool(bad["finite"])
