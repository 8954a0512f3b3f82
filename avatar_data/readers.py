"""Readers for the three video dataset layouts; each returns a `VideoClip` with EG3D-convention labels.

Layouts (see `avatar_data/README.md` for examples):

* ``eg3d``: a folder of images plus a labels file ``{"labels": [[filename, [25 floats]], ...]}`` (EG3D's
  ``dataset.json``; HFA-GP's preprocessing writes the same as ``cropped_images/test.json``, keyed by the
  ``.png`` name even when the frame is a ``.jpg``, so a missing exact name falls back to the same stem).
  Time order is the natural sort order of the file names (``2.png`` before ``10.png``).
* ``nerface``: ``transforms_{split}.json`` with per-frame ``file_path`` (without extension; ``.png`` is
  appended), ``transform_matrix`` (OpenGL cam2world) and ``expression``, and the intrinsics as
  ``intrinsics = [fx, fy, cx, cy]`` (pixels, cx/cy as fractions), ``focal_len`` (+ optional ``cx``, ``cy``
  in pixels) or ``camera_angle_x``. Time order is the JSON order, the splits concatenated in the order given.
* ``adnerf``: ``transforms_{split}.json`` with ``focal_len``, ``cx``, ``cy`` (pixels) and per-frame
  ``img_id``, ``aud_id``, ``transform_matrix`` (OpenGL); images ``<image_dir>/<img_id>.jpg``; DeepSpeech
  features ``aud.npy`` [N, 16, 29] indexed by ``aud_id``.

Every problem raises `DatasetError` naming the file and frame index; nothing is skipped silently.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from PIL import Image

from avatar_data import cameras

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
EXPRESSION_DIM = 76
AUDIO_FEATURE_SHAPE = (16, 29)
FORMATS = ("eg3d", "nerface", "adnerf")

LabelsArg = Union[None, str, Mapping[str, str]]


class DatasetError(ValueError):
    """Bad or inconsistent input data; the message names the file and the frame index."""


@dataclasses.dataclass(frozen=True)
class VideoClip:
    """One video in time order (T frames); frame ``t`` is the t-th frame in time.

    Exactly one of ``frame_paths`` (T image files) and ``frames`` (uint8 [T, H, W, 3]) is set.
    labels: float32 [T, 25], EG3D convention (see `avatar_data.cameras`).
    expressions: float32 [T, E] (NeRFACE: E = 76) or None. audio: float32 [T, 16, 29] or None.
    names: T source identifiers (label key, file_path or img_id) for error messages and provenance.
    image_size: (H, W) every frame file must have, set when pixel intrinsics were normalised with it.
    metadata: provenance (source files, intrinsics origin, camera normalisation, source split sizes).
    """

    source_format: str
    root: str
    labels: np.ndarray
    names: tuple[str, ...]
    frame_paths: Optional[tuple[str, ...]] = None
    frames: Optional[np.ndarray] = None
    expressions: Optional[np.ndarray] = None
    audio: Optional[np.ndarray] = None
    image_size: Optional[tuple[int, int]] = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        t = len(self.names)
        if (self.frame_paths is None) == (self.frames is None):
            raise DatasetError(f"{self.root}: a clip needs exactly one of frame_paths and frames")
        shapes = {"labels": (self.labels, (t, cameras.LABEL_DIM))}
        if self.frame_paths is not None and len(self.frame_paths) != t:
            raise DatasetError(f"{self.root}: {len(self.frame_paths)} frame paths for {t} frames")
        if self.frames is not None:
            if self.frames.dtype != np.uint8 or self.frames.ndim != 4 or self.frames.shape[0] != t:
                raise DatasetError(f"{self.root}: frames must be uint8 [{t}, H, W, 3], got "
                                   f"{self.frames.dtype} {self.frames.shape}")
        if self.expressions is not None:
            shapes["expressions"] = (self.expressions, (t, self.expressions.shape[-1]))
        if self.audio is not None:
            shapes["audio"] = (self.audio, (t,) + AUDIO_FEATURE_SHAPE)
        for name, (arr, shape) in shapes.items():
            if arr.shape != shape:
                raise DatasetError(f"{self.root}: {name} has shape {arr.shape}, expected {shape}")

    @property
    def num_frames(self) -> int:
        return len(self.names)

    @property
    def frame_index(self) -> np.ndarray:
        """int32 [T]: position of each frame in time (0 .. T-1)."""
        return np.arange(self.num_frames, dtype=np.int32)

    def frame_source(self, t: int) -> str:
        """Where frame t comes from, for error messages."""
        if self.frame_paths is not None:
            return self.frame_paths[t]
        return f"{self.root} (in-memory frame '{self.names[t]}')"


# ----------------------------------------------------------------------------------------------------
# Small helpers.


def natural_sort_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: 'f_2.png' < 'f_10.png'."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def _load_json(path: str) -> Any:
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: file not found")
    try:
        with open(path, "r") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from e


def _find_image(folder: str, name: str) -> list[str]:
    """Existing image files for ``name`` in ``folder``: the exact name, else the same stem with any image
    extension (HFA-GP keys ``.jpg`` frames by their ``.png`` name)."""
    exact = os.path.join(folder, name)
    if os.path.isfile(exact):
        return [exact]
    stem = os.path.splitext(exact)[0]
    return [stem + ext for ext in IMAGE_EXTENSIONS if os.path.isfile(stem + ext)]


def _resolve_image(folder: str, name: str, where: str) -> str:
    found = _find_image(folder, name)
    if not found:
        stem = os.path.splitext(name)[0]
        raise DatasetError(f"{where}: image not found: {os.path.join(folder, name)} "
                           f"(also tried {stem}{{{','.join(IMAGE_EXTENSIONS)}}})")
    if len(found) > 1:
        raise DatasetError(f"{where}: ambiguous image for '{name}': {found}")
    return found[0]


def _float_vector(values: Any, length: int, what: str, where: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{where}: {what} is not a list of numbers ({e})") from e
    if arr.ndim != 1:
        raise DatasetError(f"{where}: {what} has shape {arr.shape}, expected {length} values")
    if arr.shape[0] != length:
        raise DatasetError(f"{where}: {what} has {arr.shape[0]} values, expected {length}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise DatasetError(f"{where}: {what} has non-finite values (NaN/inf) at positions {bad.tolist()}")
    return arr


def _check_camera(cam2world: np.ndarray, intrinsics: np.ndarray, where: str) -> None:
    problems = cameras.camera_problems(cam2world, intrinsics, atol=1e-2)
    if problems:
        raise DatasetError(f"{where}: bad camera: {'; '.join(problems)}")


def _image_size(path: str, where: str) -> tuple[int, int]:
    """(height, width) of an image file, reading only its header."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, SyntaxError) as e:
        raise DatasetError(f"{where}: cannot read image {path} ({e})") from e
    return h, w


# ----------------------------------------------------------------------------------------------------
# EG3D labels files.


def read_eg3d_labels_file(path: str) -> list[tuple[str, np.ndarray]]:
    """Parse ``{"labels": [[filename, [25 floats]], ...]}`` -> [(filename, float64 [25])], file order.

    Checks: structure, 25 finite numbers, a rigid cam2world and sane intrinsics, no duplicate names.
    """
    data = _load_json(path)
    entries = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: expected an object with a 'labels' list, got {type(data).__name__}"
                           + (" with labels=null" if isinstance(data, dict) and "labels" in data else ""))
    out, seen = [], {}
    for i, entry in enumerate(entries):
        where = f"{path}: labels[{i}]"
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)):
            raise DatasetError(f"{where}: expected [filename, [25 floats]], got {str(entry)[:80]}")
        name = entry[0]
        where = f"{where} ('{name}')"
        label = _float_vector(entry[1], cameras.LABEL_DIM, "label", where)
        _check_camera(label[:16].reshape(4, 4), label[16:].reshape(3, 3), where)
        if name in seen:
            raise DatasetError(f"{where}: duplicate name, also labels[{seen[name]}]")
        seen[name] = i
        out.append((name, label))
    if not out:
        raise DatasetError(f"{path}: no labels")
    return out


def _labels_by_stem(path: str) -> dict[str, tuple[str, np.ndarray]]:
    """Labels file -> {basename stem: (name, label)}; stems must be unique."""
    out = {}
    for name, label in read_eg3d_labels_file(path):
        stem = os.path.splitext(os.path.basename(name))[0]
        if stem in out:
            raise DatasetError(f"{path}: names '{out[stem][0]}' and '{name}' share the stem '{stem}'")
        out[stem] = (name, label)
    return out


def _labels_file_for(eg3d_labels: LabelsArg, split: str) -> Optional[str]:
    if eg3d_labels is None or isinstance(eg3d_labels, str):
        return eg3d_labels
    if split not in eg3d_labels:
        raise DatasetError(f"eg3d_labels has no entry for split '{split}' (has {sorted(eg3d_labels)})")
    return eg3d_labels[split]


# ----------------------------------------------------------------------------------------------------
# Format readers.


def read_eg3d_folder(
    folder: str,
    *,
    labels_file: Optional[str] = None,
    ignore_unlabeled_images: bool = False,
) -> VideoClip:
    """EG3D / HFA-GP layout: images in ``folder`` (subfolders allowed) + a labels file.

    labels_file: path; None looks for ``dataset.json`` or ``test.json`` in ``folder`` (exactly one must
    exist). Every label must resolve to one image; every image in the folder must have a label unless
    ``ignore_unlabeled_images`` (then their number is logged). Frames are in natural sort order of the names.
    """
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise DatasetError(f"{folder}: not a directory")
    if labels_file is None:
        found = [os.path.join(folder, n) for n in ("dataset.json", "test.json")
                 if os.path.isfile(os.path.join(folder, n))]
        if len(found) != 1:
            raise DatasetError(f"{folder}: expected one labels file (dataset.json or test.json), found "
                               f"{[os.path.basename(p) for p in found] or 'none'}; pass labels_file")
        labels_file = found[0]
    entries = read_eg3d_labels_file(labels_file)
    paths = [_resolve_image(folder, name, f"{labels_file}: labels[{i}] ('{name}')")
             for i, (name, _) in enumerate(entries)]
    dup = _first_duplicate(paths)
    if dup is not None:
        raise DatasetError(f"{labels_file}: labels[{dup[0]}] and labels[{dup[1]}] both resolve to {paths[dup[0]]}")

    labelled = set(paths)
    unlabeled = []
    for dirpath, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(dirpath, f)
            if f.lower().endswith(IMAGE_EXTENSIONS) and p not in labelled:
                unlabeled.append(os.path.relpath(p, folder))
    if unlabeled:
        msg = f"{folder}: {len(unlabeled)} image(s) have no label in {labels_file}, e.g. {sorted(unlabeled)[:5]}"
        if not ignore_unlabeled_images:
            raise DatasetError(msg + "; pass ignore_unlabeled_images=True to leave them out")
        logging.warning("%s; left out (ignore_unlabeled_images=True)", msg)

    order = sorted(range(len(entries)), key=lambda i: natural_sort_key(os.path.relpath(paths[i], folder)))
    labels = np.stack([entries[i][1] for i in order]).astype(np.float32)
    return VideoClip(
        source_format="eg3d",
        root=folder,
        labels=labels,
        names=tuple(entries[i][0] for i in order),
        frame_paths=tuple(paths[i] for i in order),
        metadata={"labels_file": labels_file, "camera_source": "eg3d_labels"},
    )


def _first_duplicate(items: Sequence[str]) -> Optional[tuple[int, int]]:
    seen = {}
    for i, x in enumerate(items):
        if x in seen:
            return seen[x], i
        seen[x] = i
    return None


def _nerface_intrinsics(meta: dict, height: int, width: int, path: str) -> tuple[np.ndarray, str]:
    """Normalised intrinsics [3,3] of one NeRFACE transforms file and a note on where they came from."""
    if meta.get("intrinsics"):
        k = _float_vector(meta["intrinsics"], 4, "'intrinsics' [fx, fy, cx, cy]", path)
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
        f = _float_vector([meta["focal_len"]], 1, "'focal_len'", path)[0]
        cx = float(meta["cx"]) if meta.get("cx") is not None else None
        cy = float(meta["cy"]) if meta.get("cy") is not None else None
        return cameras.focal_pixels_to_normalized_intrinsics(f, width, height, cx, cy), "focal_len (pixels)"
    if meta.get("camera_angle_x") is not None:
        angle = _float_vector([meta["camera_angle_x"]], 1, "'camera_angle_x'", path)[0]
        f = 0.5 * width / np.tan(0.5 * angle)
        # NeRFACE's default intrinsics are [f, f, 0.5, 0.5]: principal point at pixel W/2 (integer indices).
        return cameras.focal_pixels_to_normalized_intrinsics(f, width, height, width / 2, height / 2), \
            "camera_angle_x"
    raise DatasetError(f"{path}: no camera intrinsics: needs 'intrinsics', 'focal_len' or 'camera_angle_x'")


def _opengl_camera(frame: dict, where: str) -> np.ndarray:
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


def _transforms_frames(folder: str, split: str) -> tuple[str, dict, list]:
    path = os.path.join(folder, f"transforms_{split}.json")
    meta = _load_json(path)
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not isinstance(frames, list) or not frames:
        raise DatasetError(f"{path}: expected an object with a non-empty 'frames' list")
    return path, meta, frames


def _finish_cameras(
    cam2world_gl: list[np.ndarray],
    intrinsics: list[np.ndarray],
    where: list[str],
    normalization: Optional[cameras.CameraNormalization],
) -> tuple[np.ndarray, dict]:
    c2w = cameras.opengl_to_opencv_cam2world(np.stack(cam2world_gl))
    for m, k, w in zip(c2w, intrinsics, where):
        _check_camera(m, k, w)
    info = {}
    if normalization is not None:
        try:
            c2w, info = cameras.normalize_cameras(c2w, normalization)
        except ValueError as e:
            raise DatasetError(f"camera normalisation of {where[0]} ... {where[-1]}: {e}") from e
    return cameras.eg3d_label(c2w, np.stack(intrinsics)), info


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
    for split in splits:
        json_path, meta, frames = _transforms_frames(folder, split)
        lab_file = _labels_file_for(eg3d_labels, split)
        by_stem = _labels_by_stem(lab_file) if lab_file else None
        split_k = None
        for i, frame in enumerate(frames):
            where = f"{json_path}: frames[{i}]"
            if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
                raise DatasetError(f"{where}: no 'file_path'")
            rel = frame["file_path"]
            where = f"{where} ('{rel}')"
            if "expression" not in frame:
                raise DatasetError(f"{where}: no 'expression'")
            expressions.append(_float_vector(frame["expression"], expression_dim, "expression", where))
            stem = os.path.basename(rel)
            if os.path.splitext(stem)[1].lower() in IMAGE_EXTENSIONS:
                stem = os.path.splitext(stem)[0]
            if by_stem is not None:
                if stem not in by_stem:
                    raise DatasetError(f"{where}: no label for '{stem}' in {lab_file}")
                name, label = by_stem[stem]
                paths.append(_resolve_image(os.path.dirname(lab_file), name, f"{lab_file} ('{name}')"))
                labels_eg3d.append(label)
            else:
                name = rel if os.path.splitext(rel)[1].lower() in IMAGE_EXTENSIONS else rel + ".png"
                paths.append(_resolve_image(folder, os.path.normpath(name), where))
                if size_hw is None:
                    size_hw = _image_size(paths[-1], where)
                if split_k is None:
                    split_k, notes[split] = _nerface_intrinsics(meta, *size_hw, json_path)
                gl.append(_opengl_camera(frame, where))
                ks.append(split_k)
                wheres.append(where)
            names.append(f"{split}/{stem}")
        split_sizes[split] = len(frames)
    _check_distinct(paths, names, folder)
    info = {}
    if eg3d_labels is None:
        labels, info = _finish_cameras(gl, ks, wheres, normalization)
    else:
        labels = np.stack(labels_eg3d).astype(np.float32)
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


def _check_distinct(paths: Sequence[str], names: Sequence[str], folder: str) -> None:
    dup = _first_duplicate(paths)
    if dup is not None:
        raise DatasetError(f"{folder}: frames {dup[0]} ('{names[dup[0]]}') and {dup[1]} ('{names[dup[1]]}') "
                           f"are the same image {paths[dup[0]]}; are the splits overlapping?")


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
    for split in splits:
        json_path, meta, frames = _transforms_frames(folder, split)
        lab_file = _labels_file_for(eg3d_labels, split)
        by_stem = _labels_by_stem(lab_file) if lab_file else None
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
                paths.append(_resolve_image(os.path.dirname(lab_file), name, f"{lab_file} ('{name}')"))
                labels_eg3d.append(label)
            else:
                paths.append(_resolve_image(os.path.join(folder, image_dir), f"{img_id}.jpg", where))
                if size_hw is None:
                    size_hw = _image_size(paths[-1], where)
                if split_k is None:
                    if meta.get("focal_len") is None:
                        raise DatasetError(f"{json_path}: no 'focal_len'")
                    split_k, _ = _nerface_intrinsics(
                        {k: meta.get(k) for k in ("focal_len", "cx", "cy")}, *size_hw, json_path)
                gl.append(_opengl_camera(frame, where))
                ks.append(split_k)
                wheres.append(where)
            names.append(str(img_id))
        split_sizes[split] = len(frames)
    _check_distinct(paths, names, folder)
    if clamped:
        logging.warning("%s: %d frame(s) had aud_id >= %d (max %d); clamped (clamp_audio_index=True)",
                        audio_path, len(clamped), aud.shape[0], max(clamped))
    audio = aud[np.asarray(aud_rows)].astype(np.float32)
    bad = np.flatnonzero(~np.all(np.isfinite(audio), axis=(1, 2)))
    if bad.size:
        t = int(bad[0])
        raise DatasetError(f"{audio_path}: row {aud_rows[t]} (used by frame {t}, img_id {names[t]}) has "
                           f"non-finite values; {bad.size} frame(s) affected")
    info = {}
    if eg3d_labels is None:
        labels, info = _finish_cameras(gl, ks, wheres, normalization)
    else:
        labels = np.stack(labels_eg3d).astype(np.float32)
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


def read_clip(source_format: str, folder: str, **kwargs) -> VideoClip:
    """Dispatch to `read_eg3d_folder`, `read_nerface_folder` or `read_adnerf_folder` by format name."""
    readers = {"eg3d": read_eg3d_folder, "nerface": read_nerface_folder, "adnerf": read_adnerf_folder}
    if source_format not in readers:
        raise DatasetError(f"unknown source format '{source_format}', expected one of {FORMATS}")
    return readers[source_format](folder, **kwargs)


# ----------------------------------------------------------------------------------------------------
# Frames and audio windows.


def load_frame(
    path: str,
    resolution: Optional[int] = None,
    *,
    expected_size: Optional[tuple[int, int]] = None,
    where: str = "",
) -> np.ndarray:
    """Read an image as uint8 [R, R, 3] RGB (alpha dropped).

    Frames must be square (and of ``expected_size`` (H, W) if given). If ``resolution`` differs from the
    file's size the frame is resized with PIL's LANCZOS filter (antialiased when shrinking); normalised
    intrinsics do not change with a square-to-square resize. ``where`` prefixes error messages.
    """
    where = where or path
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if expected_size is not None and (im.height, im.width) != tuple(expected_size):
                raise DatasetError(f"{where}: frame is {im.width}x{im.height}, but the clip's intrinsics were "
                                   f"computed for {expected_size[1]}x{expected_size[0]}")
            if im.width != im.height:
                raise DatasetError(f"{where}: frame is {im.width}x{im.height}, not square; crop it first")
            if resolution is not None and im.width != resolution:
                im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, SyntaxError) as e:
        raise DatasetError(f"{where}: cannot read image {path} ({e})") from e


def clip_frame(clip: VideoClip, t: int, resolution: Optional[int] = None) -> np.ndarray:
    """Frame t of a clip as uint8 [R, R, 3]; file frames are checked/resized like `load_frame`."""
    where = f"{clip.root}: frame {t} ('{clip.names[t]}')"
    if clip.frames is not None:
        frame = clip.frames[t]
        if resolution is None or frame.shape[0] == resolution:
            return frame
        if frame.shape[0] != frame.shape[1]:
            raise DatasetError(f"{where}: frame is {frame.shape[1]}x{frame.shape[0]}, not square")
        return np.asarray(Image.fromarray(frame).resize((resolution, resolution), Image.Resampling.LANCZOS))
    return load_frame(clip.frame_paths[t], resolution, expected_size=clip.image_size,
                      where=f"{where} {clip.frame_paths[t]}")


def audio_windows(audio: np.ndarray, window: int) -> np.ndarray:
    """Per-frame windows of neighbouring audio features, zero-padded at the ends.

    audio: [T, 16, 29] in time order. Returns [T, window, 16, 29] with
    ``out[t, k] = audio[t - window//2 + k]`` (zeros outside 0..T-1), so ``out[t, window//2] = audio[t]``.
    This is AD-NeRF's / HFA-GP's smoothing window (``smo_size``, default 8). Pass the frames a window may
    read: the official trainer pads training windows at the end of the training split, and reads the whole
    video's features for test frames.
    """
    t_len = audio.shape[0]
    half = window // 2
    padded = np.concatenate([np.zeros((half,) + audio.shape[1:], audio.dtype), audio,
                             np.zeros((window - half,) + audio.shape[1:], audio.dtype)])
    idx = np.arange(t_len)[:, None] + np.arange(window)[None, :]
    return padded[idx]


def clip_arrays(clip: VideoClip, resolution: Optional[int] = None) -> dict[str, np.ndarray]:
    """Whole clip in memory: image uint8 [T, R, R, 3], label [T, 25], frame_index int32 [T],
    plus expression [T, E] and audio [T, 16, 29] when present."""
    images = [clip_frame(clip, t, resolution) for t in range(clip.num_frames)]
    sizes = {im.shape for im in images}
    if len(sizes) > 1:
        raise DatasetError(f"{clip.root}: frames have different sizes {sorted(sizes)}; pass a resolution")
    out = {"image": np.stack(images), "label": clip.labels, "frame_index": clip.frame_index}
    if clip.expressions is not None:
        out["expression"] = clip.expressions
    if clip.audio is not None:
        out["audio"] = clip.audio
    return out
