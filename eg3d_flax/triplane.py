"""Tri-plane projection, bilinear plane sampling and the OSG feature decoder.

Planes are channels-last: [B, 3, H, W, C] (plane index, row, column, feature). Sample
points are [B, M, 3] world coordinates. Sampling reproduces `torch.nn.functional.grid_sample`
with `mode='bilinear', padding_mode='zeros', align_corners=False` by a 4-corner gather,
which on CPU is several times faster than a transposed/NCHW formulation (see NOTES.md).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from eg3d_flax.layers import FullyConnectedLayer


def plane_axes() -> np.ndarray:
    """EG3D's `generate_planes()` (3 planes x 3x3), exactly, including its third plane.

    The projection multiplies by the inverse of each matrix and keeps the first two
    coordinates, so the planes see (x, y), (x, z) and (z, x) — the third is not (y, z).
    Checkpoints were trained with this, so it is kept.
    """
    return np.array(
        [[[1, 0, 0], [0, 1, 0], [0, 0, 1]],
         [[1, 0, 0], [0, 0, 1], [0, 1, 0]],
         [[0, 0, 1], [1, 0, 0], [0, 1, 0]]],
        dtype=np.float32,
    )


def project_onto_planes(coordinates: jax.Array) -> jax.Array:
    """[B, M, 3] -> [B, 3, M, 2] plane coordinates (coordinates @ inv(axes))[..., :2]."""
    inv = np.linalg.inv(plane_axes().astype(np.float64)).astype(np.float32)  # exact: permutations
    proj = jnp.einsum("bmk,pkj->bpmj", coordinates, jnp.asarray(inv), precision=jax.lax.Precision.HIGHEST)
    return proj[..., :2]


def grid_sample_bilinear(planes: jax.Array, uv: jax.Array) -> jax.Array:
    """Bilinear sampling with zero padding, align_corners=False.

    planes: [B, P, H, W, C]; uv: [B, P, M, 2] in [-1, 1] (u -> width axis, v -> height axis).
    Returns [B, P, M, C].
    """
    b, p, h, w, c = planes.shape
    ix = ((uv[..., 0] + 1.0) * w - 1.0) * 0.5
    iy = ((uv[..., 1] + 1.0) * h - 1.0) * 0.5
    x0 = jnp.floor(ix)
    y0 = jnp.floor(iy)
    tx = ix - x0
    ty = iy - y0
    x0 = x0.astype(jnp.int32)
    y0 = y0.astype(jnp.int32)
    flat = planes.reshape(b * p * h * w, c)
    base = (jnp.arange(b * p, dtype=jnp.int32) * (h * w)).reshape(b, p, 1)

    def corner(yi, xi, weight):
        valid = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        idx = base + jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)
        vals = jnp.take(flat, idx.reshape(-1), axis=0).reshape(idx.shape + (c,))
        return vals * jnp.where(valid, weight, 0.0)[..., None]

    return (corner(y0, x0, (1 - tx) * (1 - ty)) + corner(y0, x0 + 1, tx * (1 - ty))
            + corner(y0 + 1, x0, (1 - tx) * ty) + corner(y0 + 1, x0 + 1, tx * ty))


def sample_from_planes(planes: jax.Array, coordinates: jax.Array, box_warp: float) -> jax.Array:
    """planes [B,3,H,W,C], coordinates [B,M,3] (world) -> features [B,3,M,C]."""
    uv = project_onto_planes((2.0 / box_warp) * coordinates)
    return grid_sample_bilinear(planes, uv)


class OSGDecoder(nn.Module):
    """Mean of the 3 plane features -> FC(32,64) -> softplus -> FC(64, 1+32).

    Returns rgb [B,M,32] in (-0.001, 1.001) (MipNeRF sigmoid clamping) and raw sigma [B,M,1].
    Submodule names `net_0`/`net_2` stand for the reference's `net.0`/`net.2`.
    """

    n_features: int = 32
    hidden_dim: int = 64
    output_dim: int = 32
    lr_multiplier: float = 1.0

    @nn.compact
    def __call__(self, sampled_features: jax.Array):
        x = jnp.mean(sampled_features, axis=1)
        x = FullyConnectedLayer(self.n_features, self.hidden_dim, lr_multiplier=self.lr_multiplier, name="net_0")(x)
        x = jax.nn.softplus(x)
        x = FullyConnectedLayer(self.hidden_dim, 1 + self.output_dim, lr_multiplier=self.lr_multiplier, name="net_2")(x)
        rgb = jax.nn.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001
        sigma = x[..., 0:1]
        return {"rgb": rgb, "sigma": sigma}
