"""The HFA-GP model: encoder f -> k coefficients -> personalized prior -> W+ latents -> EG3D generator.

    ws = PersonalizedPrior(f(x)),  image = G.synthesis(ws, camera)

`AvatarModel` holds the encoder and the prior; its params are {'encoder': ..., 'prior': ...}. The
generator's params sit beside them in the train state under 'generator'. This module is the one home of
what a config says about the model: `ModelSpec` (built once from a training config by each program) says which
batch entry drives the encoder (`input_key`) and when the audio encoder smooths over neighbouring frames
(`smoothing_start`); `avatar_model` builds the model it describes, `build_generator` the generator of a config's
`generator` section, and `init_params` initialises both.

Audio smoothing (AD-NeRF's attention over `smoothing_window` neighbouring frames, as the official audio
trainer): with `schedule.audio_smoothing_start` = S the attention net exists from the start (params
`['encoder']['attention']`), the encoder reads 'audio_window', and training steps 0..S-1 use the centre
window's features (the official `nosmo_iters` phase) while steps >= S use the attention-smoothed ones; the
freeze schedule (`hfagp.train.optim`) starts the attention net's Adam at S. A checkpoint after N updates
renders with smoothing iff its last update did (N > S).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Optional

import flax
import flax.linen as nn
import jax

import eg3d_flax
from encoders import make_encoder
from hfagp_common.cli import ConfigError
from prior.basis import PersonalizedPrior, init_offset_from_w_avg

# Which batch entry drives each encoder kind (batch layouts: avatar_data.pipeline).
ENCODER_INPUTS = {"rgb": "image", "expression": "expression", "audio": "audio"}
# The audio encoder with AD-NeRF's attention smoothing reads a window of neighbouring frames' features.
AUDIO_WINDOW_KEY = "audio_window"
AUDIO_SMOOTHING_WINDOW = 8
# The EG3D checkpoint the official code fine-tunes (`headnerf.load_G_official`), and the other released FFHQ one
# with the same architecture (EG3D's docs/models.md: the same train.py command but for the data and gpc_reg_prob).
OFFICIAL_CHECKPOINT = "ffhqrebalanced512-128.pkl"
ALTERNATIVE_CHECKPOINT = "ffhq512-128.pkl"


class AvatarModel(nn.Module):
    """Driving signal -> W+ latents [B, num_ws, w_dim] (encoder + personalized prior)."""

    encoder_kind: str
    k: int
    num_ws: int
    w_dim: int
    orthogonality: str = "qr"
    prior_init: str = "official"
    encoder_kwargs: Any = None  # a tuple of (name, value) pairs (hashable); see `avatar_model`
    # Audio encoder with an attention net: True uses the attention-smoothed feature, False the centre window's.
    audio_smoothing: bool = False

    def setup(self):
        self.encoder = make_encoder(self.encoder_kind, self.k, **dict(self.encoder_kwargs or ()))
        self.prior = PersonalizedPrior(self.num_ws, self.w_dim, k=self.k, orthogonality=self.orthogonality,
                                       init_mode=self.prior_init)

    def coefficients(self, inputs: jax.Array) -> jax.Array:
        """Encoder inputs [B, ...] -> coefficients [B, k]."""
        if self.encoder_kind == "audio":
            return self.encoder(inputs, smooth=self.audio_smoothing)
        return self.encoder(inputs)

    def latents(self, coeffs: jax.Array) -> jax.Array:
        """Coefficients [B, k] -> W+ [B, num_ws, w_dim]."""
        return self.prior(coeffs)

    def penalty(self) -> jax.Array:
        return self.prior.penalty()

    def basis_ws(self, scale: float) -> jax.Array:
        return self.prior.basis_ws(scale)

    def __call__(self, inputs: jax.Array) -> jax.Array:
        return self.prior(self.coefficients(inputs))


def smoothing_start(config) -> Optional[int]:
    """The first (0-based) training step whose forward uses the audio encoder's attention smoothing, or None.

    config: a training config (reads `model.encoder`, `model.encoder_kwargs` and `schedule`):
    `schedule.audio_smoothing_start` -1, or >= `schedule.total_steps`, means never. Workdirs written before that
    field existed say `model.encoder_kwargs.temporal_smoothing`; True there means smoothing from step 0.
    """
    model_cfg, schedule = config.model, config.get("schedule")
    if model_cfg.encoder != "audio":
        return None
    if schedule is None or "audio_smoothing_start" not in schedule:
        return 0 if dict(model_cfg.encoder_kwargs).get("temporal_smoothing", False) else None
    start = int(schedule.audio_smoothing_start)
    if start < 0 or start >= int(schedule.total_steps):
        return None
    return start


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the model layer reads of a training config; each program builds it once (`ModelSpec.from_config`).

    encoder: 'rgb', 'expression' or 'audio' (`model.encoder`); k: coefficients per frame (`model.k`);
    orthogonality, prior_init: the personalized prior's basis mode and initialisation (`model.orthogonality`,
    `model.prior_init`); encoder_kwargs: `model.encoder_kwargs` as sorted (name, value) pairs, without the
    'temporal_smoothing' of old config.json files; smoothing_start: the first (0-based) training step whose forward
    uses the audio encoder's attention smoothing, None for never (see the module doc).
    """

    encoder: str
    k: int
    orthogonality: str = "qr"
    prior_init: str = "official"
    encoder_kwargs: tuple = ()
    smoothing_start: Optional[int] = None

    @classmethod
    def from_config(cls, config) -> "ModelSpec":
        """The spec of a training config: its `model` section and the smoothing start (`smoothing_start`)."""
        model_cfg = config.model
        kwargs = dict(model_cfg.encoder_kwargs)
        kwargs.pop("temporal_smoothing", None)
        return cls(encoder=model_cfg.encoder, k=int(model_cfg.k), orthogonality=model_cfg.orthogonality,
                   prior_init=model_cfg.prior_init, encoder_kwargs=tuple(sorted(kwargs.items())),
                   smoothing_start=smoothing_start(config))

    @property
    def temporal_smoothing(self) -> bool:
        """Whether the audio encoder has AD-NeRF's attention net (and reads 'audio_window'): a start is set."""
        return self.smoothing_start is not None

    def smoothing_at(self, step: int) -> bool:
        """Whether the forward of (0-based) training step `step` uses the attention-smoothed audio features."""
        return self.smoothing_start is not None and step >= self.smoothing_start

    def smoothing_after(self, num_updates: int) -> bool:
        """Whether the params after `num_updates` updates render with smoothing: their last update did."""
        return num_updates > 0 and self.smoothing_at(num_updates - 1)

    @property
    def smoothing_window(self) -> int:
        """Frames in the audio encoder's smoothing window (AD-NeRF's `smo_size`, default 8)."""
        return int(dict(self.encoder_kwargs).get("smoothing_window", AUDIO_SMOOTHING_WINDOW))

    @property
    def input_key(self) -> str:
        """The batch key the encoder reads: 'image', 'expression', 'audio' or 'audio_window' (with an attention net)."""
        if self.encoder not in ENCODER_INPUTS:
            raise ConfigError(f"model.encoder must be one of {tuple(ENCODER_INPUTS)}, got {self.encoder!r}")
        return AUDIO_WINDOW_KEY if self.temporal_smoothing else ENCODER_INPUTS[self.encoder]

    def encoder_inputs(self, batch: Mapping[str, Any]) -> Any:
        """The batch entry the encoder reads."""
        key = self.input_key
        if key not in batch:
            raise KeyError(f"the {self.encoder!r} encoder needs batch[{key!r}], but the data provides {sorted(batch)}")
        return batch[key]


def avatar_model(spec: ModelSpec, num_ws: int, w_dim: int, conv_impl: str = "xla",
                 smoothing: bool = False) -> AvatarModel:
    """The `AvatarModel` of `spec`.

    conv_impl: the RGB encoder's convolution kernel (concrete). smoothing: the forward uses the audio attention
    net (see `ModelSpec.smoothing_at` / `smoothing_after`); the params are the same either way.
    """
    kwargs = dict(spec.encoder_kwargs)
    if spec.encoder == "rgb":
        kwargs.setdefault("conv_impl", conv_impl)
    if spec.encoder == "audio":
        kwargs["temporal_smoothing"] = spec.temporal_smoothing
    if smoothing and not spec.temporal_smoothing:
        raise ConfigError("the forward cannot use audio smoothing: the config sets no schedule.audio_smoothing_start")
    return AvatarModel(
        encoder_kind=spec.encoder, k=spec.k, num_ws=num_ws, w_dim=w_dim, orthogonality=spec.orthogonality,
        prior_init=spec.prior_init, encoder_kwargs=tuple(sorted(kwargs.items())), audio_smoothing=bool(smoothing))


def check_generator_dir(path) -> None:
    """Raises ConfigError unless `path` is a converted generator directory."""
    if not (Path(path) / "generator.json").is_file():
        raise ConfigError(
            f"generator.path={str(path)!r} is not a converted generator directory; convert the official "
            f"checkpoint first: python -m convert_weights {OFFICIAL_CHECKPOINT} {path} (or {ALTERNATIVE_CHECKPOINT})")


def build_generator(gen_cfg) -> eg3d_flax.Generator:
    """The generator a config's `generator` section names: a converted directory (`path`) or a random-weight
    preset (`preset`, `preset_seed`), with the run-time options (dtype, remat, kernels, rendering size)."""
    overrides = {"compute_dtype": gen_cfg.compute_dtype, "remat": gen_cfg.get("remat", "none"),
                 "conv_impl": gen_cfg.get("conv_impl", "auto"), "upconv_impl": gen_cfg.get("upconv_impl", "auto")}
    if gen_cfg.neural_rendering_resolution:
        overrides["neural_rendering_resolution"] = int(gen_cfg.neural_rendering_resolution)
    if gen_cfg.path:
        check_generator_dir(gen_cfg.path)
        return eg3d_flax.load_generator(gen_cfg.path, config_overrides=overrides)
    if not gen_cfg.preset:
        raise ConfigError(f"set generator.path to a converted EG3D checkpoint (python -m convert_weights "
                          f"{OFFICIAL_CHECKPOINT} DIR), or generator.preset to a random-weight preset for testing")
    return eg3d_flax.random_generator(eg3d_flax.preset(gen_cfg.preset, **overrides), seed=gen_cfg.preset_seed)


def init_params(model: AvatarModel, generator: eg3d_flax.Generator, sample_inputs, key: jax.Array) -> dict:
    """{'model': {'encoder', 'prior'}, 'generator': the generator's params}, the prior initialised as
    `model.prior_init` says ('w_avg': the offset is the generator's w_avg on every layer)."""
    params = flax.core.unfreeze(model.init(key, sample_inputs)["params"])
    if model.prior_init == "w_avg":
        w_avg = generator.variables["buffers"]["backbone"]["mapping"]["w_avg"]
        params["prior"] = init_offset_from_w_avg(params["prior"], w_avg)
    return {"model": params, "generator": generator.variables["params"]}


__all__ = ["ALTERNATIVE_CHECKPOINT", "AUDIO_WINDOW_KEY", "AvatarModel", "ENCODER_INPUTS", "ModelSpec",
           "OFFICIAL_CHECKPOINT", "avatar_model", "build_generator", "check_generator_dir", "init_params",
           "smoothing_start"]
