"""A trained run, loaded back for inference: `load_trained(workdir)` -> `TrainedAvatar`.

Everything after training (`hfagp.evaluate`, `hfagp.render`, `hfagp.pti`) goes through this module.
A workdir written by `train.py` holds `config.json` and `checkpoints/<step>/`; together with the
generator the config names (a converted directory; runs on a random preset keep theirs in
`<workdir>/generator/`) that is
all that is needed: no dataset is required to drive the avatar from coefficient or audio files.

    avatar = load_trained("runs/rgb")
    ws = avatar.latents(inputs)                    # encoder input batch -> W+ [B, num_ws, w_dim]
    out = avatar.synthesis(ws, cameras)            # {'image' [B,R,R,3] in [-1,1], 'image_raw', 'image_depth'}
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import eg3d_flax
from hfagp.model import ENCODER_INPUTS, AvatarPrior, avatar_prior_from_config
from prior.basis import effective_basis


class RunNotFoundError(FileNotFoundError):
    """The workdir is not a training run (no config.json or no complete checkpoint)."""


def load_config(workdir) -> ml_collections.ConfigDict:
    """The config a run was trained with (`<workdir>/config.json`)."""
    path = Path(workdir) / "config.json"
    if not path.is_file():
        raise RunNotFoundError(f"{workdir} is not a training workdir: {path} is missing (train.py writes it)")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RunNotFoundError(f"{path} is not valid JSON: {e}") from e
    missing = [key for key in ("generator", "model", "data", "loss") if not isinstance(values.get(key), dict)]
    if missing:
        raise RunNotFoundError(f"{path} is not a training config: it lacks the sections {missing}")
    return ml_collections.ConfigDict(values)


def checkpoint_steps(workdir) -> list[int]:
    """Steps of the complete checkpoints in `<workdir>/checkpoints` (unfinished temp dirs excluded)."""
    ckpt_dir = Path(workdir) / "checkpoints"
    if not ckpt_dir.is_dir():
        return []
    return sorted(int(p.name) for p in ckpt_dir.iterdir() if p.is_dir() and p.name.isdigit())


def restore_params(workdir, step: Optional[int] = None) -> tuple[int, dict]:
    """(step, params) of checkpoint `step` (default: the latest complete one)."""
    import orbax.checkpoint as ocp

    steps = checkpoint_steps(workdir)
    if not steps:
        raise RunNotFoundError(f"{workdir} has no complete checkpoint under {Path(workdir) / 'checkpoints'}")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise RunNotFoundError(f"{workdir} has no checkpoint for step {step}; available: {steps}")
    manager = ocp.CheckpointManager(Path(workdir).absolute() / "checkpoints", item_names=("state", "data"))
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    state = restored["state"]
    params = state["params"] if isinstance(state, dict) else state.params
    return step, jax.tree_util.tree_map(np.asarray, params)


@dataclasses.dataclass
class TrainedAvatar:
    """A trained avatar: encoder + personalized prior + (tuned) generator, with jitted entry points."""

    config: ml_collections.ConfigDict
    workdir: Path
    step: int
    generator: eg3d_flax.Generator       # carries the run's tuned generator weights
    model: AvatarPrior
    model_params: dict                   # {'encoder': ..., 'prior': ...}

    @property
    def encoder_kind(self) -> str:
        return self.config.model.encoder

    @property
    def input_key(self) -> str:
        """The batch key the encoder reads ('image', 'expression' or 'audio'/'audio_window')."""
        if self.encoder_kind == "audio" and self.temporal_smoothing:
            return "audio_window"
        return ENCODER_INPUTS[self.encoder_kind]

    @property
    def temporal_smoothing(self) -> bool:
        return bool(dict(self.config.model.encoder_kwargs).get("temporal_smoothing", False))

    @property
    def k(self) -> int:
        return int(self.config.model.k)

    def coefficients(self, inputs) -> jax.Array:
        """Encoder inputs [B, ...] -> coefficients [B, k]."""
        return _jitted(self.model)[0](self.model_params, jnp.asarray(inputs, jnp.float32))

    def latents_from_coefficients(self, coeffs) -> jax.Array:
        """[B, k] -> W+ [B, num_ws, w_dim]."""
        return _jitted(self.model)[1](self.model_params, jnp.asarray(coeffs, jnp.float32))

    def latents(self, inputs) -> jax.Array:
        """Encoder inputs [B, ...] -> W+ [B, num_ws, w_dim]."""
        return self.latents_from_coefficients(self.coefficients(inputs))

    def basis_ws(self, scale: float) -> jax.Array:
        """[k, num_ws, w_dim]: offset + scale * (effective) basis row i, the official basis visualization."""
        return _jitted(self.model)[2](self.model_params, float(scale))

    def basis_matrix(self) -> np.ndarray:
        """The effective basis rows [k, num_ws*w_dim] (orthonormal for 'qr')."""
        prior = self.model_params["prior"]
        return np.asarray(effective_basis(jnp.asarray(prior["basis"]), self.config.model.orthogonality))

    def offset(self) -> np.ndarray:
        return np.asarray(self.model_params["prior"]["offset"])

    def synthesis(self, ws, cameras, **kwargs) -> dict:
        """W+ [B, num_ws, w_dim], cameras [B, 25] -> the generator's outputs (deterministic render)."""
        return self.generator.synthesis(jnp.asarray(ws, jnp.float32), jnp.asarray(cameras, jnp.float32), **kwargs)

    def render(self, inputs, cameras, **kwargs) -> dict:
        """Encoder inputs + cameras [B, 25] -> generator outputs; images NHWC in [-1, 1]."""
        return self.synthesis(self.latents(inputs), cameras, **kwargs)


@functools.lru_cache(maxsize=8)
def _jitted(model: AvatarPrior):
    coefficients = jax.jit(lambda p, x: model.apply({"params": p}, x, method=model.coefficients))
    latents = jax.jit(lambda p, c: model.apply({"params": p}, c, method=model.latents))
    basis = jax.jit(lambda p, s: model.apply({"params": p}, s, method=model.basis_ws))
    return coefficients, latents, basis


def load_trained(workdir, step: Optional[int] = None, generator_path: Optional[str] = None) -> TrainedAvatar:
    """Load a run: its config, its checkpoint (latest complete, or `step`) and its generator.

    generator_path: where the converted generator is now, if it moved since training (the config
    records the path used then). A random-preset run loads `<workdir>/generator/` (or, for runs
    made before that was written, rebuilds the generator from the preset seed).
    """
    from hfagp.train_lib import RANDOM_GENERATOR_DIR, build_generator

    workdir = Path(workdir)
    config = load_config(workdir)
    if generator_path:
        config.generator.path = str(generator_path)
    elif not config.generator.path and (workdir / RANDOM_GENERATOR_DIR / "generator.json").is_file():
        config.generator.path = str(workdir / RANDOM_GENERATOR_DIR)  # the run's saved random-preset generator
    step, params = restore_params(workdir, step)
    base = build_generator(config.generator)
    shapes = lambda tree: sorted((jax.tree_util.keystr(path), np.shape(leaf))
                                 for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0])
    if shapes(params["generator"]) != shapes(base.variables["params"]):
        raise RunNotFoundError(
            f"{workdir}: the checkpoint's generator weights do not match the generator the config names "
            f"({config.generator.path or config.generator.preset}); pass the right one with generator_path")
    generator = base.replace_variables({"params": params["generator"], "buffers": base.variables["buffers"]})
    model = avatar_prior_from_config(config.model, generator.config.num_ws, generator.config.w_dim)
    return TrainedAvatar(config, workdir, step, generator, model, params["model"])


def load_split(avatar: TrainedAvatar, split: str = "test", max_frames: Optional[int] = None) -> dict:
    """A split of the run's dataset in time order: {'image' [N,R,R,3] in [-1,1], 'label' [N,25], signals}."""
    from avatar_data.pipeline import load_eval_frames
    from hfagp import data as data_lib

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    datasets = data_lib.build_datasets(avatar.config, str(avatar.workdir), avatar.generator)
    return load_eval_frames(getattr(datasets, split), max_frames=max_frames)


def world_dir(avatar: TrainedAvatar) -> Optional[Path]:
    """The synthetic world of a run trained on one (ground truth lives there), else None."""
    if avatar.config.data.source != "synthetic":
        return None
    return Path(avatar.config.data.synthetic.dir or avatar.workdir / "synthetic_world")


def batched(fn, arrays: list, batch_size: int, desc: Optional[str] = None, progress: bool = True) -> Any:
    """Apply `fn(*batch_arrays) -> np.ndarray | dict` over leading-axis batches of fixed size.

    The last batch is padded by repeating its last row (fixed shapes: one compilation) and the
    padding is dropped from the outputs. Returns the concatenated outputs (array or dict of arrays).
    """
    from tqdm import tqdm

    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"batched: arrays of different lengths {[len(a) for a in arrays]}")
    outs = []
    starts = range(0, n, batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress or desc is None, unit="batch"):
        chunk = [np.asarray(a[start:start + batch_size]) for a in arrays]
        pad = batch_size - len(chunk[0])
        if pad:
            chunk = [np.concatenate([c, np.repeat(c[-1:], pad, 0)]) for c in chunk]
        out = jax.device_get(fn(*chunk))
        keep = batch_size - pad
        outs.append({k: np.asarray(v)[:keep] for k, v in out.items()} if isinstance(out, dict)
                    else np.asarray(out)[:keep])
    if isinstance(outs[0], dict):
        return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
    return np.concatenate(outs)


__all__ = ["RunNotFoundError", "TrainedAvatar", "batched", "checkpoint_steps", "load_config", "load_split",
           "load_trained", "restore_params", "world_dir"]
