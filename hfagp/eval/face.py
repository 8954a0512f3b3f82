"""Pictures of the face for `hfagp.eval`: ``face_crops.png``, crops of the face (the box around the mouth and
eye points, `CROP_SCALE` eye distances wide, resized to `CROP_SIZE`), ground truth above each method, frames
sorted by jaw_open, so that a reader sees at a glance whether the mouth moves. The face scores themselves are
`hfagp.metrics.face_scores` / `readback`; a world's annotations `hfagp.datasets.load_face_truth`."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from hfagp_common.images import image_grid, save_png, to_uint8

CROP_SCALE, CROP_SIZE, MAX_CROPS = 2.4, 64, 16
CROPS_FILE = "face_crops.png"


def face_crops(images: np.ndarray, face_points: np.ndarray) -> np.ndarray:
    """Square crops [N, CROP_SIZE, CROP_SIZE, 3] (nearest pixel, edges repeated) of images [N, R, R, 3] about
    the centre of their face points [N, 3, 2], `CROP_SCALE` eye distances wide."""
    n, r = images.shape[:2]
    centre = face_points.mean(axis=1)
    half = 0.5 * CROP_SCALE * np.linalg.norm(face_points[:, 1] - face_points[:, 2], axis=-1)
    steps = (np.arange(CROP_SIZE) + 0.5) / CROP_SIZE * 2.0 - 1.0
    cols = np.clip(np.round(centre[:, 0, None] + half[:, None] * steps), 0, r - 1).astype(int)
    rows = np.clip(np.round(centre[:, 1, None] + half[:, None] * steps), 0, r - 1).astype(int)
    return np.stack([images[i][rows[i]][:, cols[i]] for i in range(n)])


def crop_strip(truth_images: np.ndarray, method_images: Sequence[np.ndarray], face_points: np.ndarray,
               jaw_open: np.ndarray) -> np.ndarray:
    """uint8 grid: rows = ground truth, then each method (images [N, R, R, 3] in [-1, 1]); columns = up to
    `MAX_CROPS` frames spread over the order of jaw_open [N]."""
    order = np.argsort(jaw_open, kind="stable")
    order = order[np.unique(np.round(np.linspace(0, len(order) - 1, min(MAX_CROPS, len(order)))).astype(int))]
    rows = [face_crops(x[order], face_points[order]) for x in (truth_images, *method_images)]
    return image_grid(to_uint8(np.concatenate(rows)), columns=len(order))


def save_face_crops(path: Path, truth_images: np.ndarray, method_images: Sequence[np.ndarray],
                    face_points: np.ndarray, jaw_open: np.ndarray) -> None:
    """``face_crops.png`` (`crop_strip`)."""
    save_png(path, crop_strip(truth_images, method_images, face_points, jaw_open))


__all__ = ["CROPS_FILE", "CROP_SCALE", "CROP_SIZE", "MAX_CROPS", "crop_strip", "face_crops", "save_face_crops"]
