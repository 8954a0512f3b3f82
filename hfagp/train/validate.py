"""Config validation that runs before anything is built or compiled, with messages naming the knob."""

from __future__ import annotations

from pathlib import Path

from encoders import ENCODERS
from hfagp import datasets as datasets_lib
from hfagp import lpips as lpips_lib
from hfagp import model as model_lib
from hfagp import precision as precision_lib
from hfagp_common.cli import ConfigError
from prior.basis import INIT_MODES, ORTHOGONALITY_MODES

DATA_SOURCES = ("synthetic", "heads", "folder")


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_config(cfg) -> None:
    """Raises ConfigError for the first knob of `cfg` (a training config) that cannot work."""
    _need(cfg.model.encoder in ENCODERS, f"model.encoder must be one of {tuple(ENCODERS)}, got {cfg.model.encoder!r}")
    _need(cfg.model.orthogonality in ORTHOGONALITY_MODES,
          f"model.orthogonality must be one of {ORTHOGONALITY_MODES}, got {cfg.model.orthogonality!r}")
    _need(cfg.model.prior_init in INIT_MODES, f"model.prior_init must be one of {INIT_MODES}, got "
                                              f"{cfg.model.prior_init!r}")
    _need(cfg.model.k > 0, f"model.k must be positive, got {cfg.model.k}")
    _need(cfg.data.source in DATA_SOURCES, f"data.source must be one of {DATA_SOURCES}, got {cfg.data.source!r}")
    if cfg.data.source == "folder":
        _need(bool(cfg.data.folder), "data.source='folder' needs data.folder=PATH (a dataset folder or a video)")
        folder = Path(cfg.data.folder)
        _need(folder.exists(), f"data.folder={cfg.data.folder!r} does not exist")
        _need(folder.is_dir() or datasets_lib.is_video(folder),
              f"data.folder={cfg.data.folder!r} is neither a dataset folder nor a video ffmpeg can read")
    _need(cfg.optim.batch_size > 0, f"optim.batch_size must be positive, got {cfg.optim.batch_size}")
    _need(cfg.optim.learning_rate > 0, f"optim.learning_rate must be positive, got {cfg.optim.learning_rate}")
    _need(cfg.schedule.total_steps > 0, f"schedule.total_steps must be positive, got {cfg.schedule.total_steps}")
    _need(cfg.schedule.generator_tuning_start >= 0, "schedule.generator_tuning_start must be >= 0")
    _need(cfg.log_every > 0 and cfg.eval_every > 0 and cfg.checkpoint.every > 0,
          "log_every, eval_every and checkpoint.every must be positive")
    _need(cfg.checkpoint.keep > 0, f"checkpoint.keep must be positive, got {cfg.checkpoint.keep}")
    _need(cfg.loss.lpips_net in lpips_lib.NETS, f"loss.lpips_net must be one of {lpips_lib.NETS}, got "
                                                f"{cfg.loss.lpips_net!r}")
    _need(cfg.loss.lpips_weight >= 0, f"loss.lpips_weight must be >= 0, got {cfg.loss.lpips_weight}")
    _need(cfg.get("precision", precision_lib.DEFAULT_PRECISION) in precision_lib.PRECISIONS,
          f"precision must be one of {precision_lib.PRECISIONS}, got {cfg.get('precision')!r}")
    if cfg.generator.path:
        model_lib.check_generator_dir(cfg.generator.path)
    else:
        _need(bool(cfg.generator.preset), f"set generator.path to a converted EG3D checkpoint (python -m "
              f"convert_weights {model_lib.OFFICIAL_CHECKPOINT} DIR), or generator.preset to a random-weight "
              f"preset for testing")
    if cfg.loss.lpips_weight > 0:
        lpips_lib.check_weights_file(cfg.loss.lpips_weights, cfg.loss.lpips_net, knob="loss.lpips_weights")
    smoothing_start = cfg.schedule.get("audio_smoothing_start", -1)
    _need(smoothing_start >= -1, f"schedule.audio_smoothing_start must be -1 (never) or a step >= 0, got "
                                 f"{smoothing_start}")
    _need(smoothing_start < 0 or cfg.model.encoder == "audio",
          f"schedule.audio_smoothing_start={smoothing_start} applies to model.encoder='audio' only (set it to -1)")
    _need("temporal_smoothing" not in cfg.model.encoder_kwargs,
          "model.encoder_kwargs.temporal_smoothing is not a setting: schedule.audio_smoothing_start says from which "
          "step the audio encoder smooths (-1: never)")
    if cfg.model.shared_prior_from:
        _need(Path(cfg.model.shared_prior_from, "checkpoints").is_dir(),
              f"model.shared_prior_from={cfg.model.shared_prior_from!r} has no checkpoints/ directory")


def check_data_matches(cfg, spec: model_lib.ModelSpec, gen_config, datasets) -> None:
    """Raises ConfigError when the data cannot feed this generator and the encoder of `spec`."""
    _need(datasets.resolution == gen_config.img_resolution,
          f"the dataset's frames are {datasets.resolution}px but the generator renders {gen_config.img_resolution}px; "
          f"prepare the data at the generator's resolution (data.resolution)")
    _need(gen_config.img_resolution % cfg.loss.resolution == 0,
          f"loss.resolution={cfg.loss.resolution} must divide the image resolution {gen_config.img_resolution}")
    needed = spec.input_key
    _need(needed in datasets.keys, f"model.encoder={spec.encoder!r} needs '{needed}' in the dataset, which has "
                                   f"{sorted(datasets.keys)}")
    _need(len(datasets.train) >= cfg.optim.batch_size,
          f"only {len(datasets.train)} training frames for batch size {cfg.optim.batch_size}")
