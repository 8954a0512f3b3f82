"""The NeRFACE layout: ``transforms_{split}.json`` with per-frame ``file_path`` (without extension; ``.png`` is
appended), ``transform_matrix`` (OpenGL cam2world) and ``expression``, and the intrinsics as
``intrinsics = [fx, fy, cx, cy]`` (pixels, cx/cy as fractions), ``focal_len`` (+ optional ``cx``, ``cy`` in
pixels) or ``camera_angle_x``. Time order is the JSON order, the splits concatenated in the order given.

The transforms files, their OpenGL cameras and one set of intrinsics per file are also AD-NeRF's
(`avatar_data.formats.adnerf` reads and writes them with the helpers here). The layout carries expressions.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Optional, Sequence

import numpy as np

from avatar_data import cameras
from avatar_data.formats.common import (
    EXPRESSION_DIM,
    IMAGE_EXTENSIONS,
    DatasetError,
    FeatureSpec,
    Format,
    VideoClip,
    check_camera,
    check_distinct,
    check_frames_labels,
    float_vector,
    image_size,
    load_json,
    resolve_image,
    save_image,
    write_json,
)
from avatar_data.formats.eg3d import LabelsArg, labels_by_stem, labels_file_for


def nerface_intrinsics(meta: dict, height: int, width: int, path: str) -> tuple[np.ndarray, str]:
    """Normalised intrinsics [3,3] of one NeRFACE transforms file and a note on where they came from."""
    if meta.get("intrinsics"):
        k = float_vector(meta["intrinsics"], 4, "'intrinsics' [fx, fy, cx, cy]", path)
        fx, fy, cx, cy = k
        if fx <= 0 or fy <= 0:
            raise DatasetError(f"{path}: intrinsics has non-positive focal length ({fx}, {fy}); "
                               "a mirrored camera is not supported")
        if not (0.0 < cx < 1.0 and 0.0 < cy < 1.0):
            raise DatasetError(f"{path}: intrinsics cx, cy = ({cx}, {cy}) must be fractions of the image "
                               "size in (0, 1) (NeRFACE convention)")
        # NeRFACE rays: x = (i - W*cx)/fx for integer pixel index i -> OpenCV principal point W*cx.
        return cameras.focal_pixels_to_normalized_intrinsics((fx, fy), width, height, width * cx, height * cy), \
            "intrinsics [fx, fy, cx*W, cy*H]"
    if meta.get("focal_len") is not None:
        f = float_vector([meta["focal_len"]], 1, "'focal_len'", path)[0]
        cx = float(meta["cx"]) if meta.get("cx") is not None else None
        cy = float(meta["cy"]) if meta.get("cy") is not None else None
        return cameras.focal_pixels_to_normalized_intrinsics(f, width, height, cx, cy), "focal_len (pixels)"
    if meta.get("camera_angle_x") is not None:
        angle = float_vector([meta["camera_angle_x"]], 1, "'camera_angle_x'", path)[0]
        f = 0.5 * width / np.tan(0.5 * angle)
        # NeRFACE's default intrinsics are [f, f, 0.5, 0.5]: principal point at pixel W/2 (integer indices).
        return cameras.focal_pixels_to_normalized_intrinsics(f, width, height, width / 2, height / 2), \
            "camera_angle_x"
    raise DatasetError(f"{path}: no camera intrinsics: needs 'intrinsics', 'focal_len' or 'camera_angle_x'")


def opengl_camera(frame: dict, where: str) -> np.ndarray:
    """A frame's transform_matrix (4x4, or 3x4 without the last row) as float64 [4, 4]."""
    if "transform_matrix" not in frame:
        raise DatasetError(f"{where}: no 'transform_matrix'")
    try:
        m = np.asarray(frame["transform_matrix"], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{where}: transform_matrix is not a 4x4 matrix of numbers ({e})") from e
    if m.shape == (3, 4):
        m = np.concatenate([m, [[0.0, 0.0, 0.0, 1.0]]])
    if m.shape != (4, 4):
        raise DatasetError(f"{where}: transform_matrix has shape {m.shape}, expected (4, 4)")
    if not np.all(np.isfinite(m)):
        raise DatasetError(f"{where}: transform_matrix has non-finite values (NaN/inf)")
    return m


def transforms_frames(folder: str, split: str) -> tuple[str, dict, list]:
    path = os.path.join(folder, f"transforms_{split}.json")
    meta = load_json(path)
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not isinstance(frames, list) or not frames:
        raise DatasetError(f"{path}: expected an object with a non-empty 'frames' list")
    return path, meta, frames


def transforms_splits(folder: str, splits: Sequence[str], eg3d_labels: LabelsArg):
    """Per split, in order: (split, transforms file path, its JSON, its frames, the split's EG3D labels file or
    None, {stem: (name, label)} of that file or None), for the readers of transforms-file layouts."""
    for split in splits:
        json_path, meta, frames = transforms_frames(folder, split)
        lab_file = labels_file_for(eg3d_labels, split)
        yield split, json_path, meta, frames, lab_file, (labels_by_stem(lab_file) if lab_file else None)


def finish_cameras(
    cam2world_gl: list[np.ndarray],
    intrinsics: list[np.ndarray],
    where: list[str],
    normalization: Optional[cameras.CameraNormalization],
) -> tuple[np.ndarray, dict]:
    c2w = cameras.opengl_to_opencv_cam2world(np.stack(cam2world_gl))
    for m, k, w in zip(c2w, intrinsics, where):
        check_camera(m, k, w)
    info = {}
    if normalization is not None:
        try:
            c2w, info = cameras.normalize_cameras(c2w, normalization)
        except ValueError as e:
            raise DatasetError(f"camera normalisation of {where[0]} ... {where[-1]}: {e}") from e
    return cameras.eg3d_label(c2w, np.stack(intrinsics)), info


def clip_labels(
    eg3d_labels: LabelsArg,
    labels_eg3d: list[np.ndarray],
    cam2world_gl: list[np.ndarray],
    intrinsics: list[np.ndarray],
    where: list[str],
    normalization: Optional[cameras.CameraNormalization],
) -> tuple[np.ndarray, dict]:
    """A transforms-file clip's labels float32 [T, 25] and the camera normalisation's record: the cameras of the
    EG3D labels files when `eg3d_labels` names them, else the transform_matrix cameras (`finish_cameras`)."""
    if eg3d_labels is not None:
        return np.stack(labels_eg3d).astype(np.float32), {}
    return finish_cameras(cam2world_gl, intrinsics, where, normalization)


def read_nerface_folder(
    folder: str,
    *,
    splits: Sequence[str] = ("train", "test"),
    eg3d_labels: LabelsArg = None,
    normalization: Optional[cameras.CameraNormalization] = None,
    expression_dim: int = EXPRESSION_DIM,
) -> VideoClip:
    """NeRFACE layout -> VideoClip with expressions [T, expression_dim].

    splits: transforms files to read, concatenated in this order (their frames must be distinct).
    eg3d_labels: optional labels file (or {split: file}) of EG3D cameras, e.g. HFA-GP's
      ``<split>/cropped_images/test.json``; then frames and cameras come from that folder (matched by the
      file_path stem) and only the expressions from the transforms file.
    normalization: optional `cameras.CameraNormalization` for the converted transform_matrix cameras; off by
      default because the tracker's world scale/centre/orientation is not known here.
    """
    folder = os.path.abspath(folder)
    if eg3d_labels is not None and normalization is not None:
        raise DatasetError("normalization applies to transform_matrix cameras, not to eg3d_labels")
    paths, names, expressions, labels_eg3d = [], [], [], []
    gl, ks, wheres = [], [], []
    split_sizes, notes, size_hw = {}, {}, None
    for split, json_path, meta, frames, lab_file, by_stem in transforms_splits(folder, splits, eg3d_labels):
        split_k = None
        for i, frame in enumerate(frames):
            where = f"{json_path}: frames[{i}]"
            if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
                raise DatasetError(f"{where}: no 'file_path'")
            rel = frame["file_path"]
            where = f"{where} ('{rel}')"
            if "expression" not in frame:
                raise DatasetError(f"{where}: no 'expression'")
            expressions.append(float_vector(frame["expression"], expression_dim, "expression", where))
            stem = os.path.basename(rel)
            if os.path.splitext(stem)[1].lower() in IMAGE_EXTENSIONS:
                stem = os.path.splitext(stem)[0]
            if by_stem is not None:
                if stem not in by_stem:
                    raise DatasetError(f"{where}: no label for '{stem}' in {lab_file}")
                name, label = by_stem[stem]
                paths.append(resolve_image(os.path.dirname(lab_file), name, f"{lab_file} ('{name}')"))
                labels_eg3d.append(label)
            else:
                name = rel if os.path.splitext(rel)[1].lower() in IMAGE_EXTENSIONS else rel + ".png"
                paths.append(resolve_image(folder, os.path.normpath(name), where))
                if size_hw is None:
                    size_hw = image_size(paths[-1], where)
                if split_k is None:
                    split_k, notes[split] = nerface_intrinsics(meta, *size_hw, json_path)
                gl.append(opengl_camera(frame, where))
                ks.append(split_k)
                wheres.append(where)
            names.append(f"{split}/{stem}")
        split_sizes[split] = len(frames)
    check_distinct(paths, names, folder)
    labels, info = clip_labels(eg3d_labels, labels_eg3d, gl, ks, wheres, normalization)
    return VideoClip(
        source_format="nerface",
        root=folder,
        labels=labels,
        names=tuple(names),
        frame_paths=tuple(paths),
        expressions=np.stack(expressions).astype(np.float32),
        image_size=size_hw,
        metadata={
            "source_splits": dict(split_sizes),
            "camera_source": "eg3d_labels" if eg3d_labels is not None else "transform_matrix",
            "intrinsics_source": notes,
            "normalization": info,
        },
    )


def split_ranges(total: int, split_sizes: Optional[Mapping[str, int]], default: str) -> list[tuple[str, int, int]]:
    sizes = dict(split_sizes) if split_sizes is not None else {default: total}
    if sum(sizes.values()) != total:
        raise ValueError(f"split sizes {sizes} do not add up to {total} frames")
    out, start = [], 0
    for name, n in sizes.items():
        out.append((name, start, start + n))
        start += n
    return out


def shared_pixel_intrinsics(labels: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    _, k = cameras.split_eg3d_label(np.asarray(labels, np.float64))
    if not np.allclose(k, k[:1], atol=1e-7):
        raise ValueError("these formats store one set of intrinsics per file; the labels' intrinsics differ")
    return cameras.normalized_intrinsics_to_pixels(k[0], width, height)


def opengl_matrices(labels: np.ndarray) -> np.ndarray:
    c2w, _ = cameras.split_eg3d_label(np.asarray(labels, np.float64))
    return cameras.opencv_to_opengl_cam2world(c2w)


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
    t_len, height, width = check_frames_labels(frames_uint8, labels)
    if np.shape(expressions)[0] != t_len:
        raise ValueError(f"expressions must have {t_len} rows, got {np.shape(expressions)}")
    fx, fy, cx, cy = shared_pixel_intrinsics(labels, width, height)
    gl = opengl_matrices(labels)
    paths = []
    for split, start, stop in split_ranges(t_len, split_sizes, "train"):
        frames = []
        for t in range(start, stop):
            rel = f"./{split}/f_{t:04d}"
            save_image(os.path.join(out_dir, rel + ".png"), frames_uint8[t])
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
        write_json(paths[-1], meta)
    return paths


def _reader_defaults(expression_dim: int) -> dict:
    return {"expression_dim": expression_dim}


def _features(expression_dim: int, audio_window: int) -> dict:
    del audio_window
    return {"expression": FeatureSpec((expression_dim,), np.float32)}


def _split_features(clip: VideoClip, start: int, stop: int, audio_window: int) -> dict:
    del audio_window
    return {"expression": clip.expressions[start:stop]}


FORMAT = Format(name="nerface", read=read_nerface_folder, write=write_nerface_folder,
                reader_defaults=_reader_defaults, features=_features, split_features=_split_features)
