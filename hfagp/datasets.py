"""A run's data, from its config: a world with ground truth, a user's folder via tfds, or a user's video.

`build_datasets(config, workdir, generator)` returns `Datasets` with random-access train/test sources
(tfds array_record sources or in-memory `ArraySource`s, same interface: len(), [i] -> dict of numpy
arrays), the frame resolution, the available keys and, for worlds with ground truth, the world's
directory. Training reads it through `train_iterator`; evaluation and rendering through `load_split`
(`hfagp.inference`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from hfagp import model as model_lib
from hfagp import workdir as workdir_lib
from hfagp_common.images import read_image



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
    """Train/test in-memory sources of a world with ground truth (`avatar_data.synthetic`, `avatar_data.heads`).

    The audio windows of a frame are taken from the whole video's features (`aud.npy`), so the first test
    frames see the last training frames before them, as the official sampler does.
    """
    from avatar_data import worlds
    from avatar_data.array_source import ArraySource
    from avatar_data.readers import audio_windows, clip_arrays, read_eg3d_folder

    arrays = clip_arrays(read_eg3d_folder(world_dir / worlds.FRAMES_DIR))
    n = arrays["image"].shape[0]
    split = json.loads((world_dir / worlds.SPLIT_FILE).read_text())
    for name, key in ((worlds.EXPRESSION_FILE, "expression"), (worlds.AUDIO_FILE, "audio")):
        path = world_dir / name
        if path.is_file():
            values = np.load(path, allow_pickle=False).astype(np.float32)
            if values.shape[0] != n:
                raise ValueError(f"{path}: {values.shape[0]} rows for {n} frames")
            arrays[key] = values
    if "audio" in arrays:
        arrays[model_lib.AUDIO_WINDOW_KEY] = audio_windows(arrays["audio"], smoothing_window)
    train_idx, test_idx = np.asarray(split["train"]), np.asarray(split["test"])
    take = lambda idx: ArraySource({k: v[idx] for k, v in arrays.items()})
    return take(train_idx), take(test_idx), int(arrays["image"].shape[1]), frozenset(arrays)


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
    from avatar_data import worlds

    folder = Path(world) / worlds.NOVEL_VIEWS_DIR
    index_path, labels_path = folder / worlds.VIEWS_INDEX, folder / "dataset.json"
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


def _video_datasets(config, workdir) -> Datasets:
    """A user's video: prepared once (face tracking, EG3D crops and cameras, expressions, audio features) into
    the world layout, then read like a world without ground truth; later runs reuse the preparation."""
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
    train, test, res, keys = load_world(out, model_lib.ModelSpec.from_config(config).smoothing_window)
    return Datasets(train, test, res, keys)


def build_datasets(config, workdir, generator) -> Datasets:
    """The run's datasets (making the synthetic world first if the config asks for one that is missing, or
    preparing the video `data.folder` names)."""
    data_cfg = config.data
    world_dir = world_dir_of(config, workdir)
    if world_dir is not None:
        from avatar_data.worlds import is_world

        if not is_world(world_dir):
            if jax.process_index() == 0:
                _make_world(config, world_dir, generator)
            if jax.process_count() > 1:
                from jax.experimental import multihost_utils

                multihost_utils.sync_global_devices("made_world")
        train, test, res, keys = load_world(world_dir, model_lib.ModelSpec.from_config(config).smoothing_window)
        return Datasets(train, test, res, keys, world_dir)
    if is_video(data_cfg.folder):
        return _video_datasets(config, workdir)
    return _folder_datasets(data_cfg, workdir)


def _make_world(config, world_dir: Path, generator) -> None:
    """The world the config asks for: rendered by `generator` ('synthetic') or by the head world ('heads')."""
    if config.data.source == "heads":
        from avatar_data.heads.world import make_head_world

        heads = config.data.heads
        print(f"making a head world in {world_dir} (identity {heads.seed}, {heads.frames} frames)", file=sys.stderr)
        make_head_world(str(world_dir), seed=int(heads.seed), num_frames=int(heads.frames),
                        num_test_frames=int(heads.test_frames), resolution=int(config.data.resolution),
                        progress=bool(config.progress_bar))
        return
    from avatar_data.synthetic import make_synthetic_world

    syn_cfg = config.data.synthetic
    print(f"making a synthetic avatar world in {world_dir} ({syn_cfg.frames} frames)", file=sys.stderr)
    make_synthetic_world(
        generator, world_dir, num_frames=syn_cfg.frames, num_test_frames=syn_cfg.test_frames,
        subspace_dim=syn_cfg.subspace_dim, seed=syn_cfg.seed, perturb_generator_amount=syn_cfg.perturb_generator,
        extra_formats=())


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


__all__ = ["NovelViews", "load_novel_views", "Datasets", "build_datasets", "is_video", "load_world", "prepared_video_dir", "world_dir_of"]
