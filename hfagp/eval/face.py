"""Face-fidelity scores of an evaluation on a head world with part labels (`hfagp.metrics`' face metrics).

Per image (`FACE_METRICS`, the per_frame.csv columns): PSNR and SSIM in the face region, PSNR in the eye and
mouth regions, the detail ratio in the face region, and the mouth- and eye-opening scores read from the
render alone. Per method (summary.json): the readback r^2 of those scores against the world's jaw_open and
blink (the mean of blink_l and blink_r) over the frames read back, beside the same r^2 of the ground-truth
frames (the ceiling). ``face_crops.png``: crops of the face (the box around the mouth and eye points,
`CROP_SCALE` eye distances wide, resized to `CROP_SIZE`), ground truth above each method, frames sorted by
jaw_open.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from hfagp import metrics
from hfagp_common.images import image_grid, save_png, to_uint8

FACE_METRICS = ("face_psnr", "face_ssim", "eyes_psnr", "mouth_psnr", "detail_ratio", "mouth_score", "eye_score")
READBACK = {"mouth_score": "jaw_open", "eye_score": "blink"}
CROP_SCALE, CROP_SIZE, MAX_CROPS = 2.4, 64, 16
CROPS_FILE = "face_crops.png"


@dataclasses.dataclass
class FaceTruth:
    """A head world's face annotations (`avatar_data.worlds.layout.read_face_truth`) and readback targets.

    part_labels uint8 [T, R, R] / face_points float32 [T, 3, 2] per frame; novel_* per novel view, located by
    (frame, view) in `novel_position`; truth: {'jaw_open', 'blink'} float64 [T]."""

    part_names: list
    part_labels: np.ndarray
    face_points: np.ndarray
    novel_part_labels: np.ndarray
    novel_face_points: np.ndarray
    novel_position: dict
    truth: dict

    def novel(self, frame_index: np.ndarray, view: int) -> tuple[np.ndarray, np.ndarray]:
        """(part labels [N, R, R], face points [N, 3, 2]) of `frame_index` [N] at novel view `view`."""
        at = [self.novel_position[(int(f), view)] for f in frame_index]
        return self.novel_part_labels[at], self.novel_face_points[at]


def load_face_truth(world: Optional[Path]) -> tuple[Optional[FaceTruth], Optional[str]]:
    """(FaceTruth, None), or (None, why the world has none)."""
    from avatar_data.worlds import layout

    if world is None:
        return None, "not a world with ground truth: no part labels"
    try:
        gt = layout.read_face_truth(world)
    except layout.NoFaceTruth as e:
        return None, str(e)
    names = gt["expression_names"]
    e = np.asarray(gt["expression"], np.float64)
    truth = {"jaw_open": e[:, names.index("jaw_open")],
             "blink": 0.5 * (e[:, names.index("blink_l")] + e[:, names.index("blink_r")])}
    position = {(int(f), int(v)): i for i, (f, v) in enumerate(zip(gt["novel_frame_index"], gt["novel_view_index"]))}
    return FaceTruth(gt["part_names"], gt["part_labels"], gt["face_points"], gt["novel_part_labels"],
                     gt["novel_face_points"], position, truth), None


def face_scores(pred: np.ndarray, target: np.ndarray, part_labels: np.ndarray, face_points: np.ndarray,
                part_names: Sequence[str]) -> dict[str, np.ndarray]:
    """`FACE_METRICS` [M] (float64; nan where a region is empty) of images [M, R, R, 3] in [-1, 1]."""
    if part_labels.shape != pred.shape[:3]:
        raise ValueError(f"part labels {part_labels.shape} do not match the images {pred.shape} (was the world "
                         "made at another resolution than the generator renders?)")
    regions = metrics.face_regions(part_labels, part_names)
    return {"face_psnr": metrics.masked_psnr(pred, target, regions["face"]),
            "face_ssim": metrics.masked_ssim(pred, target, regions["face"]),
            "eyes_psnr": metrics.masked_psnr(pred, target, regions["eyes"]),
            "mouth_psnr": metrics.masked_psnr(pred, target, regions["mouth"]),
            "detail_ratio": metrics.detail_ratio(pred, target, regions["face"]),
            "mouth_score": metrics.mouth_opening_score(pred, face_points),
            "eye_score": metrics.eye_opening_score(pred, face_points)}


def readback(pred: np.ndarray, target: np.ndarray, face_points: np.ndarray, truth: dict,
             frame_index: np.ndarray) -> dict:
    """r^2 of the render's and of the ground truth's opening scores against the true parameters of
    `frame_index` [N] (images [N, R, R, 3] in [-1, 1], each at its own view)."""
    out = {"frames": int(len(frame_index))}
    for key, score_fn in (("mouth_score", metrics.mouth_opening_score), ("eye_score", metrics.eye_opening_score)):
        param = truth[READBACK[key]][frame_index]
        r2, ceiling = (metrics.r_squared(score_fn(x, face_points), param) for x in (pred, target))
        out[f"{READBACK[key]}_r2"] = None if np.isnan(r2) else r2
        out[f"{READBACK[key]}_r2_ceiling"] = None if np.isnan(ceiling) else ceiling
    return out


def face_crops(images: np.ndarray, face_points: np.ndarray) -> np.ndarray:
    """Square crops [N, CROP_SIZE, CROP_SIZE, 3] (nearest pixel, edges repeated) of images [N, R, R, 3] about
    the centre of their face points, `CROP_SCALE` eye distances wide."""
    n, r = images.shape[:2]
    centre = face_points.mean(axis=1)
    half = 0.5 * CROP_SCALE * np.linalg.norm(face_points[:, 1] - face_points[:, 2], axis=-1)
    steps = (np.arange(CROP_SIZE) + 0.5) / CROP_SIZE * 2.0 - 1.0
    cols = np.clip(np.round(centre[:, 0, None] + half[:, None] * steps), 0, r - 1).astype(int)
    rows = np.clip(np.round(centre[:, 1, None] + half[:, None] * steps), 0, r - 1).astype(int)
    return np.stack([images[i][rows[i]][:, cols[i]] for i in range(n)])


def save_face_crops(path: Path, truth_images: np.ndarray, method_images: Sequence[np.ndarray],
                    face_points: np.ndarray, jaw_open: np.ndarray) -> None:
    """``face_crops.png``: rows = ground truth, then each method; columns = up to `MAX_CROPS` frames spread
    over the order of jaw_open [N]."""
    order = np.argsort(jaw_open, kind="stable")
    order = order[np.unique(np.round(np.linspace(0, len(order) - 1, min(MAX_CROPS, len(order)))).astype(int))]
    rows = [face_crops(x[order], face_points[order]) for x in (truth_images, *method_images)]
    save_png(path, image_grid(to_uint8(np.concatenate(rows)), columns=len(order)))


__all__ = ["CROPS_FILE", "FACE_METRICS", "FaceTruth", "face_crops", "face_scores", "load_face_truth", "readback",
           "save_face_crops"]
