"""A run's data, from its config: a world with ground truth, a user's folder via tfds, or a user's video.

`build_datasets(config, workdir)` returns `Datasets` with random-access train/test sources
(tfds array_record sources or in-memory `ArraySource`s, same interface: len(), [i] -> dict of numpy
arrays), the frame resolution, the available keys and, for worlds with ground truth, the world's
directory. Training reads it through `train_iterator`; evaluation and rendering through `load_split`
(`hfagp.inference`); `split_cameras` reads a split's cameras alone.

Loading only loads: a world the config names (`data.synthetic.*`, `data.heads.*`) must have been made first by
`python -m hfagp.make_world` (`hfagp.make_world`); a missing one is a `WorldNotFoundError` naming that command.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from hfagp import model as model_lib
from hfagp import workdir as workdir_lib
from hfagp_common.cli import UserError
from hfagp_common.images import read_image

MAKE_WORLD = "python -m hfagp.make_world"
# A prepared video's tracked face mesh landmarks (`avatar_data.prepare`), [T, 478, 3] frame pixels.
LANDMARKS_FILE = "landmarks.npy"
# The config `python -m hfagp.make_world` reads without --config (train.py's default too).
DEFAULT_CONFIG = "configs/rgb.py:cpu"
# The config fields each kind of world depends on (besides data.source and where it lives).
WORLD_FIELDS = {
    "heads": ("data.heads.seed", "data.heads.frames", "data.heads.test_frames", "data.resolution"),
    "synthetic": ("data.synthetic.frames", "data.synthetic.test_frames", "data.synthetic.subspace_dim",
                  "data.synthetic.seed", "data.synthetic.perturb_generator", "generator.path", "generator.preset",
                  "generator.preset_seed", "generator.compute_dtype", "generator.remat", "generator.conv_impl",
                  "generator.upconv_impl", "generator.neural_rendering_resolution"),
}


class WorldNotFoundError(UserError, FileNotFoundError):
    """The world with ground truth a config names has not been made (`hfagp.make_world` makes it)."""


@dataclasses.dataclass
class Datasets:
    train: Any                      # random-access source: len(), [i] -> dict of numpy arrays
    test: Any
    resolution: int
    keys: frozenset
    world_dir: Optional[Path] = None  # set for worlds with ground truth (novel views live there)

    def sample_inputs(self, spec: model_lib.ModelSpec) -> jax.Array:
        """A [1, ...] float32 example of what the encoder of `spec` reads, for parameter initialisation."""
        from avatar_data.pipeline import to_model_inputs

        example = to_model_inputs(self.train[0])
        return jnp.asarray(np.asarray(spec.encoder_inputs(example), np.float32)[None])

    def train_iterator(self, config, process_index: int, process_count: int):
        """The shuffled, resumable training iterator of this process's share of every global batch."""
        from avatar_data.pipeline import make_train_iterator

        return make_train_iterator(
            self.train, config.optim.batch_size // process_count, seed=config.seed,
            shard_index=process_index, shard_count=process_count, worker_count=config.data.worker_count)


def load_world(world_dir: Path, smoothing_window: int = model_lib.AUDIO_SMOOTHING_WINDOW
               ) -> tuple[Any, Any, int, frozenset]:
    """Train/test in-memory sources of a world with ground truth (`avatar_data.worlds.synthetic`,
    `avatar_data.worlds.heads`), or of a video prepared into the same layout (`avatar_data.prepare`).

    The audio windows of a frame are taken from the whole video's features (`aud.npy`), so the first test
    frames see the last training frames before them, as the official sampler does.
    """
    from avatar_data.array_source import ArraySource
    from avatar_data.formats.common import audio_windows, clip_arrays
    from avatar_data.formats.eg3d import read_eg3d_folder
    from avatar_data.worlds import layout

    arrays = clip_arrays(read_eg3d_folder(world_dir / layout.FRAMES_DIR))
    n = arrays["image"].shape[0]
    split = json.loads((world_dir / layout.SPLIT_FILE).read_text())
    for name, key in ((layout.EXPRESSION_FILE, "expression"), (layout.AUDIO_FILE, "audio")):
        path = world_dir / name
        if path.is_file():
            values = np.load(path, allow_pickle=False).astype(np.float32)
            if values.shape[0] != n:
                raise ValueError(f"{path}: {values.shape[0]} rows for {n} frames")
            arrays[key] = values
    if "audio" in arrays:
        arrays[model_lib.AUDIO_WINDOW_KEY] = audio_windows(arrays["audio"], smoothing_window)
    points = face_points(world_dir, n)
    if points is not None:
        arrays["face_points"] = points[arrays["frame_index"]]
    train_idx, test_idx = np.asarray(split["train"]), np.asarray(split["test"])
    take = lambda idx: ArraySource({k: v[idx] for k, v in arrays.items()})
    return take(train_idx), take(test_idx), int(arrays["image"].shape[1]), frozenset(arrays)


def face_points(world_dir: Path, num_frames: int) -> Optional[np.ndarray]:
    """float32 [T, 3, 2] pixel (column, row) of the mouth centre and the left and right eye in every frame (time
    order) of a prepared video (from its tracked landmarks, `avatar_data.prepare.alignment.face_points`) or a head
    world (its projected model points); None for other worlds and for head worlds made before face points."""
    from avatar_data.worlds import layout

    landmarks = world_dir / LANDMARKS_FILE
    if landmarks.is_file():
        from avatar_data.prepare.alignment import face_points as mesh_face_points

        points = mesh_face_points(np.load(landmarks, allow_pickle=False))
    else:
        try:
            points = layout.read_face_truth(world_dir)["face_points"]
        except layout.NoFaceTruth:
            return None
    if points.shape != (num_frames, 3, 2):
        raise ValueError(f"{world_dir}: face points of shape {points.shape} for {num_frames} frames")
    return points.astype(np.float32)


@dataclasses.dataclass
class NovelViews:
    """Ground-truth novel views of the evaluated frames.

    images [N, V, R, R, 3] in [-1, 1] and cameras [N, V, 25]; rows of frames without novel views
    (``available[i]`` False) hold zeros and the frame's own camera. views: per view index
    {'name': 'novel<v>', 'yaw_offset_deg', 'pitch_offset_deg'}.
    """

    images: np.ndarray
    cameras: np.ndarray
    available: np.ndarray
    views: list


def load_novel_views(world: Path, frame_index: np.ndarray, own_cameras: np.ndarray) -> Optional[NovelViews]:
    """The world's ground-truth novel views for `frame_index` [N] (None if the world has none for them)."""
    from avatar_data.worlds import layout

    folder = Path(world) / layout.NOVEL_VIEWS_DIR
    index_path, labels_path = folder / layout.VIEWS_INDEX, folder / "dataset.json"
    if not index_path.is_file():
        return None
    entries = json.loads(index_path.read_text())["views"]
    if not entries:
        return None
    labels = {name: np.asarray(label, np.float32) for name, label in json.loads(labels_path.read_text())["labels"]}
    by_frame: dict[int, dict[int, dict]] = {}
    offsets: dict[int, tuple[float, float]] = {}
    for e in entries:
        by_frame.setdefault(int(e["frame_index"]), {})[int(e["view_index"])] = e
        offsets[int(e["view_index"])] = (float(e["yaw_offset_deg"]), float(e["pitch_offset_deg"]))
    num_views = len(offsets)
    if sorted(offsets) != list(range(num_views)):
        raise ValueError(f"{index_path}: view indices {sorted(offsets)} are not 0..{num_views - 1}")
    available = np.array([int(f) in by_frame for f in frame_index])
    if not available.any():
        return None
    images, cams = None, np.repeat(np.asarray(own_cameras, np.float32)[:, None], num_views, axis=1)
    for i, f in enumerate(frame_index):
        views = by_frame.get(int(f))
        if views is None:
            continue
        if sorted(views) != list(range(num_views)):
            raise ValueError(f"{index_path}: frame {int(f)} has views {sorted(views)}, expected 0..{num_views - 1}")
        for v, e in views.items():
            if e["name"] not in labels:
                raise ValueError(f"{labels_path}: no camera for novel view {e['name']!r} (frame {int(f)})")
            image = read_image(folder / e["name"])
            if images is None:
                images = np.zeros((len(frame_index), num_views) + image.shape, np.float32)
            images[i, v] = image
            cams[i, v] = labels[e["name"]]
    views = [{"name": f"novel{v}", "yaw_offset_deg": offsets[v][0], "pitch_offset_deg": offsets[v][1]}
             for v in range(num_views)]
    return NovelViews(images, cams, available, views)


@dataclasses.dataclass
class FaceTruth:
    """A head world's face annotations (`avatar_data.worlds.layout.read_face_truth`) and readback targets.

    part_labels uint8 [T, R, R] / face_points float32 [T, 3, 2] per frame (T: every frame of the video);
    novel_* per novel view, located by (frame, view) in `novel_position`; truth: {'jaw_open', 'blink'} float64 [T]
    (blink: the mean of blink_l and blink_r)."""

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
    """(FaceTruth, None), or (None, why the world has none: not a world, or one made before part labels)."""
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


def world_dir_of(config, workdir) -> Optional[Path]:
    """The world with ground truth a run trains on (None for a user's folder or video)."""
    if config.data.source == "synthetic":
        return Path(config.data.synthetic.dir or Path(workdir) / workdir_lib.SYNTHETIC_WORLD_DIR)
    if config.data.source == "heads":
        return Path(config.data.heads.dir or Path(workdir) / workdir_lib.HEAD_WORLD_DIR)
    return None


def is_video(path) -> bool:
    """Whether `data.folder` names a video file (prepared once by `avatar_data.prepare`) instead of a folder."""
    path = Path(path)
    if not path.is_file():
        return False
    from avatar_data.prepare import is_video_file

    return is_video_file(path)


def prepared_video_dir(config, workdir) -> Path:
    """Where a video named by `data.folder` is prepared: `data.prepared_dir` or WORKDIR/prepared_data/<stem>."""
    root = Path(config.data.prepared_dir or Path(workdir) / workdir_lib.PREPARED_DATA_DIR)
    return root / f"{Path(config.data.folder).stem}_{config.data.resolution}px"


def make_world_command(config, workdir) -> str:
    """The `python -m hfagp.make_world` command line that makes the world `config` names: the config fields the
    world depends on that differ from the command's default config, as --config.* overrides."""
    from configs.common import make_config

    config_file, variant = DEFAULT_CONFIG.split(":")
    default = make_config(Path(config_file).stem, variant)
    kind = config.data.source
    world_dir = {"heads": "data.heads.dir", "synthetic": "data.synthetic.dir"}[kind]
    argv = [MAKE_WORLD, f"--workdir={shlex.quote(str(workdir))}"]
    for key in ("data.source", world_dir) + WORLD_FIELDS[kind]:
        value, default_value = _field(config, key), _field(default, key)
        if value != default_value:
            argv.append(f"--config.{key}={shlex.quote(str(value))}")
    return " ".join(argv)


def _field(config, dotted_key: str):
    """config's value at a dotted key; None where an older config lacks the field."""
    node = config
    for part in dotted_key.split("."):
        if part not in node:
            return None
        node = node[part]
    return node


def require_world(config, workdir) -> Path:
    """The world `config` trains on; `WorldNotFoundError` (naming the command that makes it) if it is missing."""
    from avatar_data.worlds.layout import WORLD_FILE, is_world

    world_dir = world_dir_of(config, workdir)
    if not is_world(world_dir):
        kind = {"heads": "head", "synthetic": "synthetic"}[config.data.source]
        raise WorldNotFoundError(
            f"{world_dir}: no {kind} world there (no {WORLD_FILE}), and loading data never makes one; make it "
            f"first with: {make_world_command(config, workdir)}")
    return world_dir


def prepare_video_once(config, workdir) -> Path:
    """A user's video (`data.folder`) prepared once (face tracking, EG3D crops and cameras, expressions, audio
    features) into the world layout; later runs reuse the preparation. Returns its directory."""
    data_cfg = config.data
    out = prepared_video_dir(config, workdir)
    if not (out / "prepare.json").is_file():
        if jax.process_index() == 0:
            from avatar_data.prepare import PrepareOptions, prepare_video

            print(f"preparing {data_cfg.folder} into {out} (once; later runs reuse it)", file=sys.stderr)
            prepare_video(data_cfg.folder, out, PrepareOptions(
                fps=float(data_cfg.video_fps), resolution=int(data_cfg.resolution),
                test_fraction=float(data_cfg.test_fraction), background=data_cfg.video_background),
                quiet=not config.progress_bar)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("prepared_video")
    return out


def build_datasets(config, workdir) -> Datasets:
    """The run's datasets: a world with ground truth (which must exist, see `require_world`), a video `data.folder`
    names (prepared once, then read like a world without ground truth), or a user's folder (a tfds dataset
    prepared once)."""
    smoothing_window = model_lib.ModelSpec.from_config(config).smoothing_window
    if world_dir_of(config, workdir) is not None:
        world_dir = require_world(config, workdir)
        train, test, res, keys = load_world(world_dir, smoothing_window)
        return Datasets(train, test, res, keys, world_dir)
    if is_video(config.data.folder):
        train, test, res, keys = load_world(prepare_video_once(config, workdir), smoothing_window)
        return Datasets(train, test, res, keys)
    return _folder_datasets(config.data, workdir)


def split_cameras(config, workdir, split: str) -> np.ndarray:
    """float32 [N, 25]: the EG3D cameras of a split in time order, without reading its frames: from the world's
    (or prepared video's) frames/dataset.json and split.json, or from a user's folder's prepared dataset."""
    from avatar_data.formats.eg3d import time_ordered_labels
    from avatar_data.worlds import layout

    world_dir = world_dir_of(config, workdir)
    if world_dir is not None:
        world_dir = require_world(config, workdir)
    elif is_video(config.data.folder):
        world_dir = prepare_video_once(config, workdir)
    if world_dir is None:
        from avatar_data.pipeline import time_order

        source = getattr(_folder_datasets(config.data, workdir), split)
        return np.stack([source[int(i)]["label"] for i in time_order(source)]).astype(np.float32)
    labels = time_ordered_labels(str(world_dir / layout.FRAMES_DIR / "dataset.json"))
    index = json.loads((world_dir / layout.SPLIT_FILE).read_text())[split]
    return labels[np.sort(np.asarray(index, dtype=np.int64))]


def _folder_datasets(data_cfg, workdir) -> Datasets:
    from avatar_data.tfds_builder import AvatarVideoConfig, open_split, prepare_dataset

    name = data_cfg.name or Path(data_cfg.folder).name.replace("-", "_").lower()
    tfds_config = AvatarVideoConfig(
        name=name, source_dir=str(Path(data_cfg.folder).absolute()), source_format=data_cfg.format,
        reader_kwargs=dict(data_cfg.reader_kwargs), resolution=data_cfg.resolution,
        test_fraction=data_cfg.test_fraction, num_test_frames=data_cfg.num_test_frames or None)
    prepared_root = data_cfg.prepared_dir or str(Path(workdir) / workdir_lib.PREPARED_DATA_DIR)
    builder = prepare_dataset(tfds_config, prepared_root)
    train = open_split(builder.data_dir, "train")
    test = open_split(builder.data_dir, "test")
    keys = frozenset(builder.info.features.keys())
    return Datasets(train, test, data_cfg.resolution, keys)


__all__ = ["DEFAULT_CONFIG", "Datasets", "FaceTruth", "MAKE_WORLD", "NovelViews", "WORLD_FIELDS",
           "WorldNotFoundError", "build_datasets", "is_video", "load_face_truth", "load_novel_views", "load_world",
           "make_world_command", "prepare_video_once", "prepared_video_dir", "require_world", "split_cameras",
           "world_dir_of"]
