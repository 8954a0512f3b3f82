"""Writers for the three dataset layouts (the inverse of `avatar_data.readers`).

Used by the tests and by synthetic-data generators: give frames (uint8 [T, H, W, 3]) and EG3D labels
([T, 25], see `avatar_data.cameras`) and get a folder that the matching reader turns back into the same
frames and labels (up to float32 rounding, and JPEG loss if a JPEG extension is chosen).
"""

from __future__ import annotations

import json
import math
import os
from typing import Mapping, Optional, Sequence

import numpy as np
from PIL import Image

from avatar_data import cameras


def _check_frames_labels(frames: np.ndarray, labels: np.ndarray) -> tuple[int, int, int]:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if np.shape(labels) != (frames.shape[0], cameras.LABEL_DIM):
        raise ValueError(f"labels must be [{frames.shape[0]}, 25], got {np.shape(labels)}")
    return frames.shape[:3]


def _save_image(path: str, frame: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(frame, np.uint8)).save(path)


def _split_ranges(total: int, split_sizes: Optional[Mapping[str, int]], default: str) -> list[tuple[str, int, int]]:
    sizes = dict(split_sizes) if split_sizes is not None else {default: total}
    if sum(sizes.values()) != total:
        raise ValueError(f"split sizes {sizes} do not add up to {total} frames")
    out, start = [], 0
    for name, n in sizes.items():
        out.append((name, start, start + n))
        start += n
    return out


def _shared_pixel_intrinsics(labels: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    _, k = cameras.split_eg3d_label(np.asarray(labels, np.float64))
    if not np.allclose(k, k[:1], atol=1e-7):
        raise ValueError("these formats store one set of intrinsics per file; the labels' intrinsics differ")
    return cameras.normalized_intrinsics_to_pixels(k[0], width, height)


def _opengl_matrices(labels: np.ndarray) -> np.ndarray:
    c2w, _ = cameras.split_eg3d_label(np.asarray(labels, np.float64))
    return cameras.opencv_to_opengl_cam2world(c2w)


def _write_json(path: str, data) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


def write_eg3d_folder(
    out_dir: str,
    frames_uint8: np.ndarray,
    labels: np.ndarray,
    names: Optional[Sequence[str]] = None,
    *,
    labels_filename: str = "dataset.json",
    image_ext: Optional[str] = None,
) -> str:
    """Write images + ``{"labels": [[name, [25 floats]], ...]}``; returns the labels file path.

    names: label keys (relative paths, default ``img{t:08d}.png``). image_ext: if set, each image is saved as
    the name's stem + image_ext while the label keeps its name (HFA-GP's ``.jpg`` frames keyed by ``.png``).
    """
    t_len, _, _ = _check_frames_labels(frames_uint8, labels)
    names = list(names) if names is not None else [f"img{t:08d}.png" for t in range(t_len)]
    if len(names) != t_len:
        raise ValueError(f"{len(names)} names for {t_len} frames")
    for name, frame in zip(names, frames_uint8):
        file_name = name if image_ext is None else os.path.splitext(name)[0] + image_ext
        _save_image(os.path.join(out_dir, file_name), frame)
    path = os.path.join(out_dir, labels_filename)
    _write_json(path, {"labels": [[n, [float(v) for v in lab]] for n, lab in zip(names, np.asarray(labels))]})
    return path


def write_nerface_folder(
    out_dir: str,
    frames_uint8: np.ndarray,
    labels: np.ndarray,
    expressions: np.ndarray,
    *,
    split_sizes: Optional[Mapping[str, int]] = None,
) -> list[str]:
    """Write a NeRFACE folder: ``<split>/f_{t:04d}.png`` + ``transforms_<split>.json``; returns the JSON paths.

    Frames are split consecutively by ``split_sizes`` (ordered {split: count}, default all in 'train').
    Cameras become OpenGL ``transform_matrix``; the (shared) intrinsics become NeRFACE's
    ``[fx, fy, cx, cy]`` with cx, cy fractions, i.e. ``cx = cx_opencv_pixels / W``.
    """
    t_len, height, width = _check_frames_labels(frames_uint8, labels)
    if np.shape(expressions)[0] != t_len:
        raise ValueError(f"expressions must have {t_len} rows, got {np.shape(expressions)}")
    fx, fy, cx, cy = _shared_pixel_intrinsics(labels, width, height)
    gl = _opengl_matrices(labels)
    paths = []
    for split, start, stop in _split_ranges(t_len, split_sizes, "train"):
        frames = []
        for t in range(start, stop):
            rel = f"./{split}/f_{t:04d}"
            _save_image(os.path.join(out_dir, rel + ".png"), frames_uint8[t])
            frames.append({
                "file_path": rel,
                "transform_matrix": gl[t].tolist(),
                "expression": [float(v) for v in expressions[t]],
            })
        meta = {
            "camera_angle_x": 2.0 * math.atan(width / (2.0 * fx)),
            "intrinsics": [fx, fy, cx / width, cy / height],
            "frames": frames,
        }
        paths.append(os.path.join(out_dir, f"transforms_{split}.json"))
        _write_json(paths[-1], meta)
    return paths


def write_adnerf_folder(
    out_dir: str,
    frames_uint8: np.ndarray,
    labels: np.ndarray,
    audio: np.ndarray,
    *,
    aud_ids: Optional[Sequence[int]] = None,
    img_ids: Optional[Sequence[int]] = None,
    split_sizes: Optional[Mapping[str, int]] = None,
    image_dir: str = "head_imgs",
    image_ext: str = ".jpg",
) -> list[str]:
    """Write an AD-NeRF folder: ``<image_dir>/<img_id><image_ext>``, ``aud.npy`` and ``transforms_<split>.json``.

    audio: [N, 16, 29] saved as-is to aud.npy. aud_ids / img_ids default to 0..T-1. Frames are split
    consecutively by ``split_sizes`` (default all in 'train'). Needs fx == fy (AD-NeRF has one focal_len).
    Returns the JSON paths.
    """
    t_len, height, width = _check_frames_labels(frames_uint8, labels)
    aud_ids = list(range(t_len)) if aud_ids is None else [int(a) for a in aud_ids]
    img_ids = list(range(t_len)) if img_ids is None else [int(i) for i in img_ids]
    if len(aud_ids) != t_len or len(img_ids) != t_len:
        raise ValueError(f"need {t_len} aud_ids and img_ids, got {len(aud_ids)} and {len(img_ids)}")
    fx, fy, cx, cy = _shared_pixel_intrinsics(labels, width, height)
    if not math.isclose(fx, fy, rel_tol=1e-6):
        raise ValueError(f"AD-NeRF stores one focal length, got fx={fx}, fy={fy}")
    gl = _opengl_matrices(labels)
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "aud.npy"), np.asarray(audio))
    for t in range(t_len):
        _save_image(os.path.join(out_dir, image_dir, f"{img_ids[t]}{image_ext}"), frames_uint8[t])
    paths = []
    for split, start, stop in _split_ranges(t_len, split_sizes, "train"):
        meta = {
            "focal_len": fx,
            "cx": cx,
            "cy": cy,
            "frames": [{"img_id": img_ids[t], "aud_id": aud_ids[t], "transform_matrix": gl[t].tolist()}
                       for t in range(start, stop)],
        }
        paths.append(os.path.join(out_dir, f"transforms_{split}.json"))
        _write_json(paths[-1], meta)
    return paths
