"""Who is in each shot: a per-shot face signature and a grouping of shots into persons (numpy only).

A shot's signature (`shot_signature`) has three parts, all on the upper face (the mesh vertices above the
nose base, `UPPER_FACE`: eyes, brows, nose, cheeks, forehead, which speech and expressions move least) and
all made mirror-symmetric (each vertex averaged with its mirror vertex, so that a face turned left and the
same face turned right agree more):

* ``shape`` [K, 3]: the median over the shot's frames of the pose-normalised 3D mesh
  (`expression.normalise_pose`: canonical cm, head pose and scale removed): face proportions.
* ``luminance`` [K]: the median over frames of each vertex's brightness in the aligned crop over the face's
  mean brightness: the face's light and dark pattern (brows, eyes, nostrils), independent of exposure.
* ``chroma`` [K, 2]: the median over frames of each vertex's chromaticity (r, g) = (R, G) / (R + G + B): skin
  and lip colour, independent of exposure (zero information for a black-and-white film).

`signature_distance` is the mean of the three parts' distances, each divided by its `SCALES` entry (the
geometric midpoint between the largest same-photo and the smallest different-photo distance of that part on
13 shots of five real photos). No part separates the photos alone (two of them are black and white, and
mirroring or exposure moves the shape and luminance parts), their mean does: on random shots of the five
photos (`avatar_data.prepare.evaluate.person_separation`: framing, head motion, exposure 0.6-1.3, mirroring)
same-photo pairs stayed below 1.28 and different-photo pairs above 2.18 (three seeds, 58 shots, docs/prepare.md),
so `SAME_PERSON` is 1.6.

`group_shots` assigns persons: shots in decreasing order of tracked frames, each joins the person with the
nearest signature (average over that person's shots) if nearer than `SAME_PERSON`, else starts a new person; persons
are then numbered by their frame count, 0 = most frames.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from avatar_data.prepare import canonical_face, expression

# Mirror vertex of each canonical-face vertex (the canonical face is mirror-symmetric in x).
_V = canonical_face.VERTICES
MIRROR = np.argmin(((_V[:, None] * np.array([-1.0, 1.0, 1.0]) - _V[None]) ** 2).sum(-1), axis=1)
# Vertices above the nose base (vertex 2, subnasale), y up on the canonical face.
UPPER_FACE = np.flatnonzero(_V[:, 1] > _V[2, 1])
SCALES = {"shape": 0.15, "luminance": 0.078, "chroma": 0.0144}
SAME_PERSON = 1.6
PATCH = 2   # colours are the mean of a (2 * PATCH + 1)^2 pixel patch around each vertex


def vertex_colours(crop: np.ndarray, landmarks_crop: np.ndarray) -> np.ndarray:
    """float32 [468, 3] RGB (0-255): the mean colour of a small patch of the crop (uint8 [R, R, 3]) around each
    mesh vertex (``landmarks_crop`` [>=468, >=2] crop pixels, corner origin)."""
    r = crop.shape[0]
    xy = np.clip(np.floor(np.asarray(landmarks_crop)[:468, :2]).astype(np.int64), PATCH, r - 1 - PATCH)
    offsets = np.arange(-PATCH, PATCH + 1)
    ys = xy[:, 1, None, None] + offsets[None, :, None]
    xs = xy[:, 0, None, None] + offsets[None, None, :]
    return crop[ys, xs].reshape(468, -1, 3).mean(axis=1).astype(np.float32)


def _symmetric(values: np.ndarray, flip_x: bool = False) -> np.ndarray:
    mirrored = np.array(values[MIRROR], np.float64)
    if flip_x:
        mirrored[..., 0] *= -1.0
    return (values + mirrored) / 2.0


def shot_signature(landmarks: np.ndarray, colours: np.ndarray) -> dict:
    """Signature of one shot from its tracked frames: ``landmarks`` [n, >=468, 3] (source pixels) and
    ``colours`` [n, 468, 3] (`vertex_colours`), n >= 1. Returns {'shape': [K, 3], 'luminance': [K],
    'chroma': [K, 2]} over the K `UPPER_FACE` vertices."""
    shapes = np.median(expression.normalise_pose(landmarks), axis=0)
    c = np.asarray(colours, np.float64) + 1.0
    total = c.sum(axis=-1)
    lum = np.median(total / total[:, UPPER_FACE].mean(axis=1, keepdims=True), axis=0)
    chroma = np.median(c[..., :2] / total[..., None], axis=0)
    return {"shape": _symmetric(shapes, flip_x=True)[UPPER_FACE], "luminance": _symmetric(lum)[UPPER_FACE],
            "chroma": _symmetric(chroma)[UPPER_FACE]}


def part_distances(a: dict, b: dict) -> dict:
    """Unscaled distances of two signatures: shape RMS vertex distance (cm), luminance and chroma mean absolute
    differences."""
    return {"shape": float(np.sqrt(((a["shape"] - b["shape"]) ** 2).sum(axis=-1).mean())),
            "luminance": float(np.abs(a["luminance"] - b["luminance"]).mean()),
            "chroma": float(np.abs(a["chroma"] - b["chroma"]).mean())}


def signature_distance(a: dict, b: dict) -> float:
    """Mean of the parts' distances over their `SCALES`: below `SAME_PERSON` means the same person."""
    d = part_distances(a, b)
    return float(np.mean([d[k] / SCALES[k] for k in SCALES]))


def group_shots(signatures: Sequence[Optional[dict]], frames: Sequence[int]) -> list[Optional[int]]:
    """Person number per shot (None for a shot without a signature), persons numbered by their total
    ``frames`` (tracked frames per shot), 0 = most; ties go to the person seen first."""
    order = sorted((i for i, s in enumerate(signatures) if s is not None), key=lambda i: (-frames[i], i))
    groups: list[list[int]] = []
    for i in order:
        best, best_d = None, SAME_PERSON
        for g, members in enumerate(groups):
            d = float(np.mean([signature_distance(signatures[i], signatures[j]) for j in members]))
            if d < best_d:
                best, best_d = g, d
        if best is None:
            groups.append([i])
        else:
            groups[best].append(i)
    ranked = sorted(groups, key=lambda m: (-sum(frames[i] for i in m), min(m)))
    person: list[Optional[int]] = [None] * len(signatures)
    for p, members in enumerate(ranked):
        for i in members:
            person[i] = p
    return person
