"""A trained run, loaded back for inference: `load_trained(workdir)` -> `TrainedAvatar`.

Everything after training (`hfagp.eval`, `hfagp.render`) goes through this module; it imports no
training code. A workdir written by `train.py` (layout: `hfagp.workdir`) holds `config.json` and
`checkpoints/<step>/`; together with the generator the config names (a converted directory; runs on a
random preset keep theirs in `<workdir>/generator/`) that is all that is needed: no dataset is required
to drive the avatar from coefficient or audio files.

    avatar = load_trained("runs/rgb")
    ws = avatar.latents(inputs)                    # encoder input batch -> W+ [B, num_ws, w_dim]
    out = avatar.synthesis(ws, cameras)            # {'image' [B,R,R,3] in [-1,1], 'image_raw', 'image_depth'}
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import eg3d_flax
from hfagp import datasets as datasets_lib
from hfagp import model as model_lib
from hfagp.workdir import RANDOM_GENERATOR_DIR, RunNotFoundError, load_config, restore_params
from prior.basis import effective_basis


@dataclasses.dataclass
class TrainedAvatar:
    """A trained avatar: encoder + personalized prior + (tuned) generator, with jitted entry points."""

    config: ml_collections.ConfigDict
    spec: model_lib.ModelSpec            # the model section of `config`, typed
    workdir: Path
    step: int
    generator: eg3d_flax.Generator       # carries the run's tuned generator weights
    model: model_lib.AvatarModel
    model_params: dict                   # {'encoder': ..., 'prior': ...}

    @property
    def encoder_kind(self) -> str:
        return self.spec.encoder

    @property
    def input_key(self) -> str:
        """The batch key the encoder reads ('image', 'expression' or 'audio'/'audio_window')."""
        return self.spec.input_key

    @property
    def temporal_smoothing(self) -> bool:
        """Whether this checkpoint's audio forward uses the attention smoothing (the run had reached its start)."""
        return self.model.audio_smoothing

    @property
    def k(self) -> int:
        return self.spec.k

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
        return np.asarray(effective_basis(jnp.asarray(prior["basis"]), self.spec.orthogonality))

    def offset(self) -> np.ndarray:
        return np.asarray(self.model_params["prior"]["offset"])

    def synthesis(self, ws, cameras, **kwargs) -> dict:
        """W+ [B, num_ws, w_dim], cameras [B, 25] -> the generator's outputs (deterministic render)."""
        return self.generator.synthesis(jnp.asarray(ws, jnp.float32), jnp.asarray(cameras, jnp.float32), **kwargs)

    def render(self, inputs, cameras, **kwargs) -> dict:
        """Encoder inputs + cameras [B, 25] -> generator outputs; images NHWC in [-1, 1]."""
        return self.synthesis(self.latents(inputs), cameras, **kwargs)


@functools.lru_cache(maxsize=8)
def _jitted(model: model_lib.AvatarModel):
    coefficients = jax.jit(lambda p, x: model.apply({"params": p}, x, method=model.coefficients))
    latents = jax.jit(lambda p, c: model.apply({"params": p}, c, method=model.latents))
    basis = jax.jit(lambda p, s: model.apply({"params": p}, s, method=model.basis_ws))
    return coefficients, latents, basis


def load_trained(workdir, step: Optional[int] = None, generator_path: Optional[str] = None) -> TrainedAvatar:
    """Load a run: its config, its checkpoint (latest complete, or `step`) and its generator.

    generator_path: where the converted generator is now, if it moved since training (the config
    records the path used then). A random-preset run loads `<workdir>/generator/` if it is there, else
    rebuilds the generator from the preset and its seed.
    """
    workdir = Path(workdir)
    config = load_config(workdir)
    if generator_path:
        config.generator.path = str(generator_path)
    elif not config.generator.path and (workdir / RANDOM_GENERATOR_DIR / "generator.json").is_file():
        config.generator.path = str(workdir / RANDOM_GENERATOR_DIR)  # the run's saved random-preset generator
    step, params = restore_params(workdir, step)
    base = model_lib.build_generator(config.generator)
    shapes = lambda tree: sorted((jax.tree_util.keystr(path), np.shape(leaf))
                                 for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0])
    if shapes(params["generator"]) != shapes(base.variables["params"]):
        raise RunNotFoundError(
            f"{workdir}: the checkpoint's generator weights do not match the generator the config names "
            f"({config.generator.path or config.generator.preset}); pass the right one with generator_path")
    generator = base.replace_variables({"params": params["generator"], "buffers": base.variables["buffers"]})
    spec = model_lib.ModelSpec.from_config(config)
    model = model_lib.avatar_model(spec, generator.config.num_ws, generator.config.w_dim, generator.config.conv_impl,
                                   smoothing=spec.smoothing_after(step))
    return TrainedAvatar(config, spec, workdir, step, generator, model, params["model"])


def load_split(avatar: TrainedAvatar, split: str = "test", max_frames: Optional[int] = None) -> dict:
    """A split of the run's dataset in time order: {'image' [N,R,R,3] in [-1,1], 'label' [N,25], signals}."""
    from avatar_data.pipeline import load_eval_frames

    _check_split(split)
    datasets = datasets_lib.build_datasets(avatar.config, avatar.workdir)
    return load_eval_frames(getattr(datasets, split), max_frames=max_frames)


def load_video(avatar: TrainedAvatar) -> dict:
    """Every frame of the run's video (the train and test splits merged), in time order, as `load_split`."""
    from avatar_data.pipeline import load_eval_frames

    datasets = datasets_lib.build_datasets(avatar.config, avatar.workdir)
    splits = [load_eval_frames(getattr(datasets, split)) for split in ("train", "test")]
    keys = set(splits[0]) & set(splits[1])
    merged = {k: np.concatenate([s[k] for s in splits]) for k in keys}
    order = np.argsort(merged["frame_index"], kind="stable")
    return {k: v[order] for k, v in merged.items()}


def load_split_cameras(avatar: TrainedAvatar, split: str = "test") -> np.ndarray:
    """float32 [N, 25]: the cameras of a split of the run's dataset in time order, without its frames."""
    _check_split(split)
    return datasets_lib.split_cameras(avatar.config, avatar.workdir, split)


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def world_dir(avatar: TrainedAvatar) -> Optional[Path]:
    """The world with ground truth a run was trained on, else None."""
    return datasets_lib.world_dir_of(avatar.config, avatar.workdir)


__all__ = ["RunNotFoundError", "TrainedAvatar", "load_config", "load_split", "load_split_cameras", "load_trained",
           "load_video", "world_dir"]
