"""The reconstruction loss of the paper's Eq. 2 (mean L2 + lambda * LPIPS). Images NHWC in [-1, 1]."""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from hfagp.metrics import psnr_from_mse
from hfagp_common.images import area_downsample


def reconstruction_loss(pred: jax.Array, target: jax.Array, *, loss_resolution: int,
                        lpips_weight: float, lpips_fn: Optional[Callable] = None) -> tuple[jax.Array, dict]:
    """mean((pred - target)^2) + lpips_weight * mean(LPIPS(pred, target)) for a batch, and its metrics.

    Both images are area-averaged to `loss_resolution` first (the official code averages the 512 render
    to 256; the paper computes the loss at 512). Metrics: 'l2', 'psnr' (of that batch, unclipped renders)
    and 'lpips' when weighted.
    """
    pred = area_downsample(pred, loss_resolution)
    target = area_downsample(target, loss_resolution)
    mse = jnp.mean(jnp.square(pred - target))
    metrics = {"l2": mse, "psnr": psnr_from_mse(mse)}
    loss = mse
    if lpips_weight > 0:
        if lpips_fn is None:
            raise ValueError("lpips_weight > 0 but no LPIPS function was given")
        lp = jnp.mean(lpips_fn(pred, target))
        metrics["lpips"] = lp
        loss = loss + lpips_weight * lp
    return loss, metrics
