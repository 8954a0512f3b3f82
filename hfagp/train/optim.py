"""The optimizer and the training stages, as one parameter-freeze schedule.

Params: {'model': {'encoder', 'prior'}, 'generator': EG3D params}. Each group has a start step: the
first step whose update may change it. `FreezeSchedule` is the one definition of the stages: the
optimizer (`optimizer`) and the choice of compiled step program (`trainable_at`) both read it.

  encoder    Adam from step 0 (all of params['model']['encoder'] but the attention net)
  attention  the audio encoder's AD-NeRF attention net, params['model']['encoder']['attention']: Adam from
             `schedule.audio_smoothing_start` (`hfagp.model.smoothing_start`), from which step on the forward
             uses it; absent otherwise. The official audio trainer's `optimizer_AudAtt` likewise only steps
             from `nosmo_iters` on.
  prior      Adam from step 0, or never (a basis shared from another run, kept frozen)
  generator  Adam from `generator_tuning_start` (stage 2, PTI-style tuning), or never.
Before its start a group gets zero updates and its Adam moments stay untouched, so its first update is
exactly at the start step with fresh moments, like PyTorch's Adam whose per-parameter state starts when a
parameter first gets a gradient.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from hfagp.model import smoothing_start

GROUPS = ("encoder", "attention", "prior", "generator")
FROZEN = "frozen"
# The attention net's params inside params['model']['encoder'] (encoders.AudioEncoder's submodule name).
ATTENTION = "attention"


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


@dataclasses.dataclass(frozen=True)
class FreezeSchedule:
    """Start step of every parameter group (None: never trained). Groups not named start at step 0, except
    'attention', which exists only for an audio encoder with smoothing (not named: None)."""

    starts: Mapping[str, Optional[int]]

    def __post_init__(self):
        unknown = sorted(set(self.starts) - set(GROUPS))
        if unknown:
            raise ValueError(f"unknown parameter groups {unknown}; known: {GROUPS}")
        object.__setattr__(self, "starts", {g: self.starts.get(g, None if g == ATTENTION else 0) for g in GROUPS})

    @classmethod
    def from_config(cls, config) -> "FreezeSchedule":
        """The schedule of a training config."""
        sched = config.schedule
        tune = sched.generator_tuning_start < sched.total_steps
        return cls({"encoder": 0, ATTENTION: smoothing_start(config),
                    "prior": None if config.model.shared_prior_from else 0,
                    "generator": int(sched.generator_tuning_start) if tune else None})

    def trainable_at(self, step: int) -> frozenset:
        """The groups whose update at (0-based) `step` may be non-zero."""
        return frozenset(g for g, start in self.starts.items() if start is not None and start <= step)

    def labels(self, params: Mapping[str, Any]) -> dict:
        """A tree like `params` holding each leaf's group name ('frozen' for groups never trained)."""
        def group_label(group):
            return group if self.starts[group] is not None else FROZEN

        def subtree(tree, group):
            return jax.tree_util.tree_map(lambda _: group_label(group), tree)

        model = {name: subtree(sub, name) for name, sub in params["model"].items()}
        encoder = params["model"].get("encoder")
        if isinstance(encoder, Mapping) and ATTENTION in encoder:
            model["encoder"] = {name: subtree(sub, ATTENTION if name == ATTENTION else "encoder")
                                for name, sub in encoder.items()}
        return {"model": model, "generator": subtree(params["generator"], "generator")}

    def optimizer(self, optim_cfg, params: Mapping[str, Any]) -> optax.GradientTransformation:
        """Adam per group, each behind `freeze_until` its start step; never-trained groups get zeros."""
        def adam():
            return optax.adam(optim_cfg.learning_rate, b1=optim_cfg.b1, b2=optim_cfg.b2, eps=optim_cfg.eps)

        transforms = {FROZEN: optax.set_to_zero()}
        for group, start in self.starts.items():
            if start is not None:
                transforms[group] = adam() if start == 0 else freeze_until(adam(), start)
        return optax.multi_transform(transforms, self.labels(params))


__all__ = ["ATTENTION", "FROZEN", "FreezeSchedule", "FreezeUntilState", "GROUPS", "freeze_until"]
