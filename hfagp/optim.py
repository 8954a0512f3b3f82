"""Optimizer and the two training stages as a parameter-freeze schedule.

Params: {'model': {'encoder', 'prior'}, 'generator': EG3D params}. Labels route each group to a
transform of one `optax.multi_transform`:
  'trainable'  Adam, from step 0 (encoder, prior)
  'generator'  Adam wrapped in `freeze_until(start)`: zero updates and untouched moments before
               `start` (stage 1), plain Adam after (stage 2, PTI-style tuning) — like PyTorch's Adam,
               whose per-parameter state only starts when a parameter first gets a gradient.
  'frozen'     set_to_zero (e.g. a basis shared from another run, or a generator never tuned)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class FreezeUntilState(NamedTuple):
    count: jax.Array
    inner: Any


def freeze_until(inner: optax.GradientTransformation, start_step: int) -> optax.GradientTransformation:
    """Zero updates (and no change to `inner`'s state) for the first `start_step` updates."""

    def init(params):
        return FreezeUntilState(jnp.zeros([], jnp.int32), inner.init(params))

    def update(updates, state, params=None):
        def active(_):
            return inner.update(updates, state.inner, params)

        def frozen(_):
            return jax.tree_util.tree_map(jnp.zeros_like, updates), state.inner

        new_updates, new_inner = jax.lax.cond(state.count >= start_step, active, frozen, None)
        return new_updates, FreezeUntilState(state.count + 1, new_inner)

    return optax.GradientTransformation(init, update)


def param_labels(params: dict, *, freeze_prior: bool, tune_generator: bool) -> dict:
    def label_tree(tree, label):
        return jax.tree_util.tree_map(lambda _: label, tree)

    model = dict(params["model"])
    labels = {"model": {name: label_tree(sub, "frozen" if (freeze_prior and name == "prior") else "trainable")
                        for name, sub in model.items()},
              "generator": label_tree(params["generator"], "generator" if tune_generator else "frozen")}
    return labels


def make_optimizer(optim_cfg, params: dict, *, generator_start: int, freeze_prior: bool,
                   tune_generator: bool) -> optax.GradientTransformation:
    def adam():
        return optax.adam(optim_cfg.learning_rate, b1=optim_cfg.b1, b2=optim_cfg.b2, eps=optim_cfg.eps)

    transforms = {"trainable": adam(), "generator": freeze_until(adam(), generator_start),
                  "frozen": optax.set_to_zero()}
    labels = param_labels(params, freeze_prior=freeze_prior, tune_generator=tune_generator)
    return optax.multi_transform(transforms, labels)
