"""The freeze schedule (hfagp.train.optim): which groups train when, and the generator's fresh Adam at its start."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from hfagp.train.optim import FROZEN, FreezeSchedule

OPTIM = ml_collections.ConfigDict({"learning_rate": 0.1, "b1": 0.9, "b2": 0.999, "eps": 1e-8})


def _params():
    return {"model": {"encoder": {"w": jnp.ones((3,))}, "prior": {"basis": jnp.ones((2, 4))}},
            "generator": {"conv": {"w": jnp.ones((2, 2))}, "bias": jnp.zeros((2,))}}


def _grads(step):
    """Distinct, step-dependent gradients (so moments and bias corrections matter)."""
    return jax.tree_util.tree_map(lambda p: jnp.full(p.shape, 1.0 + 0.5 * step), _params())


def _run(schedule, steps):
    params = _params()
    tx = schedule.optimizer(OPTIM, params)
    state = tx.init(params)
    history = []
    for step in range(steps):
        updates, state = tx.update(_grads(step), state, params)
        params = optax.apply_updates(params, updates)
        history.append(params)
    return history


def test_from_config_and_trainable_groups():
    cfg = ml_collections.ConfigDict({"schedule": {"total_steps": 10, "generator_tuning_start": 4,
                                                  "audio_smoothing_start": -1},
                                     "model": {"shared_prior_from": "", "encoder": "rgb", "encoder_kwargs": {}}})
    schedule = FreezeSchedule.from_config(cfg)
    assert schedule.starts == {"encoder": 0, "attention": None, "prior": 0, "generator": 4}
    assert schedule.trainable_at(3) == {"encoder", "prior"}
    assert schedule.trainable_at(4) == {"encoder", "prior", "generator"}
    cfg.schedule.generator_tuning_start = 10  # at or past the end: never tuned
    cfg.model.shared_prior_from = "/runs/other"
    schedule = FreezeSchedule.from_config(cfg)
    assert schedule.starts == {"encoder": 0, "attention": None, "prior": None, "generator": None}
    labels = schedule.labels(_params())
    assert labels["model"]["prior"]["basis"] == FROZEN and labels["generator"]["bias"] == FROZEN
    assert labels["model"]["encoder"]["w"] == "encoder"
    with pytest.raises(ValueError, match="unknown parameter groups"):
        FreezeSchedule({"decoder": 0})


def test_the_attention_group_starts_at_the_audio_smoothing_start():
    cfg = ml_collections.ConfigDict({"schedule": {"total_steps": 10, "generator_tuning_start": 8,
                                                  "audio_smoothing_start": 5},
                                     "model": {"shared_prior_from": "", "encoder": "audio", "encoder_kwargs": {}}})
    schedule = FreezeSchedule.from_config(cfg)
    assert schedule.starts["attention"] == 5
    assert schedule.trainable_at(4) == {"encoder", "prior"}
    assert schedule.trainable_at(5) == {"encoder", "attention", "prior"}
    assert schedule.trainable_at(8) == {"encoder", "attention", "prior", "generator"}
    params = _params()
    params["model"]["encoder"]["attention"] = {"fc": {"kernel": jnp.ones((2, 2))}}
    labels = schedule.labels(params)
    assert labels["model"]["encoder"]["attention"]["fc"]["kernel"] == "attention"
    assert labels["model"]["encoder"]["w"] == "encoder"
    for never in (-1, 10):  # -1 or at/after the end: no attention net, no group
        cfg.schedule.audio_smoothing_start = never
        assert FreezeSchedule.from_config(cfg).starts["attention"] is None
    cfg.schedule.audio_smoothing_start = 5
    cfg.model.encoder = "expression"  # only the audio encoder smooths
    assert FreezeSchedule.from_config(cfg).starts["attention"] is None


def test_attention_is_untouched_before_its_start_and_gets_fresh_adam_moments_there():
    start = 2
    params = _params()
    params["model"]["encoder"]["attention"] = {"fc": {"kernel": jnp.ones((2, 2))}}
    schedule = FreezeSchedule({"encoder": 0, "attention": start, "prior": 0, "generator": None})
    tx = schedule.optimizer(OPTIM, params)
    state = tx.init(params)
    grads = lambda step: jax.tree_util.tree_map(lambda p: jnp.full(p.shape, 1.0 + 0.5 * step), params)
    history = []
    for step in range(start + 2):
        updates, state = tx.update(grads(step), state, params)
        params = optax.apply_updates(params, updates)
        history.append(params)
    a0 = jnp.ones((2, 2))
    for step in range(start):
        np.testing.assert_array_equal(history[step]["model"]["encoder"]["attention"]["fc"]["kernel"], a0)
    fresh = optax.adam(OPTIM.learning_rate, b1=OPTIM.b1, b2=OPTIM.b2, eps=OPTIM.eps)
    expected, _ = fresh.update(grads(start)["model"]["encoder"]["attention"], fresh.init({"fc": {"kernel": a0}}))
    got = history[start]["model"]["encoder"]["attention"]["fc"]["kernel"] - a0
    np.testing.assert_allclose(got, expected["fc"]["kernel"], rtol=1e-6)
    np.testing.assert_array_equal(history[-1]["generator"]["bias"], 0.0)  # never trained


def test_generator_is_untouched_before_its_start_and_gets_fresh_adam_moments_there():
    start = 3
    history = _run(FreezeSchedule({"encoder": 0, "prior": 0, "generator": start}), 6)
    g0 = _params()["generator"]
    for step in range(start):  # updates 0 .. start-1: bitwise unchanged
        for a, b in zip(jax.tree_util.tree_leaves(history[step]["generator"]), jax.tree_util.tree_leaves(g0)):
            np.testing.assert_array_equal(a, b)
    # The first generator update (at step `start`) is a fresh Adam's first step on that step's gradient.
    fresh = optax.adam(OPTIM.learning_rate, b1=OPTIM.b1, b2=OPTIM.b2, eps=OPTIM.eps)
    g_grad = _grads(start)["generator"]
    expected_update, _ = fresh.update(g_grad, fresh.init(g0), g0)
    got = jax.tree_util.tree_map(lambda a, b: a - b, history[start]["generator"], history[start - 1]["generator"])
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected_update)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # The encoder trained from step 0 all along.
    assert not np.allclose(history[0]["model"]["encoder"]["w"], 1.0)


def test_a_frozen_prior_never_changes():
    history = _run(FreezeSchedule({"encoder": 0, "prior": None, "generator": 0}), 3)
    np.testing.assert_array_equal(history[-1]["model"]["prior"]["basis"], 1.0)
    assert not np.allclose(history[-1]["generator"]["bias"], 0.0)
