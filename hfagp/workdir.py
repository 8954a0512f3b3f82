"""The layout of a training workdir, and reading it back: config, checkpoint steps, parameters.

    <workdir>/config.json                  the run's config (ml_collections JSON)
    <workdir>/checkpoints/<step>/          orbax checkpoints: items 'state' (TrainState) and 'data'
                                           (the input iterator's position)
    <workdir>/generator/                   the initial generator of a random-preset run
    <workdir>/metrics.jsonl                one JSON line per logged training step
    <workdir>/eval_metrics.jsonl           one JSON line per in-training evaluation
    <workdir>/initial_metrics.json         the evaluation before the first step
    <workdir>/final_metrics.json           the evaluation after the last step
    <workdir>/samples/step_<N>/*.png       in-training pictures
    <workdir>/tensorboard/                 TensorBoard event files
    <workdir>/synthetic_world/, head_world/  the world a run made for itself (data.source 'synthetic', 'heads')
    <workdir>/prepared_data/               a folder or video prepared once as a tfds dataset
    <workdir>/eval/, renders/              outputs of `hfagp.eval` and `hfagp.render`
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import ml_collections
import numpy as np

from hfagp_common.cli import UserError

CONFIG_FILE = "config.json"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_ITEMS = ("state", "data")
RANDOM_GENERATOR_DIR = "generator"
METRICS_FILE = "metrics.jsonl"
EVAL_METRICS_FILE = "eval_metrics.jsonl"
INITIAL_METRICS_FILE = "initial_metrics.json"
FINAL_METRICS_FILE = "final_metrics.json"
SAMPLES_DIR = "samples"
TENSORBOARD_DIR = "tensorboard"
SYNTHETIC_WORLD_DIR = "synthetic_world"
HEAD_WORLD_DIR = "head_world"
PREPARED_DATA_DIR = "prepared_data"
EVAL_DIR = "eval"
RENDERS_DIR = "renders"


class RunNotFoundError(UserError, FileNotFoundError):
    """The workdir is not a training run (no config.json or no complete checkpoint)."""


def load_config(workdir) -> ml_collections.ConfigDict:
    """The config a run was trained with (`<workdir>/config.json`)."""
    path = Path(workdir) / CONFIG_FILE
    if not path.is_file():
        raise RunNotFoundError(f"{workdir} is not a training workdir: {path} is missing (train.py writes it)")
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunNotFoundError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(values, dict):
        raise RunNotFoundError(f"{path} is not a training config (not a JSON object)")
    missing = [key for key in ("generator", "model", "data", "loss") if not isinstance(values.get(key), dict)]
    if missing:
        raise RunNotFoundError(f"{path} is not a training config: it lacks the sections {missing}")
    return ml_collections.ConfigDict(values)


def checkpoint_dir(workdir) -> Path:
    return Path(workdir).absolute() / CHECKPOINTS_DIR


def checkpoint_steps(workdir) -> list[int]:
    """Steps of the complete checkpoints in `<workdir>/checkpoints` (unfinished temporary dirs excluded)."""
    directory = checkpoint_dir(workdir)
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


def restore_params(workdir, step: Optional[int] = None) -> tuple[int, dict]:
    """(step, params as numpy) of checkpoint `step` (default: the latest complete one); no template needed."""
    import jax
    import orbax.checkpoint as ocp

    steps = checkpoint_steps(workdir)
    if not steps:
        raise RunNotFoundError(f"{workdir} has no complete checkpoint under {checkpoint_dir(workdir)}")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise RunNotFoundError(f"{workdir} has no checkpoint for step {step}; available: {steps}")
    manager = ocp.CheckpointManager(checkpoint_dir(workdir), item_names=CHECKPOINT_ITEMS)
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    state = restored["state"]
    params = state["params"] if isinstance(state, dict) else state.params
    return step, jax.tree_util.tree_map(np.asarray, params)


def use_compilation_cache(config) -> None:
    """Turns on the persistent XLA cache a config names (`compilation_cache_dir`; "" disables), unless one is
    already set: restarts and the post-training tools then load compiled programs instead of recompiling."""
    import jax

    cache = config.get("compilation_cache_dir", "")
    if cache and not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(Path(cache).expanduser()))


__all__ = ["CHECKPOINTS_DIR", "CHECKPOINT_ITEMS", "CONFIG_FILE", "RANDOM_GENERATOR_DIR", "RunNotFoundError",
           "checkpoint_dir", "checkpoint_steps", "load_config", "restore_params", "use_compilation_cache"]
