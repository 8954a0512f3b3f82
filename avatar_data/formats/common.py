"""What every dataset layout shares: the `VideoClip` a reader returns, `DatasetError`, the checks readers
run on files, names, numbers and cameras, the writers' file helpers, frame loading/resizing, audio windows,
and `Format`, the record of one layout's hooks (`avatar_data.formats.eg3d`, `.nerface`, `.adnerf`).

Every problem raises `DatasetError` naming the file and frame index; nothing is skipped silently.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import numpy as np
from PIL import Image

from avatar_data import cameras

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
EXPRESSION_DIM = 76
AUDIO_FEATURE_SHAPE = (16, 29)


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


class FeatureSpec(NamedTuple):
    """One per-frame feature of a prepared dataset beyond image, label and frame_index: its shape, numpy dtype,
    and whether it is stored as raw bytes (large arrays) instead of tfds's default per-element encoding."""

    shape: tuple[int, ...]
    dtype: Any
    raw_bytes: bool = False


@dataclasses.dataclass(frozen=True)
class Format:
    """One dataset layout's hooks, looked up by name (`avatar_data.formats.format_of`).

    read(folder, **kwargs) -> VideoClip; write(out_dir, frames_uint8, labels, ...) writes the layout (the
    signal it carries, expressions or audio, follows the labels).
    reader_defaults(expression_dim) -> reader keyword arguments the tfds builder sets unless given.
    features(expression_dim, audio_window) -> {name: FeatureSpec} of the signals this layout carries.
    split_features(clip, start, stop, audio_window) -> {name: array [stop - start, ...]} of those signals for
    frames start .. stop-1 (audio windows read the frames before `start` too).
    """

    name: str
    read: Callable[..., "VideoClip"]
    write: Callable[..., Any]
    reader_defaults: Callable[[int], dict]
    features: Callable[[int, int], dict]
    split_features: Callable[["VideoClip", int, int, int], dict]


def no_reader_defaults(expression_dim: int) -> dict:
    del expression_dim
    return {}


# ----------------------------------------------------------------------------------------------------
# Checks shared by the readers.


def natural_sort_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: 'f_2.png' < 'f_10.png'."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def load_json(path: str) -> Any:
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: file not found")
    try:
        with open(path, "r") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from e


def find_image(folder: str, name: str) -> list[str]:
    """Existing image files for ``name`` in ``folder``: the exact name, else the same stem with any image
    extension (HFA-GP keys ``.jpg`` frames by their ``.png`` name)."""
    exact = os.path.join(folder, name)
    if os.path.isfile(exact):
        return [exact]
    stem = os.path.splitext(exact)[0]
    return [stem + ext for ext in IMAGE_EXTENSIONS if os.path.isfile(stem + ext)]


def resolve_image(folder: str, name: str, where: str) -> str:
    found = find_image(folder, name)
    if not found:
        stem = os.path.splitext(name)[0]
        raise DatasetError(f"{where}: image not found: {os.path.join(folder, name)} "
                           f"(also tried {stem}{{{','.join(IMAGE_EXTENSIONS)}}})")
    if len(found) > 1:
        raise DatasetError(f"{where}: ambiguous image for '{name}': {found}")
    return found[0]


def float_vector(values: Any, length: int, what: str, where: str) -> np.ndarray:
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


def check_camera(cam2world: np.ndarray, intrinsics: np.ndarray, where: str) -> None:
    problems = cameras.camera_problems(cam2world, intrinsics, atol=1e-2)
    if problems:
        raise DatasetError(f"{where}: bad camera: {'; '.join(problems)}")


def image_size(path: str, where: str) -> tuple[int, int]:
    """(height, width) of an image file, reading only its header."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, SyntaxError) as e:
        raise DatasetError(f"{where}: cannot read image {path} ({e})") from e
    return h, w


def first_duplicate(items: Sequence[str]) -> Optional[tuple[int, int]]:
    seen = {}
    for i, x in enumerate(items):
        if x in seen:
            return seen[x], i
        seen[x] = i
    return None


def check_distinct(paths: Sequence[str], names: Sequence[str], folder: str) -> None:
    dup = first_duplicate(paths)
    if dup is not None:
        raise DatasetError(f"{folder}: frames {dup[0]} ('{names[dup[0]]}') and {dup[1]} ('{names[dup[1]]}') "
                           f"are the same image {paths[dup[0]]}; are the splits overlapping?")


# ----------------------------------------------------------------------------------------------------
# Writers' helpers.


def check_frames_labels(frames: np.ndarray, labels: np.ndarray) -> tuple[int, int, int]:
    """(T, H, W) of frames uint8 [T, H, W, 3] with labels [T, 25]; ValueError otherwise."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if np.shape(labels) != (frames.shape[0], cameras.LABEL_DIM):
        raise ValueError(f"labels must be [{frames.shape[0]}, 25], got {np.shape(labels)}")
    return frames.shape[:3]


def save_image(path: str, frame: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(frame, np.uint8)).save(path)


def write_json(path: str, data) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


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
