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
    <workdir>/synthetic_world/, head_world/  the run's world, made by `hfagp.make_world` (data.source 'synthetic', 'heads')
    <workdir>/prepared_data/               a folder or video prepared once as a tfds dataset
    <workdir>/eval/, renders/              outputs of `hfagp.eval` and `hfagp.render`
    <workdir>/.lock                        held (flock) by the process training in this workdir
    <workdir>/corrupt_checkpoints/<step>/  checkpoints found unreadable on resume, moved aside (never deleted)

A `hfagp.pretrain` workdir has the same config.json / checkpoints/ / metrics.jsonl names but another config
(sections 'validation' and 'export'); `load_config` tells the two apart.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator, Optional

import ml_collections
import numpy as np

from configs import common as configs_common
from hfagp_common import config_schema
from hfagp_common.cli import ConfigError, UserError, first_line

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
LOCK_FILE = ".lock"
CORRUPT_CHECKPOINTS_DIR = "corrupt_checkpoints"
# Sections only a `hfagp.pretrain` config has (configs/pretrain_heads.py), and ones every training config has.
PRETRAIN_SECTIONS = ("validation", "export")
TRAINING_SECTIONS = ("generator", "model", "data", "loss")


# What a training workdir holds (the layout above): before its first config.json, a directory with only these is
# a training workdir being made (`hfagp.make_world` writes the world first).
TRAINING_LAYOUT = frozenset({CONFIG_FILE, CHECKPOINTS_DIR, RANDOM_GENERATOR_DIR, METRICS_FILE, EVAL_METRICS_FILE,
                             INITIAL_METRICS_FILE, FINAL_METRICS_FILE, SAMPLES_DIR, TENSORBOARD_DIR,
                             SYNTHETIC_WORLD_DIR, HEAD_WORLD_DIR, PREPARED_DATA_DIR, EVAL_DIR, RENDERS_DIR, LOCK_FILE,
                             CORRUPT_CHECKPOINTS_DIR})


# The program that makes each kind of output directory (`check_output_dir`).
PROGRAMS = {"train": "train.py", "pretrain": "hfagp.pretrain", "experiments": "hfagp.experiments",
            "eval": "hfagp.eval"}


class RunNotFoundError(UserError, FileNotFoundError):
    """The workdir is not a training run (no config.json or no complete checkpoint)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint exists but cannot be read (damaged) or does not fit the model it is read for."""


class WorkdirBusyError(UserError, RuntimeError):
    """Another process holds the workdir's lock (it is training there now)."""


def workdir_kind(values) -> Optional[str]:
    """'train' (a train.py config), 'pretrain' (a hfagp.pretrain config) or None, from config.json's values."""
    if not isinstance(values, dict):
        return None
    if all(isinstance(values.get(key), dict) for key in PRETRAIN_SECTIONS):
        return "pretrain"
    if all(isinstance(values.get(key), dict) for key in TRAINING_SECTIONS):
        return "train"
    return None


def check_output_dir(path, kind: str, layout, flag: str = "--workdir") -> None:
    """Raises ConfigError unless `path` may become (or already is) an output directory of `kind`: it does not
    exist, or is an empty directory, or holds a config.json of that kind (`workdir_kind`; 'train' and 'pretrain'),
    or holds nothing but entries of `layout` (the names that kind writes). Anything else (a file, the repository,
    another program's workdir, a folder of the user's) is refused before a byte is written."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise ConfigError(f"{flag} {path} exists and is not a directory")
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return
    try:
        values = read_config_values(path) if CONFIG_FILE in entries else None
    except RunNotFoundError:  # a damaged config.json: what to do with the run is the resuming program's decision
        values = None
    found = workdir_kind(values)
    if found == kind:
        return
    if found is not None:
        raise ConfigError(f"{flag} {path} is a {PROGRAMS[found]} workdir, not a {PROGRAMS.get(kind, kind)} one; use "
                          f"another directory")
    foreign = [name for name in entries if name not in layout]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ConfigError(f"{flag} {path} is neither empty nor a {PROGRAMS.get(kind, kind)} output directory (it "
                          f"holds {shown}); name a new or empty directory")


def read_config_values(workdir) -> Optional[dict]:
    """config.json of a workdir as plain JSON values; None if there is none. Raises RunNotFoundError if it is
    not a JSON object (e.g. truncated)."""
    path = Path(workdir) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunNotFoundError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(values, dict):
        raise RunNotFoundError(f"{path} is not a training config (not a JSON object)")
    return values


def load_config(workdir) -> ml_collections.ConfigDict:
    """The config a run was trained with (`<workdir>/config.json`), its values checked against the training
    config's schema (a key added since the run may be missing)."""
    path = Path(workdir) / CONFIG_FILE
    if not Path(workdir).is_dir():
        raise RunNotFoundError(f"{workdir} is not a training workdir: no such directory")
    values = read_config_values(workdir)
    if values is None:
        raise RunNotFoundError(f"{workdir} is not a training workdir: {path} is missing (train.py writes it)")
    if workdir_kind(values) == "pretrain":
        raise RunNotFoundError(f"{workdir} is a hfagp.pretrain workdir, not a train.py run (its exported generator "
                               f"is {values['export'].get('dir') or Path(workdir) / RANDOM_GENERATOR_DIR})")
    missing = [key for key in TRAINING_SECTIONS if not isinstance(values.get(key), dict)]
    if missing:
        raise RunNotFoundError(f"{path} is not a training config: it lacks the sections {missing}")
    config_schema.check_saved(values, configs_common.SCHEMA, configs_common.RELATIONS, source=f"{path}: ")
    return ml_collections.ConfigDict(values)


@contextlib.contextmanager
def lock(workdir, command: str = "") -> Iterator[Path]:
    """Holds `<workdir>/.lock` (an exclusive `flock`) for the block: a second process locking the same workdir
    gets WorkdirBusyError at once, naming the holder. The kernel releases the lock when the holder exits,
    however it ends (SIGKILL included), so a stale lock file is harmless. `workdir` must exist."""
    import fcntl

    path = Path(workdir) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "unknown"
            raise WorkdirBusyError(f"{workdir} is in use by another process ({holder}); wait for it to end or use "
                                   f"another workdir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}{': ' + command if command else ''}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the flock


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
    try:
        restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    except Exception as e:  # orbax / tensorstore / json errors of a damaged directory (after Ctrl-C, `cli.run`
        # reports the interrupt, not this)
        older = [s for s in steps if s < step]
        raise CheckpointError(f"checkpoint {step} in {checkpoint_dir(workdir)} cannot be read ({type(e).__name__}: "
                              f"{first_line(e, 300)})" + (f"; an older one: --step {older[-1]}" if older else "")) from e
    finally:
        # Its reads are finished or failed: stop its background threads now, not at interpreter exit (where a
        # failed read's pending tensorstore callbacks find the event loop closed and print tracebacks).
        manager.close()
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


__all__ = ["CHECKPOINTS_DIR", "CHECKPOINT_ITEMS", "CONFIG_FILE", "CORRUPT_CHECKPOINTS_DIR", "CheckpointError",
           "LOCK_FILE", "RANDOM_GENERATOR_DIR", "RunNotFoundError", "WorkdirBusyError", "checkpoint_dir",
           "checkpoint_steps", "load_config", "lock", "read_config_values", "restore_params",
           "use_compilation_cache", "workdir_kind"]
