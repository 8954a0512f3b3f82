"""Expression codes from face mesh landmarks: pose-normalised landmark PCA.

Not FLAME or BFM coefficients: these are the coordinates of each frame's pose-free landmark displacement
(from the video's mean face) along the video's own principal directions. They carry the same kind of
information as a 3DMM expression vector (mouth, eyes, brows), but the basis is different for each video
and so are the meanings of the coefficients.

1. `normalise_pose`: a weighted similarity (Umeyama) fit of each frame's 3D landmarks to the canonical face
   on MediaPipe's Procrustes landmarks (forehead, nose, eye corners, cheekbones: the rigid part of the face),
   applied to all 468 points -> shapes in canonical cm with head pose and scale removed.
2. `fit_pca` on the training frames: mean shape and the top principal directions (unit vectors over the
   flattened [468 * 3] shape, deterministic signs).
3. `project`: coefficients [T, dim] = (shape - mean) . basis, in cm on the canonical face's scale. With
   fewer training frames than ``dim`` the remaining coefficients are zero.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from avatar_data.prepare import canonical_face
from avatar_data.prepare.pose import umeyama

DEFAULT_DIM = 76
NUM_POINTS = 468


def normalise_pose(landmarks: np.ndarray) -> np.ndarray:
    """[T, >=468, 3] landmarks (any similarity frame, e.g. source pixels, y down) -> [T, 468, 3] canonical cm."""
    lm = np.asarray(landmarks, np.float64)[:, :NUM_POINTS]
    ids = canonical_face.PROCRUSTES_IDS
    w = canonical_face.PROCRUSTES_WEIGHTS
    out = np.empty_like(lm)
    for t, pts in enumerate(lm):
        s, r, tr = umeyama(pts[ids], canonical_face.VERTICES[ids], w)
        out[t] = s * pts @ r.T + tr
    return out


@dataclasses.dataclass
class ExpressionPCA:
    """mean: [468, 3] cm; basis: [k, 468, 3] orthonormal rows (k <= dim); singular_values: [k];
    explained_variance_ratio: [k] of the training frames' total variance."""

    mean: np.ndarray
    basis: np.ndarray
    singular_values: np.ndarray
    explained_variance_ratio: np.ndarray
    dim: int


def fit_pca(shapes: np.ndarray, dim: int = DEFAULT_DIM) -> ExpressionPCA:
    """PCA of pose-normalised shapes [T, 468, 3] keeping at most ``dim`` non-degenerate directions.

    Eigen-decomposition of the smaller Gram matrix (T x T or 1404 x 1404) in float64.
    """
    x = np.asarray(shapes, np.float64)
    t = x.shape[0]
    mean = x.mean(axis=0)
    centred = (x - mean).reshape(t, -1)
    if t <= centred.shape[1]:
        evals, u = np.linalg.eigh(centred @ centred.T)
        evals, u = evals[::-1], u[:, ::-1]
        sv = np.sqrt(np.clip(evals, 0.0, None))
        good = sv > 1e-6 * max(sv.max(initial=0.0), 1e-30)   # Gram eigenvalues carry ~1e-16 relative noise
        vt = (u[:, good].T @ centred) / sv[good][:, None]
        sv = sv[good]
    else:
        evals, v = np.linalg.eigh(centred.T @ centred)
        evals, v = evals[::-1], v[:, ::-1]
        sv = np.sqrt(np.clip(evals, 0.0, None))
        good = sv > 1e-6 * max(sv.max(initial=0.0), 1e-30)   # Gram eigenvalues carry ~1e-16 relative noise
        vt, sv = v[:, good].T, sv[good]
    total = float((sv ** 2).sum())
    keep = int(min(dim, len(sv)))
    vt = vt[:keep]
    # Deterministic signs: the largest-magnitude entry of each direction is positive.
    signs = np.sign(vt[np.arange(keep), np.argmax(np.abs(vt), axis=1)])
    vt = vt * signs[:, None]
    ratio = (sv[:keep] ** 2) / total if total > 0 else np.zeros(keep)
    return ExpressionPCA(mean=mean, basis=vt.reshape(keep, NUM_POINTS, 3), singular_values=sv[:keep],
                         explained_variance_ratio=ratio, dim=int(dim))


def project(shapes: np.ndarray, pca: ExpressionPCA) -> np.ndarray:
    """Coefficients float32 [T, dim] of shapes [T, 468, 3] (zeros beyond the fitted directions)."""
    x = (np.asarray(shapes, np.float64) - pca.mean).reshape(len(shapes), -1)
    out = np.zeros((len(shapes), pca.dim), np.float64)
    k = pca.basis.shape[0]
    out[:, :k] = x @ pca.basis.reshape(k, -1).T
    return out.astype(np.float32)
