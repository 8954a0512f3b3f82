"""Sphere tracing of the head model (`avatar_data.worlds.heads.model`) at EG3D cameras, jitted and batched.

Cameras are EG3D labels [N, 25] (OpenCV cam2world + normalised intrinsics, `avatar_data.cameras`). The ray of
pixel column i, row j passes through ``((i + 0.5) / R, (j + 0.5) / R)`` in normalised image coordinates, as in
EG3D's RaySampler. Antialiasing is adaptive supersampling: pixels whose centre ray differs from a neighbour's
(coverage, depth by more than `EDGE_DEPTH`, sRGB colour by more than `EDGE_RGB`; about 20% of a 128 x 128
head image) are rendered again from s x s rays at the centres of their sub-pixels and become the box average
of those; the others keep their centre ray. At 128 x 128 and s = 2 this costs about 2.6x a render without
antialiasing (full supersampling: about 3.7x) and differs from full supersampling by 0.1 / 255 on average.

Per ray: up to `STEPS` sphere-tracing steps from where the ray enters the scene ball (never before depth
`T_NEAR`), each advancing by `RELAX` times the distance bound, or stepping back by the full (negative)
distance after an overshoot; a ray stops once its distance is below half a (sub-)pixel footprint or it
has left the far bound `T_FAR`; normals from a four-point tetrahedral finite difference; five-sample ambient
occlusion along the normal; Lambert shading from a key and a fill light fixed in the world (so that every
view of a scene sees the same lighting) plus a sky-tinted ambient term, and a small highlight on the eyes.
Shading is in linear light, averaged over the sub-rays, and written as sRGB.

Outputs per image: rgb uint8 [R, R, 3]; depth float32 [R, R], the euclidean distance from the camera centre
along the unit ray to the surface (EG3D's ``image_depth``), averaged over the rays of the pixel that hit, 0
where none did; mask float32 [R, R] in [0, 1], the fraction of the pixel's rays that hit; part uint8 [R, R],
the part label (`model.PART_NAMES`) of what the pixel's centre ray hits, found by the same program that shades
it (`model.part_label`: which of the model's distance components is nearest the hit point).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from avatar_data import cameras
from avatar_data.worlds.heads import model
from avatar_data.worlds.heads import params as P
from hfagp_common.batching import batched

STEPS = 64
FIRST_STEPS = 20        # steps taken by every ray; the unfinished ones continue in chunks
CHUNK_FRACTION = 0.125  # rays per chunk of the second marching phase and of shading, as a fraction of all
RELAX = 0.85
T_NEAR, T_FAR = 2.25, 3.3  # EG3D FFHQ's ray_start / ray_end
HIT_PIXELS = 0.5           # a ray hits when its distance bound is below this many (sub-)pixel footprints
NORMAL_STEP = 6e-4
AO_STEPS = (0.006, 0.018, 0.034, 0.056, 0.085)
BATCH_SIZE = 8             # every image is rendered in a batch of this size, so results never depend on N
JOBS_PER_PASS = 2          # the pixel-centre pass runs as this many jobs of equal size
EDGE_RGB = 0.045           # sRGB difference to a neighbour that makes a pixel an edge (about 11 / 255)
EDGE_DEPTH = 0.01          # depth difference (world units) that makes a pixel an edge

_KEY_DIR = np.array([-0.45, 0.55, 0.70]) / np.linalg.norm([-0.45, 0.55, 0.70])
_FILL_DIR = np.array([0.70, 0.05, 0.55]) / np.linalg.norm([0.70, 0.05, 0.55])
_KEY_RGB = (1.15, 1.09, 1.0)
_FILL_RGB = (0.32, 0.35, 0.40)
_SKY_RGB = (0.36, 0.37, 0.40)


def rays_at(label, u, v, xp=jnp):
    """Rays of an EG3D label [25] through normalised image points (u, v) (arrays of one shape; pixel column
    i of an R-wide image spans u in [i / R, (i + 1) / R]): origin (3 scalars), unit directions (3 arrays)."""
    c2w = label[:16].reshape(4, 4)
    k = label[16:].reshape(3, 3)
    fx, fy, cx, cy, sk = k[0, 0], k[1, 1], k[0, 2], k[1, 2], k[0, 1]
    x_cam = (u - cx + cy * sk / fy - sk * v / fy) / fx
    y_cam = (v - cy) / fy
    dx = c2w[0, 0] * x_cam + c2w[0, 1] * y_cam + c2w[0, 2]
    dy = c2w[1, 0] * x_cam + c2w[1, 1] * y_cam + c2w[1, 2]
    dz = c2w[2, 0] * x_cam + c2w[2, 1] * y_cam + c2w[2, 2]
    norm = xp.sqrt(dx * dx + dy * dy + dz * dz)
    return (c2w[0, 3], c2w[1, 3], c2w[2, 3]), (dx / norm, dy / norm, dz / norm)


def pixel_rays(label, resolution: int, supersample: int = 1, xp=jnp):
    """Rays of an EG3D label [25] through the centres of resolution*supersample sub-pixels: origin (3 scalars)
    and unit directions (3 arrays [n*n], row-major over (row, column) with n = resolution * supersample)."""
    n = resolution * supersample
    centres = (xp.arange(n, dtype=xp.float32) + 0.5) / n
    u = xp.broadcast_to(centres[None, :], (n, n)).reshape(-1)
    v = xp.broadcast_to(centres[:, None], (n, n)).reshape(-1)
    return rays_at(label, u, v, xp)


def _chunked(fn, selected, count, size: int, chunk: int, state):
    """Apply ``fn(indices, state) -> state`` to the rays `selected` [size] (indices of the chosen rays first,
    then `size` as filler) in chunks of `chunk`, only as many chunks as `count` rays need."""
    def body(k, state):
        return fn(jax.lax.dynamic_slice(selected, (k * chunk,), (chunk,)), state)

    return jax.lax.fori_loop(0, (count + chunk - 1) // chunk, body, state)


def _gather(a, idx, fill):
    return a.at[idx].get(mode="fill", fill_value=fill)


def _trace(origin, direction, d, pixel_angle):
    """Sphere tracing -> (t [M], hit bool [M]).

    All rays take `FIRST_STEPS` steps; the rays still marching then (neither converged nor past the far
    bound) are gathered in chunks of `CHUNK_FRACTION` of the rays and take up to `STEPS - FIRST_STEPS` more,
    a chunk stopping early once all its rays are done. A ray's steps depend on that ray alone.
    """
    ox, oy, oz = origin
    dx, dy, dz = direction
    b = ox * dx + oy * dy + oz * dz
    disc = b * b - (ox * ox + oy * oy + oz * oz - model.SCENE_RADIUS ** 2)
    root = jnp.sqrt(jnp.maximum(disc, 0.0))
    t0 = jnp.maximum(T_NEAR, -b - root)
    t1 = jnp.minimum(T_FAR, -b + root)
    valid = (disc > 0.0) & (t0 < t1)
    t0 = jnp.where(valid, t0, t1 + 0.01)

    def running(t, dist, t1):
        return (jnp.abs(dist) >= HIT_PIXELS * pixel_angle * t) & (t <= t1)

    def march(t, dist, dx, dy, dz, t1, steps):
        def cond(carry):
            i, t, dist = carry
            return (i < steps) & jnp.any(running(t, dist, t1))

        def step(carry):
            i, t, dist = carry
            live = running(t, dist, t1)
            new = model.scene_distance(ox + t * dx, oy + t * dy, oz + t * dz, d, jnp)
            dist = jnp.where(live, new, dist)
            move = jnp.where(dist > 0.0, RELAX * dist, dist)
            return i + 1, jnp.where(live, jnp.minimum(t + move, t1 + 0.01), t), dist

        _, t, dist = jax.lax.while_loop(cond, step, (0, t, dist))
        return t, dist

    t, dist = march(t0, jnp.ones_like(t0), dx, dy, dz, t1, FIRST_STEPS)
    active = running(t, dist, t1)
    size = t.shape[0]
    chunk = max(1, int(size * CHUNK_FRACTION))
    (selected,) = jnp.nonzero(active, size=size, fill_value=size)

    def continue_chunk(idx, state):
        t, dist = state
        t_c, dist_c = march(_gather(t, idx, T_FAR + 0.01), _gather(dist, idx, 1.0), _gather(dx, idx, 0.0),
                            _gather(dy, idx, 0.0), _gather(dz, idx, 1.0), _gather(t1, idx, T_FAR),
                            STEPS - FIRST_STEPS)
        return t.at[idx].set(t_c, mode="drop"), dist.at[idx].set(dist_c, mode="drop")

    t, dist = _chunked(continue_chunk, selected, jnp.sum(active), size, chunk, (t, dist))
    hit = valid & (dist < HIT_PIXELS * pixel_angle * t) & (t <= t1)
    return t, hit


_TETRAHEDRON = np.array([[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, 1.0, 1.0]], np.float32)


def _normals(px, py, pz, d):
    """Unit normals (3 arrays) from the distance at the four corners of a small tetrahedron.

    The corners are visited by a loop rather than evaluated as one stacked array: XLA on CPU runs the
    stacked form several times slower than four evaluations of the flat one.
    """
    k = jnp.asarray(_TETRAHEDRON)

    def corner(i, acc):
        dist = model.scene_distance(px + NORMAL_STEP * k[i, 0], py + NORMAL_STEP * k[i, 1],
                                    pz + NORMAL_STEP * k[i, 2], d, jnp)
        return tuple(a + k[i, j] * dist for j, a in enumerate(acc))

    zero = jnp.zeros_like(px)
    nx, ny, nz = jax.lax.fori_loop(0, 4, corner, (zero, zero, zero))
    norm = jnp.sqrt(nx * nx + ny * ny + nz * nz) + 1e-12
    return nx / norm, ny / norm, nz / norm


def _occlusion(px, py, pz, n, d):
    """Ambient occlusion in [0, 1] (1 = open) from the distances at `AO_STEPS` along the normal."""
    h = jnp.asarray(AO_STEPS, jnp.float32)
    weights = 0.8 ** np.arange(len(AO_STEPS))
    w = jnp.asarray(weights / weights.sum(), jnp.float32)

    def sample(i, occ):
        dist = model.scene_distance(px + h[i] * n[0], py + h[i] * n[1], pz + h[i] * n[2], d, jnp)
        return occ + w[i] * jnp.maximum(h[i] - dist, 0.0) / h[i]

    occ = jax.lax.fori_loop(0, len(AO_STEPS), sample, jnp.zeros_like(px))
    return jnp.clip(1.0 - 1.6 * occ, 0.0, 1.0)


def _shade(px, py, pz, direction, d):
    """Linear rgb (3 arrays [M]) and part labels (int32 [M], `model.part_label`) of the surface points."""
    (ar, ag, ab), material, part = model.surface_colour(px, py, pz, d, jnp)
    n = _normals(px, py, pz, d)
    ao = _occlusion(px, py, pz, n, d)
    key = jnp.maximum(n[0] * _KEY_DIR[0] + n[1] * _KEY_DIR[1] + n[2] * _KEY_DIR[2], 0.0)
    fill = jnp.maximum(n[0] * _FILL_DIR[0] + n[1] * _FILL_DIR[1] + n[2] * _FILL_DIR[2], 0.0)
    sky = (0.65 + 0.35 * n[1]) * ao
    hx, hy, hz = _KEY_DIR[0] - direction[0], _KEY_DIR[1] - direction[1], _KEY_DIR[2] - direction[2]
    hn = jnp.sqrt(hx * hx + hy * hy + hz * hz)
    spec = jnp.maximum((n[0] * hx + n[1] * hy + n[2] * hz) / hn, 0.0) ** 48
    spec = jnp.where(material == model.EYE, 0.5, jnp.where(material == model.SKIN, 0.03, 0.0)) * spec * ao
    key_w = key * (0.55 + 0.45 * ao)
    out = []
    for a, kc, fc, sc in zip((ar, ag, ab), _KEY_RGB, _FILL_RGB, _SKY_RGB):
        out.append(a * (kc * key_w + fc * fill * ao + sc * sky) + spec)
    return out, part


def _trace_and_shade(label, u, v, d, pixel_angle):
    """Rays through (u, v) [K] -> (t [K], hit bool [K], (linear rgb (3 arrays [K], the background where no
    hit), part label int32 [K], 0 = background where no hit)). Only the rays that hit are shaded, in chunks of
    `CHUNK_FRACTION` of the rays."""
    origin, direction = rays_at(label, u, v)
    t, hit = _trace(origin, direction, d, pixel_angle)
    size = t.shape[0]
    (selected,) = jnp.nonzero(hit, size=size, fill_value=size)

    def shade_chunk(idx, state):
        colour, part = state
        t_c = _gather(t, idx, T_NEAR)
        dir_c = tuple(_gather(w, idx, 0.0) for w in direction)
        shaded, part_c = _shade(*(o + t_c * w for o, w in zip(origin, dir_c)), dir_c, d)
        return (tuple(c.at[idx].set(w, mode="drop") for c, w in zip(colour, shaded)),
                part.at[idx].set(part_c, mode="drop"))

    background = tuple(jnp.full((size,), b, jnp.float32) for b in d["background_rgb"])
    nothing = jnp.full((size,), model.PART["background"], jnp.int32)
    chunk = max(1, int(size * CHUNK_FRACTION))
    return t, hit, _chunked(shade_chunk, selected, jnp.sum(hit), size, chunk, (background, nothing))


def _edges(rgb, hit, depth, resolution: int):
    """Pixels [R*R] bool whose colour (sRGB), coverage or depth differs from a 4-neighbour's by more than
    `EDGE_RGB` / any / `EDGE_DEPTH`."""
    shape = (resolution, resolution)
    srgb = [jnp.clip(c, 0.0, 1.0).reshape(shape) ** (1.0 / 2.2) for c in rgb]
    hit, depth = hit.reshape(shape), depth.reshape(shape)

    def differs(axis):
        take = lambda a, lo, hi: jax.lax.slice_in_dim(a, lo, hi, axis=axis)
        n = resolution
        out = take(hit, 1, n) != take(hit, 0, n - 1)
        out |= jnp.abs(take(depth, 1, n) - take(depth, 0, n - 1)) > EDGE_DEPTH
        for c in srgb:
            out |= jnp.abs(take(c, 1, n) - take(c, 0, n - 1)) > EDGE_RGB
        pad = [(0, 0), (0, 0)]
        before, after = list(pad), list(pad)
        before[axis], after[axis] = (1, 0), (0, 1)
        return jnp.pad(out, before) | jnp.pad(out, after)

    return (differs(0) | differs(1)).reshape(-1)


def render_one(identity, expression, pose, label, resolution: int, supersample: int):
    """One image: identity [IDENTITY_DIM], expression [10], pose [6], label [25] (float32) ->
    (rgb uint8 [R, R, 3], depth float32 [R, R], mask float32 [R, R], part uint8 [R, R]).

    part: the part label (`model.PART_NAMES`) of what the pixel's centre ray hits, 0 = background; it comes
    from the first pass only (a refined pixel keeps its centre ray's label).

    Adaptive supersampling: every pixel is first rendered by its centre ray; then the pixels on an edge
    (`_edges`: silhouettes, occlusions, colour boundaries) are rendered again from supersample x supersample
    sub-pixel rays, whose box average replaces them. Both passes run as one loop over jobs of the same number
    of rays, so the tracing and shading code is compiled once.
    """
    d = model.derive(identity, expression, pose, jnp)
    r, s = resolution, supersample
    pixels, samples = r * r, s * s
    job = samples * max(1, -(-pixels // (JOBS_PER_PASS * samples)))  # rays per job, a multiple of samples
    first_jobs = -(-pixels // job)
    per_refine = job // samples                                        # pixels per refinement job
    pixel_angle = 1.0 / (label[16] * r)
    sub = jnp.arange(job) % samples
    sub_u, sub_v = ((sub % s).astype(jnp.float32) + 0.5) / s, ((sub // s).astype(jnp.float32) + 0.5) / s

    def body(state):
        j, total, selected, acc, part = state
        # Once the first pass is done, pick the edge pixels and schedule their refinement jobs.
        def schedule(_):
            rgb, hit, depth_sum = acc[:3], acc[3], acc[4]
            depth = jnp.where(hit > 0, depth_sum / jnp.maximum(hit, 1e-6), 0.0)
            edge = _edges(rgb, hit, depth, r)
            (sel,) = jnp.nonzero(edge, size=pixels, fill_value=pixels)
            count = jnp.sum(edge)
            return first_jobs + jnp.maximum((count + per_refine - 1) // per_refine, 1), sel.astype(jnp.int32)

        total, selected = jax.lax.cond(j == first_jobs, schedule, lambda _: (total, selected), None)
        refine = j >= first_jobs
        first_ids = j * job + jnp.arange(job)
        refine_ids = jnp.repeat(_gather(selected, (j - first_jobs) * per_refine + jnp.arange(per_refine), pixels),
                                samples)
        ids = jnp.where(refine, refine_ids, jnp.where(first_ids < pixels, first_ids, pixels))
        du = jnp.where(refine, sub_u, 0.5)
        dv = jnp.where(refine, sub_v, 0.5)
        u = ((ids % r).astype(jnp.float32) + du) / r
        v = ((ids // r).astype(jnp.float32) + dv) / r
        t, hit, (colour, part_j) = _trace_and_shade(label, u, v, d,
                                                    jnp.where(refine, pixel_angle / s, pixel_angle))
        weight = jnp.where(refine, 1.0 / samples, 1.0)
        hitf = hit.astype(jnp.float32)
        values = (*colour, hitf, hitf * t)
        acc = tuple(a.at[ids].set(0.0, mode="drop").at[ids].add(weight * x, mode="drop")
                    for a, x in zip(acc, values))
        part = part.at[jnp.where(refine, pixels, ids)].set(part_j, mode="drop")
        return j + 1, total, selected, acc, part

    acc = tuple(jnp.zeros((pixels,), jnp.float32) for _ in range(5))
    total = first_jobs + (1 if s > 1 else 0)
    state = (0, total, jnp.full((pixels,), pixels, jnp.int32), acc, jnp.zeros((pixels,), jnp.int32))
    _, _, _, acc, part = jax.lax.while_loop(lambda st: st[0] < st[1], body, state)
    rgb = jnp.stack(acc[:3], axis=-1).reshape(r, r, 3)
    srgb = jnp.clip(rgb, 0.0, 1.0) ** (1.0 / 2.2)
    rgb8 = jnp.round(srgb * 255.0).astype(jnp.uint8)
    coverage = acc[3].reshape(r, r)
    depth = jnp.where(coverage > 0, acc[4].reshape(r, r) / jnp.maximum(coverage, 1e-6), 0.0)
    return rgb8, depth.astype(jnp.float32), coverage, part.reshape(r, r).astype(jnp.uint8)


@functools.partial(jax.jit, static_argnames=("resolution", "supersample"))
def render_batch(identity, expression, pose, label, resolution: int, supersample: int):
    """`render_one` over a batch: [B, IDENTITY_DIM], [B, 10], [B, 6], [B, 25] -> [B, ...] outputs.

    The images are rendered one after the other (`jax.lax.map`), not vectorised: each image's loops then
    stop as soon as its own rays are done, and no image depends on the others."""
    fn = functools.partial(render_one, resolution=resolution, supersample=supersample)
    return jax.lax.map(lambda args: fn(*args), (identity, expression, pose, label))


def render(identity: np.ndarray, expression: np.ndarray, pose: np.ndarray, labels: np.ndarray, *,
           resolution: int, supersample: int = 2, progress: bool = False, desc: str = "render",
           batch_size: int = BATCH_SIZE) -> dict:
    """Render N images on the host: identity [N, IDENTITY_DIM] (or [IDENTITY_DIM], shared), expression [N, 10],
    pose [N, 6], labels [N, 25] -> {'rgb': uint8 [N, R, R, 3], 'depth': float32 [N, R, R],
    'mask': float32 [N, R, R], 'part': uint8 [N, R, R]} (see `render_one`).

    Batches have the fixed size ``batch_size`` (the last one padded), so one compiled program serves every N
    and an image's pixels never depend on which other images share its batch. The next batch is dispatched
    before the previous one is copied back.
    """
    labels = np.asarray(labels, np.float32)
    n = labels.shape[0]
    identity = np.asarray(identity, np.float32)
    if identity.ndim == 1:
        identity = np.broadcast_to(identity, (n, P.IDENTITY_DIM))
    arrays = [identity, np.asarray(expression, np.float32), np.asarray(pose, np.float32), labels]
    dims = (P.IDENTITY_DIM, P.EXPRESSION_DIM, P.POSE_DIM, cameras.LABEL_DIM)
    for name, a, dim in zip(("identity", "expression", "pose", "labels"), arrays, dims):
        if a.shape != (n, dim):
            raise ValueError(f"{name} must be [{n}, {dim}], got {a.shape}")
    if resolution < 1 or supersample < 1:
        raise ValueError(f"need resolution >= 1 and supersample >= 1, got {resolution} and {supersample}")
    if n == 0:
        return {"rgb": np.zeros((0, resolution, resolution, 3), np.uint8),
                "depth": np.zeros((0, resolution, resolution), np.float32),
                "mask": np.zeros((0, resolution, resolution), np.float32),
                "part": np.zeros((0, resolution, resolution), np.uint8)}
    fn = lambda *chunk: dict(zip(("rgb", "depth", "mask", "part"), render_batch(*chunk, resolution=resolution,
                                                                      supersample=supersample)))
    return batched(fn, arrays, batch_size, desc=desc, progress=progress)
