"""The train state and the one generic train step of every training program (`hfagp.train`, `hfagp.pretrain`).

    state, metrics = train_step(state, batch, constants)

`make_train_step(loss_fn, tx, train_generator)` returns a pure function of (TrainState, batch, constants): the
program's loss on the batch, its gradient with respect to the trained parameters, one optimizer update.
Per-step randomness is `fold_in(state.rng, state.step)`, so a resumed run repeats an uninterrupted one exactly.

Params: {'model': the program's own parameters, 'generator': EG3D params}. loss_fn(params, batch, constants,
rng) -> (loss, metrics); batch and constants are whatever the program's loss reads.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    step: jax.Array          # int32 scalar: number of updates applied
    params: Any              # {'model': the program's parameters, 'generator': EG3D params}
    opt_state: Any
    rng: jax.Array           # base key; step key = fold_in(rng, step)


def create_train_state(params: dict, tx: optax.GradientTransformation, rng: jax.Array) -> TrainState:
    params = jax.tree_util.tree_map(jnp.asarray, params)
    return TrainState(step=jnp.zeros([], jnp.int32), params=params, opt_state=tx.init(params), rng=rng)


def make_train_step(loss_fn: Callable, tx: optax.GradientTransformation, train_generator: bool) -> Callable:
    """The train step of one stage. train_generator=False differentiates only params['model'] (the
    generator's gradient is zero and never computed); True all of them. Metrics: the loss's own, plus 'loss',
    'grad_norm' and 'finite' (both finite)."""

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


__all__ = ["TrainState", "create_train_state", "make_train_step"]
