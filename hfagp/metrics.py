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

Face fidelity (numpy, float64 results; images NHWC in [-1, 1] as above, scored as their [0, 1] versions).
Whole-frame PSNR/SSIM barely see a blurred face, so these look at the face alone, from a world's part
labels [B, H, W] (`avatar_data.worlds.heads.model.PART_NAMES`, names passed in) and face points [B, 3, 2]
(pixel column, row of the mouth centre, the left and the right eye, pixel i's centre at i):

* `face_regions`: boolean masks [B, H, W]. 'face': the facial features (`FACE_PARTS`: eyes, eyelids, brows,
  lips, mouth interior, nose) plus the skin between them (skin pixels inside the features' convex hull:
  the cheeks between the eyes and the mouth, the upper lip, not the forehead above the brows nor the jaw's
  sides), dilated by `REGION_DILATION` pixels (a square) so that a blurred or misplaced edge
  is counted; 'eyes' (eyes + eyelids) and 'mouth' (lips + mouth interior), dilated the same way.
* `masked_psnr` / `masked_ssim`: PSNR over the masked pixels (all channels), and the mean of `ssim_map`
  over the masked pixels of its valid region; nan where the mask is empty.
* `detail_ratio`: high-frequency energy of the render over that of the truth inside a mask: the 3x3
  Laplacian [[0, 1, 0], [1, -4, 1], [0, 1, 0]] of the luminance (Rec. 601, of the [0, 1] image), energy = sum
  of squares over the masked interior pixels. 1 = as sharp as the truth, < 1 blurred, > 1 noisier.
* Expression readback from the pixels alone (the boxes scale with the eye distance D, measured from the face
  points, so they do not change with the expression): `mouth_opening_score`, the mean relative darkness
  ``clip(1 - Y / Y90, 0, 1)`` (Y90: the box's 90th-percentile luminance, the lit skin) in the box
  `MOUTH_BOX` around the mouth centre, which reaches below it as the jaw opens downwards (the dark mouth
  interior fills it); `eye_opening_score`, the luminance contrast std(Y) / mean(Y) in a square box
  (`EYE_BOX`) at each eye, averaged over the two (open eyes show the bright sclera against the dark iris and
  pupil, closed ones plain lid skin). Smile is not read: its cues (wider, raised mouth corners) move the
  lips by a pixel or two at these resolutions, within the lips' own shading. `r_squared` scores a readback
  against the true parameter over frames (jaw_open; the mean of blink_l and blink_r), and the same readback
  of the ground-truth frames is the ceiling.
* `face_scores`: all of the above per image (`FACE_METRICS`: face PSNR / SSIM, eye and mouth PSNR, detail ratio,
  mouth and eye scores), as `hfagp.eval`'s per_frame.csv columns and the in-training evaluation use them;
  `readback`: the r^2 of the render's and the truth's scores against the true parameters (`READBACK`).
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


# ----------------------------------------------------------------------------------------------------
# Face fidelity.

FACE_PARTS = ("eyes", "eyelids", "brows", "lips", "mouth_interior", "nose")
EYE_PARTS = ("eyes", "eyelids")
MOUTH_PARTS = ("lips", "mouth_interior")
REGION_DILATION = 2        # pixels, each side
# Boxes in units of the eye distance D: (half width, top above the point, bottom below the point). The mouth box
# was chosen among six boxes and three darkness measures on the videos of head-world identities 20-23 (150 frames
# each, 128 px, never the identities the results report): the truth's readback r^2 against jaw_open is 0.91-0.96
# there; a deeper box (0.45, 0.15, 0.75) reaches the chin's shadow when the head pitches down (0.73-0.93).
MOUTH_BOX = (0.30, 0.05, 0.45)
EYE_BOX = (0.22, 0.22, 0.22)
LUMA = (0.299, 0.587, 0.114)


def _unit(images) -> np.ndarray:
    """NHWC images in [-1, 1] -> float64 [0, 1]."""
    images = np.asarray(images, np.float64)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected NHWC rgb images, got shape {images.shape}")
    return (images + 1.0) * 0.5


def luminance(images) -> np.ndarray:
    """Rec. 601 luminance [B, H, W] in [0, 1] of NHWC images in [-1, 1]."""
    return _unit(images) @ np.asarray(LUMA)


def part_mask(part_labels, part_names, parts) -> np.ndarray:
    """bool [B, H, W]: the pixels labelled with any of `parts` (names of `part_names`, index = label value)."""
    missing = [p for p in parts if p not in part_names]
    if missing:
        raise ValueError(f"part labels have no {missing}; they have {list(part_names)}")
    return np.isin(np.asarray(part_labels), [list(part_names).index(p) for p in parts])


def dilate(mask, radius: int) -> np.ndarray:
    """Binary dilation of bool [B, H, W] by a (2 radius + 1)^2 square."""
    out = np.asarray(mask, bool)
    for axis in (1, 2):
        grown = out.copy()
        n = out.shape[axis]
        for k in range(1, min(radius, n - 1) + 1):
            grown[(slice(None),) * axis + (slice(k, None),)] |= out[(slice(None),) * axis + (slice(0, n - k),)]
            grown[(slice(None),) * axis + (slice(0, n - k),)] |= out[(slice(None),) * axis + (slice(k, None),)]
        out = grown
    return out


def convex_fill(mask) -> np.ndarray:
    """bool [B, H, W]: the pixels whose centres lie in the convex hull of each image's True pixel centres."""
    mask = np.asarray(mask, bool)
    out = np.zeros_like(mask)
    rows, cols = np.mgrid[0:mask.shape[1], 0:mask.shape[2]]
    for i, m in enumerate(mask):
        r = np.flatnonzero(m.any(axis=1))
        if len(r) == 0:
            continue
        # The hull of a pixel set is that of each row's two end pixels (Andrew's monotone chain over them).
        left, right = m[r].argmax(axis=1), m.shape[1] - 1 - m[r][:, ::-1].argmax(axis=1)
        points = sorted(set(zip(np.concatenate([left, right]).tolist(), np.concatenate([r, r]).tolist())))
        cross = lambda o, a, b: (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
        chain = []
        for sequence in (points, points[::-1]):
            half = []
            for p in sequence:
                while len(half) >= 2 and cross(half[-2], half[-1], p) <= 0:
                    half.pop()
                half.append(p)
            chain += half[:-1]
        inside = m.copy()
        if len(chain) >= 3:
            inside |= np.all([(b[0] - a[0]) * (rows - a[1]) - (b[1] - a[1]) * (cols - a[0]) >= 0
                              for a, b in zip(chain, chain[1:] + chain[:1])], axis=0)
        out[i] = inside
    return out


def face_regions(part_labels, part_names, dilation: int = REGION_DILATION) -> dict[str, np.ndarray]:
    """{'face', 'eyes', 'mouth'}: bool [B, H, W] regions of part labels [B, H, W] (module docstring)."""
    labels = np.asarray(part_labels)
    if labels.ndim != 3:
        raise ValueError(f"expected part labels [B, H, W], got shape {labels.shape}")
    features = part_mask(labels, part_names, FACE_PARTS)
    between = convex_fill(features) & part_mask(labels, part_names, ("skin",))
    return {"face": dilate(features | between, dilation),
            "eyes": dilate(part_mask(labels, part_names, EYE_PARTS), dilation),
            "mouth": dilate(part_mask(labels, part_names, MOUTH_PARTS), dilation)}


def _check_mask(images: np.ndarray, mask) -> np.ndarray:
    mask = np.asarray(mask, bool)
    if mask.shape != images.shape[:3]:
        raise ValueError(f"mask {mask.shape} does not match images {images.shape}")
    return mask


def masked_psnr(pred, target, mask) -> np.ndarray:
    """PSNR in dB [B] over the masked pixels (all channels) of NHWC images in [-1, 1], data range 1 on their
    [0, 1] versions; +inf where they agree there, nan where the mask is empty."""
    x, y = _unit(pred), _unit(target)
    mask = _check_mask(x, mask)
    count = mask.sum(axis=(1, 2)) * x.shape[-1]
    sq = np.sum(np.square(x - y) * mask[..., None], axis=(1, 2, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, -10.0 * np.log10(sq / np.maximum(count, 1)), np.nan)


def masked_ssim(pred, target, mask) -> np.ndarray:
    """Mean SSIM [B] (`ssim_map`, mean over channels) over the masked pixels of its valid region (the mask
    cropped by `SSIM_RADIUS` at each border); nan where none is left."""
    x = np.asarray(pred, np.float32)
    mask = _check_mask(x, mask)
    r = SSIM_RADIUS
    values = np.asarray(ssim_map(x, target), np.float64).mean(axis=-1)
    inner = mask[:, r:mask.shape[1] - r, r:mask.shape[2] - r]
    count = inner.sum(axis=(1, 2))
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, np.sum(values * inner, axis=(1, 2)) / np.maximum(count, 1), np.nan)


def laplacian_energy(images, mask) -> np.ndarray:
    """Sum of squares [B] of the 3x3 Laplacian of the luminance over the masked pixels (borders excluded)."""
    y = luminance(images)
    mask = _check_mask(np.asarray(images), mask)
    lap = y[:, :-2, 1:-1] + y[:, 2:, 1:-1] + y[:, 1:-1, :-2] + y[:, 1:-1, 2:] - 4.0 * y[:, 1:-1, 1:-1]
    return np.sum(np.square(lap) * mask[:, 1:-1, 1:-1], axis=(1, 2))


def detail_ratio(pred, target, mask) -> np.ndarray:
    """`laplacian_energy` of the render over that of the truth [B]: 1 = as sharp; nan where the truth has none."""
    truth = laplacian_energy(target, mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(truth > 0, laplacian_energy(pred, mask) / np.where(truth > 0, truth, 1.0), np.nan)


def box_mask(shape, centre, eye_distance, box) -> np.ndarray:
    """bool [B, H, W]: pixels whose centres lie in the box ``(half width, above, below)`` (units of the eye
    distance [B]) about the pixel points `centre` [B, 2] (column, row); at least half a pixel each way."""
    b, h, w = shape
    centre = np.asarray(centre, np.float64).reshape(b, 2)
    d = np.asarray(eye_distance, np.float64).reshape(b, 1, 1)
    cols, rows = np.arange(w)[None, None, :], np.arange(h)[:, None][None]
    dx, dy = cols - centre[:, 0, None, None], rows - centre[:, 1, None, None]
    half, above, below = (np.maximum(k * d, 0.5) for k in box)
    return (np.abs(dx) <= half) & (dy >= -above) & (dy <= below)


def _face_geometry(images, face_points):
    y = luminance(images)
    points = np.asarray(face_points, np.float64)
    if points.shape != (y.shape[0], 3, 2):
        raise ValueError(f"expected face points [{y.shape[0]}, 3, 2] (mouth, eye_l, eye_r), got {points.shape}")
    return y, points, np.linalg.norm(points[:, 1] - points[:, 2], axis=-1)


def mouth_opening_score(images, face_points) -> np.ndarray:
    """Mouth opening read from NHWC images in [-1, 1] alone [B]: the mean relative darkness in `MOUTH_BOX`."""
    y, points, d = _face_geometry(images, face_points)
    box = box_mask(y.shape, points[:, 0], d, MOUTH_BOX)
    out = np.empty(len(y))
    for i in range(len(y)):
        v = y[i][box[i]]
        ref = np.percentile(v, 90)
        out[i] = np.mean(np.clip(1.0 - v / ref, 0.0, 1.0)) if ref > 0 else 0.0
    return out


def eye_opening_score(images, face_points) -> np.ndarray:
    """Eye opening read from NHWC images in [-1, 1] alone [B]: luminance std / mean in `EYE_BOX` at each eye,
    averaged over the two."""
    y, points, d = _face_geometry(images, face_points)
    out = np.zeros(len(y))
    for eye in (1, 2):
        box = box_mask(y.shape, points[:, eye], d, EYE_BOX)
        for i in range(len(y)):
            v = y[i][box[i]]
            out[i] += 0.5 * (v.std() / v.mean() if v.mean() > 0 else 0.0)
    return out


def r_squared(score, truth) -> float:
    """Squared Pearson correlation of a readback score [N] with the true parameter [N] (the r^2 of the best
    linear fit): 0 for a constant score, nan for a constant truth or fewer than 2 frames."""
    x, y = np.asarray(score, np.float64), np.asarray(truth, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"expected two [N] arrays, got {x.shape} and {y.shape}")
    if len(x) < 2 or np.ptp(y) == 0:
        return math.nan
    if np.ptp(x) == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1] ** 2)


# Per-image face scores of `face_scores`, in column order.
FACE_METRICS = ("face_psnr", "face_ssim", "eyes_psnr", "mouth_psnr", "detail_ratio", "mouth_score", "eye_score")
# The true parameter each readback score is compared with ('blink': the mean of blink_l and blink_r).
READBACK = {"mouth_score": "jaw_open", "eye_score": "blink"}


def face_scores(pred, target, part_labels, face_points, part_names) -> dict[str, np.ndarray]:
    """`FACE_METRICS` [M] (float64; nan where a region is empty) of images [M, R, R, 3] in [-1, 1], with the
    targets' part labels [M, R, R] and face points [M, 3, 2]."""
    if np.shape(part_labels) != np.shape(pred)[:3]:
        raise ValueError(f"part labels {np.shape(part_labels)} do not match the images {np.shape(pred)} (was the "
                         "world made at another resolution than the generator renders?)")
    regions = face_regions(part_labels, part_names)
    return {"face_psnr": masked_psnr(pred, target, regions["face"]),
            "face_ssim": masked_ssim(pred, target, regions["face"]),
            "eyes_psnr": masked_psnr(pred, target, regions["eyes"]),
            "mouth_psnr": masked_psnr(pred, target, regions["mouth"]),
            "detail_ratio": detail_ratio(pred, target, regions["face"]),
            "mouth_score": mouth_opening_score(pred, face_points),
            "eye_score": eye_opening_score(pred, face_points)}


def readback(pred, target, face_points, truth: dict) -> dict:
    """r^2 of the render's (`pred`) and of the ground truth's (`target`) opening scores against the true
    parameters: images [N, R, R, 3] in [-1, 1] at their own view, face points [N, 3, 2], truth {'jaw_open',
    'blink'} [N]. Returns {'frames', 'jaw_open_r2', 'jaw_open_r2_ceiling', 'blink_r2', 'blink_r2_ceiling'}
    (None where undefined: a constant truth or fewer than 2 frames)."""
    out = {"frames": int(len(pred))}
    for key, score_fn in (("mouth_score", mouth_opening_score), ("eye_score", eye_opening_score)):
        param = np.asarray(truth[READBACK[key]])
        r2, ceiling = (r_squared(score_fn(x, face_points), param) for x in (pred, target))
        out[f"{READBACK[key]}_r2"] = None if np.isnan(r2) else r2
        out[f"{READBACK[key]}_r2_ceiling"] = None if np.isnan(ceiling) else ceiling
    return out


__all__ = ["EYE_BOX", "EYE_PARTS", "FACE_METRICS", "FACE_PARTS", "MOUTH_BOX", "MOUTH_PARTS", "READBACK",
           "REGION_DILATION", "box_mask", "convex_fill", "detail_ratio", "dilate", "eye_opening_score", "face_regions",
           "face_scores", "gaussian_window", "laplacian_energy", "luminance", "make_lpips_metric", "masked_psnr",
           "masked_ssim", "mean_or_nan", "mouth_opening_score", "part_mask", "principal_angles", "psnr",
           "psnr_from_mse", "r_squared", "readback", "ssim", "ssim_map"]
