"""Config validation that runs before anything is built or compiled, with messages naming the knob."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from configs import common as configs_common
from encoders import ENCODERS
from hfagp import datasets as datasets_lib
from hfagp import lpips as lpips_lib
from hfagp import model as model_lib
from hfagp_common import config_schema
from hfagp_common.cli import ConfigError

DATA_SOURCES = ("synthetic", "heads", "folder")


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_config(cfg, source: str = "") -> None:
    """Raises ConfigError for the first knob of `cfg` (a training config) that cannot work: the declared schema
    (configs.common.SCHEMA: types, ranges, relations) first, then what needs the library (encoder options) or the
    file system (data, generator, LPIPS weights, a shared prior). source: prefixed to messages."""
    config_schema.check(cfg, configs_common.SCHEMA, configs_common.RELATIONS, source=source)
    _check_encoder_options(cfg.model.encoder, dict(cfg.model.encoder_kwargs), source)
    if cfg.data.source == "folder":
        _need(bool(cfg.data.folder), "data.source='folder' needs data.folder=PATH (a dataset folder or a video)")
        folder = Path(cfg.data.folder)
        _need(folder.exists(), f"data.folder={cfg.data.folder!r} does not exist")
        _need(folder.is_dir() or datasets_lib.is_video(folder),
              f"data.folder={cfg.data.folder!r} is neither a dataset folder nor a video ffmpeg can read")
    if cfg.generator.path:
        model_lib.check_generator_dir(cfg.generator.path)
    if cfg.loss.lpips_weight > 0:
        lpips_lib.check_weights_file(cfg.loss.lpips_weights, cfg.loss.lpips_net, knob="loss.lpips_weights")
    smoothing_start = cfg.schedule.audio_smoothing_start
    _need(smoothing_start < 0 or cfg.model.encoder == "audio",
          f"schedule.audio_smoothing_start={smoothing_start} applies to model.encoder='audio' only (set it to -1)")
    if cfg.model.shared_prior_from:
        _need(Path(cfg.model.shared_prior_from, "checkpoints").is_dir(),
              f"model.shared_prior_from={cfg.model.shared_prior_from!r} has no checkpoints/ directory")


def _check_encoder_options(encoder: str, options: dict, source: str) -> None:
    """model.encoder_kwargs: only fields of the encoder's class, and not the ones the config sets elsewhere."""
    _need("temporal_smoothing" not in options,
          f"{source}model.encoder_kwargs.temporal_smoothing is not a setting: schedule.audio_smoothing_start says "
          f"from which step the audio encoder smooths (-1: never)")
    fields = [f.name for f in dataclasses.fields(ENCODERS[encoder]) if f.init and f.name not in ("parent", "name")]
    settable = [name for name in fields if name not in ("k", "temporal_smoothing")]
    unknown = sorted(set(options) - set(settable))
    _need(not unknown, f"{source}model.encoder_kwargs has {unknown}, which {ENCODERS[encoder].__name__} does not "
                       f"take; its options: {settable}")


def check_data_matches(cfg, spec: model_lib.ModelSpec, gen_config, datasets) -> None:
    """Raises ConfigError when the data cannot feed this generator and the encoder of `spec`."""
    _need(datasets.resolution == gen_config.img_resolution,
          f"the dataset's frames are {datasets.resolution}px but the generator renders {gen_config.img_resolution}px; "
          f"prepare the data at the generator's resolution (data.resolution)")
    latent_size = gen_config.num_ws * gen_config.w_dim
    _need(cfg.model.k <= latent_size, f"model.k={cfg.model.k} exceeds the generator's W+ size ({gen_config.num_ws} x "
                                      f"{gen_config.w_dim} = {latent_size}): the basis has at most that many vectors")
    _need(gen_config.img_resolution % cfg.loss.resolution == 0,
          f"loss.resolution={cfg.loss.resolution} must divide the image resolution {gen_config.img_resolution}")
    needed = spec.input_key
    _need(needed in datasets.keys, f"model.encoder={spec.encoder!r} needs '{needed}' in the dataset, which has "
                                   f"{sorted(datasets.keys)}")
    _need(cfg.loss.face_weight == 0 or "face_points" in datasets.keys,
          f"loss.face_weight={cfg.loss.face_weight} needs the frames' face points, which head worlds and prepared "
          f"videos have and this dataset does not ({sorted(datasets.keys)}); set loss.face_weight=0")
    _need(len(datasets.train) >= cfg.optim.batch_size,
          f"only {len(datasets.train)} training frames for batch size {cfg.optim.batch_size}")
