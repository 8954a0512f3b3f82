"""The HFA-GP model around a frozen-or-tuned EG3D generator: encoder f -> coefficients -> prior -> W+.

    ws = PersonalizedPrior(f(x)),  image = G.synthesis(ws, camera)

Params of `AvatarPrior` are {'encoder': ..., 'prior': ...}; the generator's params are kept
beside them in the train state under 'generator' (see `hfagp.train_lib`).
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax

from encoders import make_encoder
from prior.basis import PersonalizedPrior

# Which batch entry drives each encoder kind (batch layouts: see avatar_data.pipeline).
ENCODER_INPUTS = {"rgb": "image", "expression": "expression", "audio": "audio"}


class AvatarPrior(nn.Module):
    """Driving signal -> W+ latents [B, num_ws, w_dim]."""

    encoder_kind: str
    k: int
    num_ws: int
    w_dim: int
    orthogonality: str = "qr"
    prior_init: str = "official"
    encoder_kwargs: Any = None  # a tuple of (name, value) pairs (hashable); see `avatar_prior_from_config`

    def setup(self):
        self.encoder = make_encoder(self.encoder_kind, self.k, **dict(self.encoder_kwargs or ()))
        self.prior = PersonalizedPrior(self.num_ws, self.w_dim, k=self.k, orthogonality=self.orthogonality,
                                       init_mode=self.prior_init)

    def coefficients(self, inputs: jax.Array) -> jax.Array:
        return self.encoder(inputs)

    def latents(self, coeffs: jax.Array) -> jax.Array:
        return self.prior(coeffs)

    def penalty(self) -> jax.Array:
        return self.prior.penalty()

    def basis_ws(self, scale: float) -> jax.Array:
        return self.prior.basis_ws(scale)

    def __call__(self, inputs: jax.Array) -> jax.Array:
        return self.prior(self.encoder(inputs))


def encoder_inputs(batch: Mapping[str, jax.Array], kind: str, temporal_smoothing: bool = False) -> jax.Array:
    """The batch entry that `kind`'s encoder reads (audio: the [B,W,16,29] window when smoothing)."""
    if kind == "audio" and temporal_smoothing:
        return batch["audio_window"]
    key = ENCODER_INPUTS[kind]
    if key not in batch:
        raise KeyError(f"the {kind!r} encoder needs batch[{key!r}], but the dataset provides {sorted(batch)}")
    return batch[key]


def avatar_prior_from_config(model_cfg, num_ws: int, w_dim: int) -> AvatarPrior:
    kwargs = dict(model_cfg.encoder_kwargs)
    return AvatarPrior(
        encoder_kind=model_cfg.encoder, k=model_cfg.k, num_ws=num_ws, w_dim=w_dim,
        orthogonality=model_cfg.orthogonality, prior_init=model_cfg.prior_init,
        encoder_kwargs=tuple(sorted(kwargs.items())))
