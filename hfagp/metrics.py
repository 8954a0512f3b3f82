"""Image-quality metrics (PSNR, SSIM, LPIPS) and subspace principal angles.

Images are NHWC float arrays with values in [-1, 1] (the project's layout). PSNR and SSIM are
defined on the equivalent [0, 1] images, ``(x + 1) / 2``, with data range 1, so the numbers equal
the usual ones on [0, 1] (or uint8 / 255) images. Per-image results have shape [B]. Nothing here
clips: callers clip renders to [-1, 1] first (`hfagp.eval` and the in-training evaluation do, so their
numbers agree).

* `psnr`: ``10 log10(1 / MSE)`` over H, W and channels (``+inf`` for identical images);
  `psnr_from_mse` the same from the MSE of [-1, 1] images (the training loss's PSNR).
* `ssim`: Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
  population (not sample) covariances, SSIM map over the 'valid' region (5 pixels cropped at each
  border), averaged over that region and over channels. This is scikit-image's
  ``structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=1, channel_axis=-1)``: its Gaussian filter (truncate 3.5) has radius 5, so after its
  crop no reflected padding is ever read.
  DeepMind's `dm_pix.ssim` (0.4.5) computes the same quantity but is not used: against scikit-image its
  error is up to 6.2e-6 on a smooth image pair (this module's: 8.0e-7; it clips the variances and the
  covariance), and jitted on CPU it runs 2-3x slower (5x128x128x3: 151 vs 48 ms; 8x512x512x3: 4.4 vs 2.4 s).
  Its `psnr` expects [0, 1] images, so it would need the rescaling that `psnr_from_mse` folds in.
* `make_lpips_metric`: LPIPS distance [B] from `hfagp.lpips` (weights from a local npz).
* `principal_angles`: angles in degrees between the row spaces of two bases (numpy, float64).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5            # int(3.5 * 1.5 + 0.5): scikit-image's truncate=3.5 window, 11x11
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(pred, target, name: str) -> tuple[jax.Array, jax.Array]:
    pred = jnp.asarray(pred, jnp.float32)
    target = jnp.asarray(target, jnp.float32)
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"{name}: expected two NHWC images of one shape, got {pred.shape} and {target.shape}")
    return pred, target


def psnr_from_mse(mse):
    """PSNR in dB from the MSE of images in [-1, 1] (their [0, 1] versions have MSE / 4; peak 1)."""
    return -10.0 * jnp.log10(mse / 4.0)


def psnr(pred, target) -> jax.Array:
    """PSNR in dB per image [B] of NHWC images in [-1, 1] (= PSNR of the [0, 1] images, data range 1)."""
    pred, target = _check_pair(pred, target, "psnr")
    return psnr_from_mse(jnp.mean(jnp.square(pred - target), axis=(1, 2, 3)))


def gaussian_window(sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> np.ndarray:
    """Normalised 1-D Gaussian taps [2 * radius + 1] (float64), as scipy.ndimage's gaussian_filter."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _filter_valid(x: jax.Array, taps: np.ndarray) -> jax.Array:
    """Separable 'valid' filtering of [B, H, W, C] with `taps` along H then W -> [B, H-2r, W-2r, C]."""
    n = len(taps)
    h, w = x.shape[1], x.shape[2]
    x = sum(float(t) * x[:, i:h - n + 1 + i] for i, t in enumerate(taps))
    return sum(float(t) * x[:, :, i:w - n + 1 + i] for i, t in enumerate(taps))


def ssim_map(pred, target, sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> jax.Array:
    """The SSIM map [B, H - 2r, W - 2r, C] over the valid region (images NHWC in [-1, 1])."""
    pred, target = _check_pair(pred, target, "ssim")
    if min(pred.shape[1:3]) < 2 * radius + 1:
        raise ValueError(f"ssim: images must be at least {2 * radius + 1}x{2 * radius + 1}, got {pred.shape}")
    x = (pred + 1.0) * 0.5
    y = (target + 1.0) * 0.5
    taps = gaussian_window(sigma, radius)
    mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
    var_x = _filter_valid(x * x, taps) - mu_x * mu_x
    var_y = _filter_valid(y * y, taps) - mu_y * mu_y
    cov = _filter_valid(x * y, taps) - mu_x * mu_y
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2  # data range 1
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def ssim(pred, target, sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> jax.Array:
    """Mean SSIM per image [B] of NHWC images in [-1, 1] (module docstring: scikit-image's definition)."""
    return jnp.mean(ssim_map(pred, target, sigma, radius), axis=(1, 2, 3))


def make_lpips_metric(weights_path, net: str = "alex") -> Callable[[jax.Array, jax.Array], jax.Array]:
    """A jitted LPIPS distance ``fn(pred, target) -> [B]`` for NHWC images in [-1, 1].

    weights_path: an npz made by `python -m convert_weights.lpips` (no weights ship with the project).
    """
    from hfagp.lpips import make_lpips

    lpips_fn = make_lpips(weights_path, net)
    apply = jax.jit(lambda fn, a, b: jnp.reshape(fn(a, b), (a.shape[0],)))
    return lambda pred, target: apply(lpips_fn, *_check_pair(pred, target, "lpips"))


def principal_angles(basis_a, basis_b) -> np.ndarray:
    """Principal angles in degrees, ascending, between the row spaces of [k1, D] and [k2, D] bases.

    Orthonormalises each row set (QR, float64); the cosines are the singular values of ``Qa^T Qb``, the
    sines those of the smaller basis minus its projection on the larger (arcsin for small angles,
    arccos for large ones, as `scipy.linalg.subspace_angles`). min(k1, k2) angles in [0, 90]: 0 means
    a shared direction, 90 an orthogonal one. Rows need not be orthonormal but must be independent.
    """
    a = np.asarray(basis_a, np.float64)
    b = np.asarray(basis_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"principal_angles: expected bases [k1, D] and [k2, D], got {a.shape} and {b.shape}")
    if max(a.shape[0], b.shape[0]) > a.shape[1]:
        raise ValueError(f"principal_angles: more basis rows than dimensions: {a.shape}, {b.shape}")
    qa, ra = np.linalg.qr(a.T)
    qb, rb = np.linalg.qr(b.T)
    for name, r in (("basis_a", ra), ("basis_b", rb)):
        diag = np.abs(np.diag(r))
        if diag.min() <= 1e-10 * max(diag.max(), 1e-300):
            raise ValueError(f"principal_angles: the rows of {name} are linearly dependent")
    if qa.shape[1] < qb.shape[1]:
        qa, qb = qb, qa
    cosines = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), 0.0, 1.0)          # descending
    sines = np.clip(np.linalg.svd(qb - qa @ (qa.T @ qb), compute_uv=False), 0.0, 1.0)[::-1]  # ascending
    # arccos is inaccurate near 0 degrees, arcsin near 90: use each where it is well conditioned.
    angles = np.where(cosines ** 2 >= 0.5, np.arcsin(sines), np.arccos(cosines))
    return np.degrees(angles)


def mean_or_nan(values) -> float:
    """Mean of finite-or-inf values as a float (nan for an empty list), for summaries."""
    values = np.asarray(values, np.float64)
    return float(values.mean()) if values.size else math.nan


__all__ = ["gaussian_window", "make_lpips_metric", "mean_or_nan", "principal_angles", "psnr", "psnr_from_mse", "ssim",
           "ssim_map"]
