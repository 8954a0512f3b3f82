"""The skeleton every world writer shares (`avatar_data.worlds.synthetic`, `avatar_data.worlds.heads`), and the
smooth trajectories both animate their person with.

    with writing_world(out_dir, num_frames=T, num_test_frames=None, novel_views=views, overwrite=False) as w:
        ...                                       # w.test_index, w.novel_frame_index, w.novel_view_index
        w.mark("signals_s")                       # seconds since the start
        with w.timed("render_frames_s"):
            frames = render(...)
        with w.timed("write_s"):
            w.write_video(frames, labels, expression, audio, novel_images, novel_labels)
            save the world's ground_truth.npz into w.path
        world = w.finish(FORMAT_NAME, FORMAT_VERSION, FPS, resolution, {world-specific fields})

writes the layout of `avatar_data.worlds.layout` into a temporary directory that becomes `out_dir` when the
block completes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from avatar_data.formats.adnerf import write_adnerf_folder
from avatar_data.formats.eg3d import write_eg3d_folder
from avatar_data.formats.nerface import write_nerface_folder
from avatar_data.worlds import layout

EXTRA_FORMATS = ("nerface", "adnerf")


# ----------------------------------------------------------------------------------------------------
# Smooth trajectories.


@dataclasses.dataclass(frozen=True)
class SinusoidTrajectory:
    """x[..., k](t) = sum_j amplitude[k, j] * sin(2 pi frequency[k, j] t + phase[k, j]), t in frames (float).

    frequency: cycles per frame [K, J]; phase: radians [K, J]; amplitude [K, J] >= 0, so
    ``|x_k| <= sum_j amplitude[k, j]`` and ``|x_k(t + 1) - x_k(t)| <= 2 pi sum_j amplitude[k, j] frequency[k, j]``.
    """

    frequency: np.ndarray
    phase: np.ndarray
    amplitude: np.ndarray

    def __call__(self, t) -> np.ndarray:
        """t: [...] frame times -> [..., K] float64."""
        t = np.asarray(t, np.float64)[..., None, None]
        return np.sum(self.amplitude * np.sin(2 * np.pi * self.frequency * t + self.phase), axis=-1)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}_frequency": self.frequency, f"{prefix}_phase": self.phase,
                f"{prefix}_amplitude": self.amplitude}

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> "SinusoidTrajectory":
        return cls(*(np.asarray(arrays[f"{prefix}_{n}"], np.float64) for n in ("frequency", "phase", "amplitude")))


def random_trajectory(
    rng: np.random.Generator,
    dim: int,
    bound: float = 1.0,
    *,
    min_period: float = 16.0,
    max_period: float = 100.0,
    num_components: int = 3,
) -> SinusoidTrajectory:
    """`dim` independent smooth curves with ``max |x_k| == bound`` over all time (amplitudes sum to bound).

    Periods are log-uniform in [min_period, max_period] frames, phases uniform; so frame-to-frame steps are
    at most ``2 pi bound / min_period``.
    """
    period = np.exp(rng.uniform(np.log(min_period), np.log(max_period), (dim, num_components)))
    phase = rng.uniform(0.0, 2 * np.pi, (dim, num_components))
    amplitude = rng.uniform(0.3, 1.0, (dim, num_components))
    amplitude *= bound / amplitude.sum(axis=1, keepdims=True)
    return SinusoidTrajectory(1.0 / period, phase, amplitude)


# ----------------------------------------------------------------------------------------------------
# Writing a world.


def check_extra_formats(extra_formats: Sequence[str]) -> None:
    """ValueError unless every name is one of `EXTRA_FORMATS`."""
    unknown = sorted(set(extra_formats) - set(EXTRA_FORMATS))
    if unknown:
        raise ValueError(f"unknown extra formats {unknown}; known: {list(EXTRA_FORMATS)}")


def test_frame_count(num_frames: int, num_test_frames: Optional[int]) -> int:
    """The held-out last frames: `num_test_frames`, by default 10% of `num_frames` (at least 1); ValueError
    unless 0 < count < num_frames."""
    n_test = max(1, int(round(0.1 * num_frames))) if num_test_frames is None else int(num_test_frames)
    if not 0 < n_test < num_frames:
        raise ValueError(f"need 0 < test frames < frames, got {n_test} and {num_frames}")
    return n_test


@dataclasses.dataclass
class WorldWriter:
    """A world being written into `path` (the temporary directory of `writing_world`).

    The video has `num_frames` frames; the last `num_test_frames` are held out (`test_index`) and each of them
    is also seen from every view of `novel_views` ((yaw, pitch) degrees from frontal): novel view m shows
    test frame `novel_frame_index[m]` from view `novel_view_index[m]` (int32 [M], M = test frames x views,
    frame-major). `timings` collects the seconds of each step, written into world.json's ``timing_s``.
    """

    path: Path
    num_frames: int
    num_test_frames: int
    novel_views: list
    start: float
    timings: dict = dataclasses.field(default_factory=dict)

    @property
    def num_train_frames(self) -> int:
        return self.num_frames - self.num_test_frames

    @property
    def test_index(self) -> np.ndarray:
        return np.arange(self.num_train_frames, self.num_frames)

    @property
    def novel_frame_index(self) -> np.ndarray:
        return np.repeat(self.test_index, len(self.novel_views)).astype(np.int32)

    @property
    def novel_view_index(self) -> np.ndarray:
        return np.tile(np.arange(len(self.novel_views)), self.num_test_frames).astype(np.int32)

    def mark(self, key: str) -> None:
        """timings[key] = seconds since the start of the world."""
        self.timings[key] = time.perf_counter() - self.start

    @contextlib.contextmanager
    def timed(self, key: str) -> Iterator[None]:
        """timings[key] = seconds the block takes."""
        t0 = time.perf_counter()
        yield
        self.timings[key] = time.perf_counter() - t0

    def write_video(self, frames: np.ndarray, labels: np.ndarray, expression: np.ndarray, audio: np.ndarray,
                    novel_images: np.ndarray, novel_labels: np.ndarray,
                    extra_formats: Sequence[str] = EXTRA_FORMATS) -> None:
        """The video files of the layout: frames uint8 [T, R, R, 3] at labels [T, 25] (frames/), split.json,
        expression float32 [T, 76], audio float32 [T, 16, 29], the novel views uint8 [M, R, R, 3] at
        novel_labels [M, 25], and the same video in the layouts of `extra_formats` ('nerface', 'adnerf')."""
        check_extra_formats(extra_formats)
        out = str(self.path)
        n_train, n_test = self.num_train_frames, self.num_test_frames
        frame_names = [f"{i:05d}.png" for i in range(self.num_frames)]
        write_eg3d_folder(os.path.join(out, layout.FRAMES_DIR), frames, labels, frame_names)
        layout.write_split(self.path, n_train, self.test_index)
        np.save(os.path.join(out, layout.EXPRESSION_FILE), expression)
        np.save(os.path.join(out, layout.AUDIO_FILE), audio)
        layout.write_novel_views(self.path, novel_images, novel_labels, self.novel_frame_index,
                                 self.novel_view_index, self.novel_views)
        if "nerface" in extra_formats:
            write_nerface_folder(os.path.join(out, "nerface"), frames, labels, expression,
                                 split_sizes={"train": n_train, "test": n_test})
        if "adnerf" in extra_formats:
            write_adnerf_folder(os.path.join(out, "adnerf"), frames, labels, audio,
                                split_sizes={"train": n_train, "val": n_test}, image_ext=".png")

    def finish(self, format_name: str, version: int, fps: float, resolution: int, fields: dict,
               extra_files: Optional[dict] = None, extra_formats: Sequence[str] = EXTRA_FORMATS) -> dict:
        """Writes world.json: the world's kind, version and sizes, its own `fields`, the files it holds
        (`extra_files` {key: name} beside the layout's) and the timings; returns its dict."""
        self.timings["total_s"] = time.perf_counter() - self.start
        world = {
            "format": format_name,
            "version": version,
            "num_frames": self.num_frames,
            "num_train_frames": self.num_train_frames,
            "num_test_frames": self.num_test_frames,
            "fps": fps,
            "resolution": resolution,
            **fields,
            "files": {"frames": "frames/dataset.json", "split": layout.SPLIT_FILE,
                      "expression": layout.EXPRESSION_FILE, "audio": layout.AUDIO_FILE, **(extra_files or {}),
                      "novel_views": "novel_views/dataset.json", "novel_views_index": "novel_views/views.json",
                      "ground_truth": layout.GROUND_TRUTH_FILE,
                      **{f: f"{f}/" for f in EXTRA_FORMATS if f in extra_formats}},
            "timing_s": {k: round(v, 3) for k, v in self.timings.items()},
        }
        layout.write_json(self.path / layout.WORLD_FILE, world)
        return world


@contextlib.contextmanager
def writing_world(out_dir, *, num_frames: int, num_test_frames: Optional[int],
                  novel_views: Sequence[tuple[float, float]], overwrite: bool) -> Iterator[WorldWriter]:
    """A `WorldWriter` on a temporary directory that becomes `out_dir` when the block completes
    (`layout.world_directory`); the test frames are checked (`test_frame_count`) before anything is written."""
    start = time.perf_counter()
    n_test = test_frame_count(num_frames, num_test_frames)
    views = [(float(y), float(p)) for y, p in novel_views]
    with layout.world_directory(out_dir, overwrite) as tmp:
        yield WorldWriter(Path(tmp), int(num_frames), n_test, views, start)


# ----------------------------------------------------------------------------------------------------
# Command lines.


# Novel views of a world, at most.
MAX_NOVEL_VIEWS = 64


def parse_novel_views(text: str) -> list[tuple[float, float]]:
    """'20:0,-20:0,0:10' -> [(20, 0), (-20, 0), (0, 10)] (yaw:pitch degrees, |yaw| <= 180, |pitch| < 90, at most
    MAX_NOVEL_VIEWS); '' or 'none' -> []."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return []
    views = []
    for item in text.split(","):
        parts = item.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            yaw, pitch = float(parts[0]), float(parts[1])
            if not (abs(yaw) <= 180.0 and abs(pitch) < 90.0):  # also refuses nan
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad novel view {item!r}: expected YAW:PITCH in degrees, |YAW| <= 180, "
                                             f"|PITCH| < 90") from None
        views.append((yaw, pitch))
    if len(views) > MAX_NOVEL_VIEWS:
        raise argparse.ArgumentTypeError(f"at most {MAX_NOVEL_VIEWS} novel views, got {len(views)}")
    return views


parse_novel_views.bad_values = ("20", "a:b", "nan:0", "0:90", "200:0", ",".join(["1:1"] * (MAX_NOVEL_VIEWS + 1)))
