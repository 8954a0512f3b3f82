"""The layout of a world with ground truth (`avatar_data.worlds.synthetic`, `avatar_data.worlds.heads`), written
atomically.

    OUT/frames/                 EG3D folder of the T video frames in time order (images + dataset.json)
    OUT/split.json              {"train": [frame indices], "test": [frame indices]}
    OUT/expression.npy          float32 [T, 76] expression coefficients (the 3DMM encoder's input)
    OUT/aud.npy                 float32 [T, 16, 29] speech features (the audio encoder's input)
    OUT/novel_views/            EG3D folder of ground-truth novel views of the test frames, and views.json:
                                {"views": [{"name", "frame_index", "view_index", "yaw_offset_deg",
                                "pitch_offset_deg"}, ...]}
    OUT/ground_truth.npz        what the world knows (parameters, cameras, depth, masks, ...; head worlds
                                from version 2 on also part labels and face points: `read_face_truth`)
    OUT/world.json              {"format": <the world's kind>, "version", ...}
    OUT/nerface/, OUT/adnerf/   the same video in those layouts (optional)

`avatar_data.prepare` writes the first four of these for a real video (with prepare.json instead of
world.json); `hfagp.datasets.load_world` reads them, `hfagp.datasets.load_novel_views` the novel views.
A world is written into a temporary sibling directory and renamed into place when complete
(`world_directory`); an existing directory is replaced only if it is a world and overwrite is asked for.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from avatar_data.formats.eg3d import write_eg3d_folder
from hfagp_common import atomic

FRAMES_DIR = "frames"
SPLIT_FILE = "split.json"
EXPRESSION_FILE = "expression.npy"
AUDIO_FILE = "aud.npy"
NOVEL_VIEWS_DIR = "novel_views"
VIEWS_INDEX = "views.json"
GROUND_TRUTH_FILE = "ground_truth.npz"
WORLD_FILE = "world.json"
HEAD_WORLD_FORMAT = "hfagp-head-world"
FACE_TRUTH_VERSION = 2  # the first head-world version with part labels and face points


class NoFaceTruth(ValueError):
    """A world without part labels and face points (another kind, or a head world older than version 2)."""


def is_world(path) -> bool:
    return (Path(path) / WORLD_FILE).is_file()


def check_out_dir(out_dir, overwrite: bool) -> None:
    """FileExistsError unless `out_dir` is absent, empty, or (with overwrite) an earlier world."""
    out_dir = Path(out_dir).absolute()
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory")
    if not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty (pass overwrite=True / --overwrite to replace an "
                              f"earlier world)")
    if not is_world(out_dir):
        raise FileExistsError(f"{out_dir} is not a world (no {WORLD_FILE}); refusing to replace it")


@contextlib.contextmanager
def world_directory(out_dir, overwrite: bool) -> Iterator[Path]:
    """A temporary directory that becomes `out_dir` when the block completes (see `check_out_dir`)."""
    check_out_dir(out_dir, overwrite)
    with atomic.atomic_directory(out_dir, overwrite=overwrite, replaceable=is_world) as tmp:
        yield tmp


def read_face_truth(world) -> dict:
    """The face annotations of a head world (`avatar_data.worlds.heads`, version >= `FACE_TRUTH_VERSION`).

    Returns {'part_names': [str] (index = label value), 'part_labels': uint8 [T, R, R], 'novel_part_labels':
    uint8 [V, R, R], 'face_point_names': [str], 'face_points': float32 [T, P, 2] and 'novel_face_points':
    float32 [V, P, 2] (pixel column, row; pixel i's centre at i), 'novel_frame_index' / 'novel_view_index'
    int [V], 'expression': float32 [T, E], 'expression_names': [str]}; frames in time order, novel views in
    views.json's order. Raises NoFaceTruth, saying why and how to remake the world, when it has none.
    """
    world = Path(world)
    info = json.loads((world / WORLD_FILE).read_text()) if is_world(world) else {}
    kind, version = info.get("format"), info.get("version")
    if kind != HEAD_WORLD_FORMAT:
        raise NoFaceTruth(f"{world} is {'a ' + repr(kind) if kind else 'not a'} world; only head worlds "
                          f"({HEAD_WORLD_FORMAT}, python -m avatar_data.worlds.heads) have part labels")
    with np.load(world / GROUND_TRUTH_FILE) as gt:
        if "part_labels" not in gt.files:
            raise NoFaceTruth(
                f"{world} has no part labels: made by an older version ({kind} version {version}; labels since "
                f"version {FACE_TRUTH_VERSION}); remake it with `python -m hfagp.make_world --config=... "
                f"--workdir=...` or `python -m avatar_data.worlds.heads {world} --seed {info.get('seed', 0)} "
                f"--frames {info.get('num_frames', '...')} --resolution {info.get('resolution', '...')} --overwrite`")
        out = {k: gt[k] for k in ("part_labels", "novel_part_labels", "face_points", "novel_face_points",
                                  "novel_frame_index", "novel_view_index", "expression")}
        out["expression_names"] = [str(n) for n in gt["expression_names"]]
        out["face_point_names"] = [str(n) for n in gt["face_point_names"]]
    out["part_names"] = list(info["part_names"])
    return out


def write_json(path, data) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def write_split(out: Path, num_train: int, test_index: Sequence[int]) -> None:
    """split.json: the first `num_train` frames train, `test_index` test."""
    write_json(Path(out) / SPLIT_FILE, {"train": list(range(int(num_train))), "test": [int(i) for i in test_index]})


def novel_view_names(frame_index: np.ndarray, view_index: np.ndarray) -> list[str]:
    return [f"{int(f):05d}_view{int(v)}.png" for f, v in zip(frame_index, view_index)]


def write_novel_views(out: Path, images: np.ndarray, labels: np.ndarray, frame_index: np.ndarray,
                      view_index: np.ndarray, views_deg: Sequence[tuple[float, float]]) -> None:
    """novel_views/: images uint8 [M, R, R, 3] at labels [M, 25], each of test frame `frame_index[m]` from view
    `view_index[m]`, whose (yaw, pitch) offsets from frontal in degrees are `views_deg[view_index[m]]`."""
    folder = Path(out) / NOVEL_VIEWS_DIR
    os.makedirs(folder, exist_ok=True)
    names = novel_view_names(frame_index, view_index)
    if names:
        write_eg3d_folder(str(folder), images, labels, names)
    write_json(folder / VIEWS_INDEX, {
        "views": [{"name": name, "frame_index": int(f), "view_index": int(v),
                   "yaw_offset_deg": float(views_deg[v][0]), "pitch_offset_deg": float(views_deg[v][1])}
                  for name, f, v in zip(names, frame_index, view_index)]})


__all__ = ["AUDIO_FILE", "EXPRESSION_FILE", "FACE_TRUTH_VERSION", "FRAMES_DIR", "GROUND_TRUTH_FILE",
           "HEAD_WORLD_FORMAT", "NOVEL_VIEWS_DIR", "NoFaceTruth", "SPLIT_FILE", "VIEWS_INDEX", "WORLD_FILE",
           "check_out_dir", "is_world", "novel_view_names", "read_face_truth", "world_directory", "write_json",
           "write_novel_views", "write_split"]
