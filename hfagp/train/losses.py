"""The reconstruction loss of the paper's Eq. 2 (mean L2 + lambda * LPIPS), optionally weighted on the face.
Images NHWC in [-1, 1]."""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from hfagp.metrics import psnr_from_mse
from hfagp_common.images import area_downsample


# Where a face-weighted loss looks, about each face point (`hfagp.datasets`: the mouth centre and the two eyes),
# as (half width, above, below) in units of the frame's eye distance: the lips and an open mouth; an eye, its
# lids and the brow above it.
FACE_BOXES = {"mouth": (0.45, 0.25, 0.6), "eye": (0.35, 0.45, 0.25)}


def face_weights(face_points: jax.Array, resolution: int, face_weight: float) -> jax.Array:
    """Pixel weights float32 [B, R, R]: 1, plus `face_weight` inside `FACE_BOXES` about the face points
    [B, 3, 2] (pixel column, row of the mouth, the left and the right eye at resolution R)."""
    points = jnp.asarray(face_points, jnp.float32)
    eye_distance = jnp.linalg.norm(points[:, 1] - points[:, 2], axis=-1)[:, None, None]
    cols = jnp.arange(resolution, dtype=jnp.float32)[None, None, :]
    rows = jnp.arange(resolution, dtype=jnp.float32)[None, :, None]

    def box(centre, extent):
        half, above, below = (jnp.maximum(k * eye_distance, 0.5) for k in extent)
        dx, dy = cols - centre[:, 0, None, None], rows - centre[:, 1, None, None]
        return (jnp.abs(dx) <= half) & (dy >= -above) & (dy <= below)

    face = (box(points[:, 0], FACE_BOXES["mouth"]) | box(points[:, 1], FACE_BOXES["eye"])
            | box(points[:, 2], FACE_BOXES["eye"]))
    return 1.0 + face_weight * face.astype(jnp.float32)


def reconstruction_loss(pred: jax.Array, target: jax.Array, *, loss_resolution: int,
                        lpips_weight: float, lpips_fn: Optional[Callable] = None,
                        pixel_weights: Optional[jax.Array] = None) -> tuple[jax.Array, dict]:
    """mean((pred - target)^2) + lpips_weight * mean(LPIPS(pred, target)) for a batch, and its metrics.

    Both images are area-averaged to `loss_resolution` first (the official code averages the 512 render
    to 256; the paper computes the loss at 512). With pixel_weights [B, R, R] (`face_weights`, averaged to the
    loss resolution too) the L2 term is their weighted mean sum(w (pred - target)^2) / sum(w). Metrics: 'l2',
    'psnr' (the plain mean of that batch, unclipped renders), 'weighted_l2' when weighted, and 'lpips' when
    LPIPS is weighted.
    """
    pred = area_downsample(pred, loss_resolution)
    target = area_downsample(target, loss_resolution)
    mse = jnp.mean(jnp.square(pred - target))
    metrics = {"l2": mse, "psnr": psnr_from_mse(mse)}
    loss = mse
    if pixel_weights is not None:
        w = area_downsample(pixel_weights[..., None], loss_resolution)
        loss = jnp.sum(w * jnp.square(pred - target)) / (jnp.sum(w) * pred.shape[-1])
        metrics["weighted_l2"] = loss
    if lpips_weight > 0:
        if lpips_fn is None:
            raise ValueError("lpips_weight > 0 but no LPIPS function was given")
        lp = jnp.mean(lpips_fn(pred, target))
        metrics["lpips"] = lp
        loss = loss + lpips_weight * lp
    return loss, metrics
