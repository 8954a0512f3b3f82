"""Config validation that runs before anything is built or compiled, with messages naming the knob."""

from __future__ import annotations

from pathlib import Path

ENCODERS = ("rgb", "expression", "audio")
DATA_SOURCES = ("synthetic", "folder")
ORTHOGONALITY = ("qr", "penalty", "none")
PRIOR_INITS = ("official", "w_avg")


class ConfigError(ValueError):
    pass


def check_config(cfg) -> None:
    def need(cond, msg):
        if not cond:
            raise ConfigError(msg)

    need(cfg.model.encoder in ENCODERS, f"model.encoder must be one of {ENCODERS}, got {cfg.model.encoder!r}")
    need(cfg.model.orthogonality in ORTHOGONALITY,
         f"model.orthogonality must be one of {ORTHOGONALITY}, got {cfg.model.orthogonality!r}")
    need(cfg.model.prior_init in PRIOR_INITS, f"model.prior_init must be one of {PRIOR_INITS}")
    need(cfg.model.k > 0, "model.k must be positive")
    need(cfg.data.source in DATA_SOURCES, f"data.source must be one of {DATA_SOURCES}, got {cfg.data.source!r}")
    if cfg.data.source == "folder":
        need(bool(cfg.data.folder), "data.source='folder' needs data.folder=PATH")
        need(Path(cfg.data.folder).is_dir(), f"data.folder={cfg.data.folder!r} is not a directory")
    need(cfg.optim.batch_size > 0, "optim.batch_size must be positive")
    need(cfg.schedule.total_steps > 0, "schedule.total_steps must be positive")
    need(cfg.schedule.generator_tuning_start >= 0, "schedule.generator_tuning_start must be >= 0")
    need(cfg.log_every > 0 and cfg.eval_every > 0 and cfg.checkpoint.every > 0,
         "log_every, eval_every and checkpoint.every must be positive")
    need(cfg.loss.lpips_net in ("alex", "vgg"), "loss.lpips_net must be 'alex' or 'vgg'")
    need(bool(cfg.generator.path) or bool(cfg.generator.preset),
         "set generator.path to a converted EG3D checkpoint (python -m convert_weights ffhq512-128.pkl DIR), "
         "or generator.preset to a random-weight preset for testing")
    if cfg.generator.path:
        need((Path(cfg.generator.path) / "generator.json").is_file(),
             f"generator.path={cfg.generator.path!r} is not a converted generator directory "
             f"(make one with `python -m convert_weights ffhq512-128.pkl DIR`)")
    if cfg.loss.lpips_weight > 0:
        need(bool(cfg.loss.lpips_weights) and Path(cfg.loss.lpips_weights).is_file(),
             f"loss.lpips_weight={cfg.loss.lpips_weight} but loss.lpips_weights={cfg.loss.lpips_weights!r} is not "
             f"a file: make LPIPS weights once with `python -m hfagp.lpips_convert` (needs torch + internet) "
             f"or set --config.loss.lpips_weight=0")
    if cfg.model.shared_prior_from:
        need(Path(cfg.model.shared_prior_from, "checkpoints").is_dir(),
             f"model.shared_prior_from={cfg.model.shared_prior_from!r} has no checkpoints/ directory")


def check_data_matches(cfg, gen_config, datasets) -> None:
    if datasets.resolution != gen_config.img_resolution:
        raise ConfigError(
            f"the dataset's frames are {datasets.resolution}px but the generator renders "
            f"{gen_config.img_resolution}px; prepare the data at the generator's resolution (data.resolution)")
    if gen_config.img_resolution % cfg.loss.resolution:
        raise ConfigError(f"loss.resolution={cfg.loss.resolution} must divide the image resolution "
                          f"{gen_config.img_resolution}")
    needed = {"rgb": "image", "expression": "expression", "audio": "audio"}[cfg.model.encoder]
    if needed not in datasets.keys:
        raise ConfigError(f"model.encoder={cfg.model.encoder!r} needs '{needed}' in the dataset, which has "
                          f"{sorted(datasets.keys)}")
    if len(datasets.train) < cfg.optim.batch_size:
        raise ConfigError(f"only {len(datasets.train)} training frames for batch size {cfg.optim.batch_size}")
