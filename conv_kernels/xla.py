"""The reference implementations: XLA's convolutions and their autodiff gradients, on every backend."""

from __future__ import annotations

import jax
import jax.numpy as jnp

CONV_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def conv2d(x: jax.Array, w: jax.Array, padding: int = 0) -> jax.Array:
    """Cross-correlation, stride 1, symmetric zero padding. x: [N,H,W,I], w: [kh,kw,I,O]."""
    return jax.lax.conv_general_dilated(x, w, (1, 1), [(padding, padding)] * 2, dimension_numbers=CONV_DIMENSIONS)


def conv_transpose2d_stride2_k3(x: jax.Array, w: jax.Array) -> jax.Array:
    """torch `conv_transpose2d(x, w, stride=2)` (3x3) as a correlation of the zero-dilated input with the
    flipped kernel, plus one trailing zero row/column: [N,H,W,I] -> [N,2H+2,2W+2,O]."""
    y = jax.lax.conv_general_dilated(x, w[::-1, ::-1], window_strides=(1, 1), padding=[(2, 2), (2, 2)],
                                     lhs_dilation=(2, 2), dimension_numbers=CONV_DIMENSIONS)
    return jnp.pad(y, ((0, 0), (0, 1), (0, 1), (0, 0)))
