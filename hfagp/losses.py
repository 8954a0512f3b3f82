"""Reconstruction loss (mean L2 + lambda * LPIPS) and image-quality helpers. Images NHWC in [-1, 1]."""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp


def area_downsample(x: jax.Array, size: int) -> jax.Array:
    """[B,H,W,C] -> [B,size,size,C] by averaging (H/size)x(W/size) blocks (AdaptiveAvgPool2d)."""
    b, h, w, c = x.shape
    if h == size and w == size:
        return x
    if h % size or w % size:
        raise ValueError(f"cannot area-downsample {h}x{w} to {size}x{size} (not an integer factor)")
    return x.reshape(b, size, h // size, size, w // size, c).mean(axis=(2, 4))


def psnr_from_mse(mse: jax.Array) -> jax.Array:
    """PSNR in dB of images in [-1, 1] (i.e. of their [0, 1] versions: peak 1, mse/4)."""
    return -10.0 * jnp.log10(jnp.maximum(mse / 4.0, 1e-12))


def reconstruction_loss(pred: jax.Array, target: jax.Array, *, loss_resolution: int,
                        lpips_weight: float, lpips_fn: Optional[Callable] = None) -> tuple[jax.Array, dict]:
    """The paper's Eq. 2 for a batch: mean((pred-target)^2) + lpips_weight * mean(LPIPS(pred, target)).

    Both images are area-averaged to `loss_resolution` first (the official code averages the
    512 render to 256; the paper computes the loss at 512).
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
