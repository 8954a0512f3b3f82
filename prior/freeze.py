"""Optimizer labels that freeze top-level parameter groups (e.g. a basis from another run).

Every trainable group of the model lives under its own top-level key of ``params``: the prior
under ``"prior"`` (``PRIOR_NAME``), an encoder under its module name. To train an encoder
against a frozen basis, load the other run's ``params["prior"]`` into the new params and build

    labels = param_labels(params, frozen=(PRIOR_NAME,))
    tx = optax.multi_transform({"trainable": optax.adam(3e-4), "frozen": optax.set_to_zero()},
                               labels)
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import jax

PRIOR_NAME = "prior"
TRAINABLE = "trainable"
FROZEN = "frozen"


def param_labels(params: Mapping[str, Any], frozen: Iterable[str] = (PRIOR_NAME,)) -> dict:
    """Same-structure tree of ``"frozen"`` / ``"trainable"`` labels for ``optax.multi_transform``.

    Args:
      params: the model's params dict (top-level keys are submodule names).
      frozen: top-level keys whose whole subtree is frozen. Unknown names raise ``KeyError``.
    """
    frozen = set(frozen)
    missing = frozen - set(params)
    if missing:
        raise KeyError(f"param_labels: no top-level params named {sorted(missing)}; "
                       f"have {sorted(params)}")
    return {
        name: jax.tree_util.tree_map(lambda _, n=name: FROZEN if n in frozen else TRAINABLE, sub)
        for name, sub in params.items()
    }
