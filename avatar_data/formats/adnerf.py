"""The AD-NeRF layout: ``transforms_{split}.json`` with ``focal_len``, ``cx``, ``cy`` (pixels) and per-frame
``img_id``, ``aud_id``, ``transform_matrix`` (OpenGL); images ``<image_dir>/<img_id>.jpg``; DeepSpeech features
``aud.npy`` [N, 16, 29] indexed by ``aud_id``. Time order is the JSON order, the splits concatenated in the
order given. The layout carries audio, and the prepared dataset the audio windows of AD-NeRF's smoothing.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Mapping, Optional, Sequence

import numpy as np

from avatar_data import cameras
from avatar_data.formats.common import (
    AUDIO_FEATURE_SHAPE,
    DatasetError,
    FeatureSpec,
    Format,
    VideoClip,
    audio_windows,
    check_distinct,
    check_frames_labels,
    image_size,
    no_reader_defaults,
    resolve_image,
    save_image,
    write_json,
)
from avatar_data.formats.eg3d import LabelsArg
from avatar_data.formats.nerface import (
    clip_labels,
    nerface_intrinsics,
    opengl_camera,
    opengl_matrices,
    shared_pixel_intrinsics,
    split_ranges,
    transforms_splits,
)


def read_adnerf_folder(
    folder: str,
    *,
    splits: Sequence[str] = ("train", "val"),
    image_dir: str = "head_imgs",
    audio_file: str = "aud.npy",
    eg3d_labels: LabelsArg = None,
    normalization: Optional[cameras.CameraNormalization] = None,
    clamp_audio_index: bool = False,
) -> VideoClip:
    """AD-NeRF layout -> VideoClip with audio [T, 16, 29] (``aud.npy[aud_id]`` of each frame).

    image_dir: folder (relative to ``folder``) of ``<img_id>.jpg`` frames (any image extension is accepted).
    eg3d_labels: optional labels file (or {split: file}) of EG3D cameras keyed by ``<img_id>.png`` (HFA-GP's
      ``cropped_images/test.json``); frames then come from that file's folder.
    clamp_audio_index: AD-NeRF and HFA-GP read ``aud[min(aud_id, N - 1)]``. By default an aud_id >= N is
      an error; with True it is clamped and the number of clamped frames is logged.
    """
    folder = os.path.abspath(folder)
    if eg3d_labels is not None and normalization is not None:
        raise DatasetError("normalization applies to transform_matrix cameras, not to eg3d_labels")
    audio_path = os.path.join(folder, audio_file)
    if not os.path.isfile(audio_path):
        raise DatasetError(f"{audio_path}: file not found")
    aud = np.load(audio_path)
    if aud.ndim != 3 or aud.shape[1:] != AUDIO_FEATURE_SHAPE:
        raise DatasetError(f"{audio_path}: shape {aud.shape}, expected [N, {AUDIO_FEATURE_SHAPE[0]}, "
                           f"{AUDIO_FEATURE_SHAPE[1]}]")

    paths, names, aud_rows, labels_eg3d = [], [], [], []
    gl, ks, wheres = [], [], []
    split_sizes, clamped, size_hw = {}, [], None
    for split, json_path, meta, frames, lab_file, by_stem in transforms_splits(folder, splits, eg3d_labels):
        split_k = None
        for i, frame in enumerate(frames):
            where = f"{json_path}: frames[{i}]"
            if not isinstance(frame, dict):
                raise DatasetError(f"{where}: not an object")
            for key in ("img_id", "aud_id"):
                if not isinstance(frame.get(key), int) or isinstance(frame.get(key), bool) or frame[key] < 0:
                    raise DatasetError(f"{where}: '{key}' must be a non-negative integer, got {frame.get(key)!r}")
            img_id, aud_id = frame["img_id"], frame["aud_id"]
            where = f"{where} (img_id {img_id})"
            if aud_id >= aud.shape[0]:
                if not clamp_audio_index:
                    raise DatasetError(f"{where}: aud_id {aud_id} is out of range for {audio_path} with "
                                       f"{aud.shape[0]} frames (frame/audio count mismatch); "
                                       "pass clamp_audio_index=True to use the last audio frame as AD-NeRF does")
                clamped.append(aud_id)
                aud_id = aud.shape[0] - 1
            aud_rows.append(aud_id)
            if by_stem is not None:
                if str(img_id) not in by_stem:
                    raise DatasetError(f"{where}: no label for '{img_id}.png' in {lab_file}")
                name, label = by_stem[str(img_id)]
                paths.append(resolve_image(os.path.dirname(lab_file), name, f"{lab_file} ('{name}')"))
                labels_eg3d.append(label)
            else:
                paths.append(resolve_image(os.path.join(folder, image_dir), f"{img_id}.jpg", where))
                if size_hw is None:
                    size_hw = image_size(paths[-1], where)
                if split_k is None:
                    if meta.get("focal_len") is None:
                        raise DatasetError(f"{json_path}: no 'focal_len'")
                    split_k, _ = nerface_intrinsics(
                        {k: meta.get(k) for k in ("focal_len", "cx", "cy")}, *size_hw, json_path)
                gl.append(opengl_camera(frame, where))
                ks.append(split_k)
                wheres.append(where)
            names.append(str(img_id))
        split_sizes[split] = len(frames)
    check_distinct(paths, names, folder)
    if clamped:
        logging.warning("%s: %d frame(s) had aud_id >= %d (max %d); clamped (clamp_audio_index=True)",
                        audio_path, len(clamped), aud.shape[0], max(clamped))
    audio = aud[np.asarray(aud_rows)].astype(np.float32)
    bad = np.flatnonzero(~np.all(np.isfinite(audio), axis=(1, 2)))
    if bad.size:
        t = int(bad[0])
        raise DatasetError(f"{audio_path}: row {aud_rows[t]} (used by frame {t}, img_id {names[t]}) has "
                           f"non-finite values; {bad.size} frame(s) affected")
    labels, info = clip_labels(eg3d_labels, labels_eg3d, gl, ks, wheres, normalization)
    return VideoClip(
        source_format="adnerf",
        root=folder,
        labels=labels,
        names=tuple(names),
        frame_paths=tuple(paths),
        audio=audio,
        image_size=size_hw,
        metadata={
            "source_splits": dict(split_sizes),
            "camera_source": "eg3d_labels" if eg3d_labels is not None else "transform_matrix",
            "audio_file": audio_path,
            "audio_rows": [int(r) for r in aud_rows],
            "clamped_audio_frames": len(clamped),
            "normalization": info,
        },
    )


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
    t_len, height, width = check_frames_labels(frames_uint8, labels)
    aud_ids = list(range(t_len)) if aud_ids is None else [int(a) for a in aud_ids]
    img_ids = list(range(t_len)) if img_ids is None else [int(i) for i in img_ids]
    if len(aud_ids) != t_len or len(img_ids) != t_len:
        raise ValueError(f"need {t_len} aud_ids and img_ids, got {len(aud_ids)} and {len(img_ids)}")
    fx, fy, cx, cy = shared_pixel_intrinsics(labels, width, height)
    if not math.isclose(fx, fy, rel_tol=1e-6):
        raise ValueError(f"AD-NeRF stores one focal length, got fx={fx}, fy={fy}")
    gl = opengl_matrices(labels)
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "aud.npy"), np.asarray(audio))
    for t in range(t_len):
        save_image(os.path.join(out_dir, image_dir, f"{img_ids[t]}{image_ext}"), frames_uint8[t])
    paths = []
    for split, start, stop in split_ranges(t_len, split_sizes, "train"):
        meta = {
            "focal_len": fx,
            "cx": cx,
            "cy": cy,
            "frames": [{"img_id": img_ids[t], "aud_id": aud_ids[t], "transform_matrix": gl[t].tolist()}
                       for t in range(start, stop)],
        }
        paths.append(os.path.join(out_dir, f"transforms_{split}.json"))
        write_json(paths[-1], meta)
    return paths


def _features(expression_dim: int, audio_window: int) -> dict:
    del expression_dim
    features = {"audio": FeatureSpec(AUDIO_FEATURE_SHAPE, np.float32)}
    if audio_window > 0:
        features["audio_window"] = FeatureSpec((audio_window,) + AUDIO_FEATURE_SHAPE, np.float32, raw_bytes=True)
    return features


def _split_features(clip: VideoClip, start: int, stop: int, audio_window: int) -> dict:
    features = {"audio": clip.audio[start:stop]}
    if audio_window > 0:
        # Frames 0 .. stop-1: the test split (the end of the video) sees the training frames before it.
        features["audio_window"] = audio_windows(clip.audio[:stop], audio_window)[start:stop]
    return features


FORMAT = Format(name="adnerf", read=read_adnerf_folder, write=write_adnerf_folder,
                reader_defaults=no_reader_defaults, features=_features, split_features=_split_features)
