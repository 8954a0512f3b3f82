"""Datasets for training: a synthetic avatar world (default) or a user's folder via tfds, read with grain.

`build_datasets(config, workdir, generator)` returns `Datasets` with random-access train/test
sources (tfds array_record sources or in-memory `ArraySource`s, same interface), the frame
resolution, the available keys and, for synthetic worlds, ground-truth novel views.
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

TRAIN_KEYS = ("image", "label", "expression", "audio", "audio_window")


@dataclasses.dataclass
class Datasets:
    train: Any                      # random-access source: len(), [i] -> dict of numpy arrays
    test: Any
    resolution: int
    keys: frozenset
    world_dir: Optional[Path] = None  # set for synthetic worlds (ground-truth novel views live there)

    def sample_inputs(self, encoder_kind: str, config) -> jax.Array:
        """A [1, ...] float32 example of what the encoder reads, for parameter initialisation."""
        from avatar_data.pipeline import to_model_inputs
        from hfagp.model import encoder_inputs

        example = to_model_inputs(self.train[0])
        batch = {k: jnp.asarray(np.asarray(v)[None]) for k, v in example.items() if k in TRAIN_KEYS}
        smoothing = bool(dict(config.model.encoder_kwargs).get("temporal_smoothing", False))
        return encoder_inputs(batch, encoder_kind, smoothing)

    def train_iterator(self, config, process_index: int, process_count: int):
        from avatar_data.pipeline import make_train_iterator

        return make_train_iterator(
            self.train, config.optim.batch_size // process_count, seed=config.seed,
            shard_index=process_index, shard_count=process_count, worker_count=config.data.worker_count)


def _array_source(arrays: dict):
    from avatar_data.array_source import ArraySource

    return ArraySource(arrays)


def load_world(world_dir: Path) -> tuple[Any, Any, int, frozenset]:
    """Train/test in-memory sources of a synthetic avatar world (see avatar_data.synthetic)."""
    from avatar_data.readers import clip_arrays, read_eg3d_folder

    clip = read_eg3d_folder(world_dir / "frames")
    arrays = clip_arrays(clip)
    n = arrays["image"].shape[0]
    split = json.loads((world_dir / "split.json").read_text())
    for name in ("expression.npy", "aud.npy"):
        path = world_dir / name
        if path.is_file():
            values = np.load(path).astype(np.float32)
            if values.shape[0] != n:
                raise ValueError(f"{path}: {values.shape[0]} rows for {n} frames")
            arrays["expression" if name == "expression.npy" else "audio"] = values
    if "audio" in arrays:
        from avatar_data.readers import audio_windows

        arrays["audio_window"] = audio_windows(arrays["audio"], 8).astype(np.float32)
    train_idx, test_idx = np.asarray(split["train"]), np.asarray(split["test"])
    take = lambda idx: _array_source({k: v[idx] for k, v in arrays.items()})
    return take(train_idx), take(test_idx), int(arrays["image"].shape[1]), frozenset(arrays)


def build_datasets(config, workdir: str, generator) -> Datasets:
    data_cfg = config.data
    if data_cfg.source == "synthetic":
        world_dir = Path(data_cfg.synthetic.dir or Path(workdir) / "synthetic_world")
        if not (world_dir / "world.json").is_file():
            if jax.process_index() == 0:
                _make_world(data_cfg.synthetic, world_dir, generator)
            if jax.process_count() > 1:
                from jax.experimental import multihost_utils

                multihost_utils.sync_global_devices("synthetic_world")
        train, test, res, keys = load_world(world_dir)
        return Datasets(train, test, res, keys, world_dir)
    return _folder_datasets(data_cfg, workdir)


def _make_world(syn_cfg, world_dir: Path, generator) -> None:
    from avatar_data.synthetic import make_synthetic_world

    print(f"making a synthetic avatar world in {world_dir} ({syn_cfg.frames} frames)", file=sys.stderr)
    make_synthetic_world(
        generator, world_dir, num_frames=syn_cfg.frames, num_test_frames=syn_cfg.test_frames,
        subspace_dim=syn_cfg.subspace_dim, seed=syn_cfg.seed, perturb_generator_amount=syn_cfg.perturb_generator,
        extra_formats=())


def _folder_datasets(data_cfg, workdir: str) -> Datasets:
    from avatar_data.tfds_builder import AvatarVideoConfig, open_split, prepare_dataset

    name = data_cfg.name or Path(data_cfg.folder).name.replace("-", "_").lower()
    tfds_config = AvatarVideoConfig(
        name=name, source_dir=str(Path(data_cfg.folder).absolute()), source_format=data_cfg.format,
        reader_kwargs=dict(data_cfg.reader_kwargs), resolution=data_cfg.resolution,
        test_fraction=data_cfg.test_fraction, num_test_frames=data_cfg.num_test_frames or None)
    prepared_root = data_cfg.prepared_dir or str(Path(workdir) / "prepared_data")
    builder = prepare_dataset(tfds_config, prepared_root)
    train = open_split(builder.data_dir, "train")
    test = open_split(builder.data_dir, "test")
    keys = frozenset(builder.info.features.keys())
    return Datasets(train, test, data_cfg.resolution, keys)


def device_batch(batch: dict, sharding, local_batch: int, config) -> dict:
    """Host numpy batch (this process's share) -> global jax arrays sharded along the batch axis."""
    needed = {"image", "label", {"rgb": "image", "expression": "expression", "audio": "audio"}[config.model.encoder]}
    if config.model.encoder == "audio" and dict(config.model.encoder_kwargs).get("temporal_smoothing"):
        needed.add("audio_window")
    out = {}
    for key in needed:
        value = np.asarray(batch[key], np.float32)
        if value.shape[0] != local_batch:
            raise ValueError(f"batch[{key!r}] has {value.shape[0]} rows, expected {local_batch}")
        out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out


def iterator_state(iterator) -> Optional[str]:
    from avatar_data.pipeline import iterator_state as _state

    return _state(iterator)


def restore_iterator(iterator, state: str) -> None:
    from avatar_data.pipeline import restore_iterator_state

    restore_iterator_state(iterator, state)


def initialize_distributed(dist_cfg) -> None:
    """Multi-process set-up (one process per host; on CPU, gloo collectives)."""
    if dist_cfg.cpu_collectives:  # must be set before the backend starts
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=dist_cfg.coordinator_address or None,
        num_processes=dist_cfg.num_processes or None,
        process_id=dist_cfg.process_id if dist_cfg.process_id >= 0 else None)
