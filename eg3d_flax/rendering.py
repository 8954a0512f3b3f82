"""EG3D's volume rendering: rays from cameras, stratified + importance sampling, MipRayMarcher2.

Shapes: B cameras, R rays per camera (R = res*res, ray index = row*res + col), S samples per
ray. Depths and densities are [B,R,S]; colours/features are [B,R,S,C]. Everything is static-shape
and vectorised (no Python loops over rays), so it jits and differentiates on any backend.

`deterministic=True` is the fixtures' render mode: no stratified jitter, and importance samples at
u = linspace(0, 1, N) instead of uniform random u. Otherwise randomness comes from an explicit key.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp

DecodeFn = Callable[[jax.Array], dict]  # [B, M, 3] world points -> {'rgb': [B,M,C], 'sigma': [B,M,1]}


@dataclasses.dataclass(frozen=True)
class RenderOptions:
    """The rendering_kwargs that change the image (names as in EG3D)."""

    depth_resolution: int = 48
    depth_resolution_importance: int = 48
    ray_start: Union[float, str] = 2.25
    ray_end: Union[float, str] = 3.3
    box_warp: float = 1.0
    clamp_mode: str = "softplus"
    disparity_space_sampling: bool = False
    white_back: bool = False
    density_noise: float = 0.0


def camera_matrices(c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """EG3D 25-d label -> (cam2world [B,4,4] OpenCV convention, normalised intrinsics [B,3,3])."""
    return c[:, :16].reshape(-1, 4, 4), c[:, 16:25].reshape(-1, 3, 3)


def rays_from_cameras(c: jax.Array, resolution: int) -> tuple[jax.Array, jax.Array]:
    """EG3D `RaySampler`: one ray through each pixel centre.

    c: [B,25] labels. Returns origins [B,R,3] and unit directions [B,R,3], R = resolution**2,
    ray m = row*resolution + col; x comes from the column, y from the row (image y points down).
    """
    cam2world, intrinsics = camera_matrices(c)
    b = c.shape[0]
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
    cx, cy = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None]
    sk = intrinsics[:, 0, 1, None]
    pix = jnp.arange(resolution, dtype=jnp.float32) * (1.0 / resolution) + (0.5 / resolution)
    rows, cols = jnp.meshgrid(pix, pix, indexing="ij")
    x_cam = jnp.broadcast_to(cols.reshape(1, -1), (b, resolution * resolution))
    y_cam = jnp.broadcast_to(rows.reshape(1, -1), (b, resolution * resolution))
    x_lift = (x_cam - cx + cy * sk / fy - sk * y_cam / fy) / fx
    y_lift = (y_cam - cy) / fy
    ones = jnp.ones_like(x_lift)
    cam_points = jnp.stack([x_lift, y_lift, ones, ones], axis=-1)  # [B,R,4]
    world = jnp.einsum("bij,brj->bri", cam2world, cam_points, precision=jax.lax.Precision.HIGHEST)[..., :3]
    origins = cam2world[:, None, :3, 3]
    dirs = world - origins
    norm = jnp.linalg.norm(dirs, axis=-1, keepdims=True)
    dirs = dirs / jnp.maximum(norm, 1e-12)
    return jnp.broadcast_to(origins, dirs.shape), dirs


def sample_stratified(
    shape: tuple[int, int], opts: RenderOptions, key: Optional[jax.Array]
) -> jax.Array:
    """Coarse depths [B,R,S] between ray_start and ray_end; jittered within each bin unless key is None."""
    if isinstance(opts.ray_start, str) or isinstance(opts.ray_end, str):
        raise NotImplementedError("ray_start/ray_end='auto' (box-intersection limits) is not supported yet")
    n = opts.depth_resolution
    b, r = shape
    if opts.disparity_space_sampling:
        t = jnp.broadcast_to(jnp.linspace(0.0, 1.0, n, dtype=jnp.float32), (b, r, n))
        if key is not None:
            t = t + jax.random.uniform(key, (b, r, n)) * (1.0 / (n - 1))
        return 1.0 / (1.0 / opts.ray_start * (1.0 - t) + 1.0 / opts.ray_end * t)
    depths = jnp.broadcast_to(jnp.linspace(opts.ray_start, opts.ray_end, n, dtype=jnp.float32), (b, r, n))
    if key is not None:
        delta = (opts.ray_end - opts.ray_start) / (n - 1)
        depths = depths + jax.random.uniform(key, (b, r, n)) * delta
    return depths


def sample_pdf(bins: jax.Array, weights: jax.Array, u: jax.Array, eps: float = 1e-5) -> jax.Array:
    """Inverse-CDF sampling (NeRF's `sample_pdf`, right-sided searchsorted).

    bins: [..., Nb] (Nb >= Nw + 1; only the first Nw + 1 are reachable), weights: [..., Nw],
    u: [..., Ni] in [0, 1]. Returns samples [..., Ni].
    """
    nw = weights.shape[-1]
    weights = weights + eps
    pdf = weights / jnp.sum(weights, axis=-1, keepdims=True)
    cdf = jnp.cumsum(pdf, axis=-1)
    cdf = jnp.concatenate([jnp.zeros_like(cdf[..., :1]), cdf], axis=-1)  # [..., Nw+1]
    inds = jnp.sum(cdf[..., None, :] <= u[..., :, None], axis=-1)  # searchsorted(cdf, u, right=True)
    below = jnp.maximum(inds - 1, 0)
    above = jnp.minimum(inds, nw)
    cdf_below = jnp.take_along_axis(cdf, below, axis=-1)
    cdf_above = jnp.take_along_axis(cdf, above, axis=-1)
    bins_below = jnp.take_along_axis(bins, below, axis=-1)
    bins_above = jnp.take_along_axis(bins, above, axis=-1)
    denom = cdf_above - cdf_below
    denom = jnp.where(denom < eps, 1.0, denom)
    return bins_below + (u - cdf_below) / denom * (bins_above - bins_below)


def sample_importance(
    depths: jax.Array, weights: jax.Array, n_importance: int, key: Optional[jax.Array]
) -> jax.Array:
    """Fine depths [B,R,Ni] from coarse depths [B,R,S] and ray-march weights [B,R,S-1].

    Weights are smoothed as the reference does (max-pool k2 s1 pad1, avg-pool k2 s1, +0.01);
    no gradient flows through the sample positions.
    """
    depths = jax.lax.stop_gradient(depths)
    weights = jax.lax.stop_gradient(weights)
    pad = jnp.full(weights.shape[:-1] + (1,), -jnp.inf, weights.dtype)
    padded = jnp.concatenate([pad, weights, pad], axis=-1)
    pooled = jnp.maximum(padded[..., :-1], padded[..., 1:])
    smoothed = 0.5 * (pooled[..., :-1] + pooled[..., 1:]) + 0.01
    mids = 0.5 * (depths[..., :-1] + depths[..., 1:])
    if key is None:
        u = jnp.broadcast_to(jnp.linspace(0.0, 1.0, n_importance, dtype=jnp.float32),
                             depths.shape[:-1] + (n_importance,))
    else:
        u = jax.random.uniform(key, depths.shape[:-1] + (n_importance,))
    return jax.lax.stop_gradient(sample_pdf(mids, smoothed[..., 1:-1], u))


def ray_march(colors, densities, depths, opts: RenderOptions):
    """MipRayMarcher2. colors [B,R,S,C], densities/depths [B,R,S].

    Returns rgb [B,R,C] (scaled to [-1,1] as the reference: x*2-1), depth [B,R] (clamped to the
    global min/max of `depths` over the whole batch, as the reference does), weights [B,R,S-1].
    """
    if opts.clamp_mode != "softplus":
        raise ValueError("MipRayMarcher2 only supports clamp_mode='softplus'")
    deltas = depths[..., 1:] - depths[..., :-1]
    colors_mid = 0.5 * (colors[..., :-1, :] + colors[..., 1:, :])
    densities_mid = 0.5 * (densities[..., :-1] + densities[..., 1:])
    depths_mid = 0.5 * (depths[..., :-1] + depths[..., 1:])
    densities_mid = jax.nn.softplus(densities_mid - 1.0)
    alpha = 1.0 - jnp.exp(-densities_mid * deltas)
    shifted = jnp.concatenate([jnp.ones_like(alpha[..., :1]), 1.0 - alpha + 1e-10], axis=-1)
    weights = alpha * jnp.cumprod(shifted, axis=-1)[..., :-1]
    rgb = jnp.sum(weights[..., None] * colors_mid, axis=-2)
    weight_total = jnp.sum(weights, axis=-1)
    # The reference divides and turns the 0/0 of empty rays into inf (then clamps to the far end); dividing
    # only where there is weight gives the same values with finite gradients (depth supervision needs them).
    hit = weight_total > 0
    depth = jnp.where(hit, jnp.sum(weights * depths_mid, axis=-1) / jnp.where(hit, weight_total, 1.0), jnp.inf)
    depth = jnp.clip(depth, jnp.min(depths), jnp.max(depths))
    if opts.white_back:
        rgb = rgb + 1.0 - weight_total[..., None]
    return rgb * 2.0 - 1.0, depth, weights


def unify_samples(depths1, colors1, dens1, depths2, colors2, dens2):
    """Concatenate two sample sets along S and sort by depth (stable)."""
    depths = jnp.concatenate([depths1, depths2], axis=-1)
    colors = jnp.concatenate([colors1, colors2], axis=-2)
    dens = jnp.concatenate([dens1, dens2], axis=-1)
    order = jnp.argsort(depths, axis=-1, stable=True)
    return (jnp.take_along_axis(depths, order, axis=-1),
            jnp.take_along_axis(colors, order[..., None], axis=-2),
            jnp.take_along_axis(dens, order, axis=-1))


def render_rays(
    decode: DecodeFn,
    ray_origins: jax.Array,
    ray_directions: jax.Array,
    opts: RenderOptions,
    key: Optional[jax.Array] = None,
):
    """EG3D `ImportanceRenderer.forward`. key=None is the deterministic mode.

    Returns features [B,R,C] in about [-1,1], depth [B,R], accumulated weight [B,R].
    """
    b, r, _ = ray_origins.shape
    keys = (None, None, None, None) if key is None else tuple(jax.random.split(key, 4))

    def run(depths, noise_key):
        points = ray_origins[:, :, None, :] + depths[..., None] * ray_directions[:, :, None, :]
        out = decode(points.reshape(b, -1, 3))
        colors = out["rgb"].reshape(b, r, depths.shape[-1], -1)
        sigma = out["sigma"].reshape(b, r, depths.shape[-1])
        if opts.density_noise > 0 and noise_key is not None:
            sigma = sigma + jax.random.normal(noise_key, sigma.shape) * opts.density_noise
        return colors, sigma

    depths_coarse = sample_stratified((b, r), opts, keys[0])
    colors_coarse, sigma_coarse = run(depths_coarse, keys[2])
    n_fine = opts.depth_resolution_importance
    if n_fine > 0:
        _, _, weights = ray_march(colors_coarse, sigma_coarse, depths_coarse, opts)
        depths_fine = sample_importance(depths_coarse, weights, n_fine, keys[1])
        colors_fine, sigma_fine = run(depths_fine, keys[3])
        depths, colors, sigma = unify_samples(
            depths_coarse, colors_coarse, sigma_coarse, depths_fine, colors_fine, sigma_fine)
    else:
        depths, colors, sigma = depths_coarse, colors_coarse, sigma_coarse
    rgb, depth, weights = ray_march(colors, sigma, depths, opts)
    return rgb, depth, jnp.sum(weights, axis=-1)
