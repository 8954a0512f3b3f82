"""Audio encoder f_a: DeepSpeech windows [B, 16, 29] -> k coefficients.

Ported from the official ``trainer_audio.py`` / ``networks/headnerf.py``, which reuse AD-NeRF's
``AudioNet`` and ``AudioAttNet`` unchanged, followed by ``Weights_3DMM`` with a 64-d input:

  AudioNet (per window, time axis = the 16 DeepSpeech frames, channels = 29 characters):
    Conv1d 29->32, 32->32, 32->64, 64->64 (kernel 3, stride 2, padding 1; 16 -> 8 -> 4 -> 2 -> 1),
    each followed by LeakyReLU(0.02); Linear 64->64, LeakyReLU(0.02), Linear 64->audio_dim (64).
  AudioAttNet (temporal smoothing over T = 8 neighbouring frames' features):
    the first ``attention_dim`` = 32 of the 64 feature channels (AD-NeRF's default mismatch,
    kept) go through Conv1d over T: 32->16->8->4->2->1 (kernel 3, padding 1), each followed by
    LeakyReLU(0.02); then Linear(T, T) and a softmax over T give weights for a weighted sum of the
    full 64-d features.
  Weights_3DMM head: EqualLinear 64->512, 5 x 512->512, 512->k (no activations officially).

AudioNet / AudioAttNet use PyTorch's default init (U(+-1/sqrt(fan_in)) weights and biases).
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from encoders.layers import CoefficientMLP, torch_default_bias_init, torch_default_kernel_init

DEEPSPEECH_WINDOW = 16
DEEPSPEECH_DIM = 29
AUDIO_LRELU_SLOPE = 0.02


def _conv1d(features: int, in_features: int, stride: int, name: str) -> nn.Conv:
    """Torch-initialized Conv1d, kernel 3, padding 1, on [N, T, C] inputs."""
    return nn.Conv(
        features,
        kernel_size=(3,),
        strides=(stride,),
        padding=((1, 1),),
        kernel_init=torch_default_kernel_init(),
        bias_init=torch_default_bias_init(3 * in_features),
        name=name,
    )


def _linear(features: int, in_features: int, name: str) -> nn.Dense:
    return nn.Dense(
        features,
        kernel_init=torch_default_kernel_init(),
        bias_init=torch_default_bias_init(in_features),
        name=name,
    )


class AudioFeatureNet(nn.Module):
    """AD-NeRF ``AudioNet``: windows [N, 16, 29] -> features [N, audio_dim].

    ``win_size`` < 16 keeps the central ``win_size`` DeepSpeech frames, as the official slice
    ``x[:, 8 - win_size//2 : 8 + win_size//2]`` does (needs win_size a power of two for the four
    stride-2 convs to end at length 1; the official runs use 16).
    """

    audio_dim: int = 64
    win_size: int = DEEPSPEECH_WINDOW

    @nn.compact
    def __call__(self, windows: jax.Array) -> jax.Array:
        half = self.win_size // 2
        x = windows[:, DEEPSPEECH_WINDOW // 2 - half : DEEPSPEECH_WINDOW // 2 + half, :]
        in_features = DEEPSPEECH_DIM
        for i, features in enumerate((32, 32, 64, 64)):
            x = _conv1d(features, in_features, 2, f"conv_{i}")(x)
            x = jax.nn.leaky_relu(x, AUDIO_LRELU_SLOPE)
            in_features = features
        if x.shape[1] != 1:
            raise ValueError(f"AudioFeatureNet: win_size={self.win_size} does not reduce to 1 step")
        x = x[:, 0, :]
        x = jax.nn.leaky_relu(_linear(64, 64, "fc_0")(x), AUDIO_LRELU_SLOPE)
        return _linear(self.audio_dim, 64, "fc_1")(x)


class AudioAttention(nn.Module):
    """AD-NeRF ``AudioAttNet``: features [B, T, F] -> smoothed features [B, F].

    Attention logits come from the first ``attention_dim`` channels through a 1-D conv stack
    over T; ``Linear(T, T)`` + softmax over T weight the T feature vectors. T is fixed by the
    Linear layer (official 8). Batched here; the official code handles one sample at a time.
    """

    attention_dim: int = 32
    seq_len: int = 8

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        if features.shape[1] != self.seq_len:
            raise ValueError(
                f"AudioAttention: expected {self.seq_len} frames, got features {features.shape}"
            )
        y = features[..., : self.attention_dim]
        in_features = y.shape[-1]
        for i, out in enumerate((16, 8, 4, 2, 1)):
            y = _conv1d(out, in_features, 1, f"conv_{i}")(y)
            y = jax.nn.leaky_relu(y, AUDIO_LRELU_SLOPE)
            in_features = out
        logits = _linear(self.seq_len, self.seq_len, "fc")(y[..., 0])
        weights = jax.nn.softmax(logits, axis=-1)
        return jnp.einsum("bt,btf->bf", weights, features)


class AudioEncoder(nn.Module):
    """DeepSpeech windows -> coefficients [B, k].

    Inputs: ``[B, 16, 29]`` (one window per frame) or ``[B, T, 16, 29]`` (T = smoothing_window
    consecutive frames' windows, frames i - T/2 .. i + T/2 - 1 for target frame i, zero windows
    beyond the ends; ``smoothing_windows`` builds them). For 4-D input the attention-smoothed
    feature is used when smoothing is on, else the centre window ``T // 2`` (the official
    ``smo_half_win`` index, i.e. frame i itself), matching the official schedule where smoothing
    starts after ``nosmo_iters`` (300k) iterations.

    Attributes:
      k: number of coefficients.
      nonlinear: fused leaky ReLU between the head's layers (official: none).
      temporal_smoothing: create the AD-NeRF attention net (its params exist from init on).
      audio_dim: AudioNet output width (official ``dim_aud`` 64); the head's input width.
      attention_dim: channels fed to the attention convs (official 32).
      smoothing_window: T (official ``smo_size`` 8).
      win_size: DeepSpeech frames per window used by AudioNet (official 16).
      hidden, num_layers: head width and depth (official 512 and 7).
    """

    k: int
    nonlinear: bool = False
    temporal_smoothing: bool = False
    audio_dim: int = 64
    attention_dim: int = 32
    smoothing_window: int = 8
    win_size: int = DEEPSPEECH_WINDOW
    hidden: int = 512
    num_layers: int = 7

    @nn.compact
    def __call__(self, audio: jax.Array, smooth: Optional[bool] = None) -> jax.Array:
        """audio [B, 16, 29] or [B, T, 16, 29] -> [B, k].

        ``smooth`` (a Python bool: under ``jax.jit`` bind it with ``functools.partial``, do not
        trace it) defaults to ``temporal_smoothing`` for 4-D input.
        """
        if audio.shape[-2:] != (DEEPSPEECH_WINDOW, DEEPSPEECH_DIM) or audio.ndim not in (3, 4):
            raise ValueError(
                f"AudioEncoder: expected audio [B, 16, 29] or [B, T, 16, 29], got {audio.shape}"
            )
        if smooth is None:
            smooth = self.temporal_smoothing and audio.ndim == 4
        if smooth and not self.temporal_smoothing:
            raise ValueError("AudioEncoder: smooth=True needs temporal_smoothing=True")
        if smooth and audio.ndim != 4:
            raise ValueError(f"AudioEncoder: smoothing needs [B, T, 16, 29], got {audio.shape}")
        if audio.ndim == 4 and audio.shape[1] != self.smoothing_window:
            raise ValueError(
                f"AudioEncoder: expected T = smoothing_window = {self.smoothing_window} windows, "
                f"got {audio.shape}"
            )

        feature_net = AudioFeatureNet(self.audio_dim, self.win_size, name="audio_net")
        attention = None
        if self.temporal_smoothing:
            attention = AudioAttention(self.attention_dim, self.smoothing_window, name="attention")

        if audio.ndim == 3:
            features = feature_net(audio)
        elif smooth:
            batch, steps = audio.shape[:2]
            per_frame = feature_net(audio.reshape(batch * steps, *audio.shape[2:]))
            features = attention(per_frame.reshape(batch, steps, self.audio_dim))
        else:
            features = feature_net(audio[:, self.smoothing_window // 2])

        if attention is not None and not smooth and self.is_initializing():
            dummy = jnp.zeros((1, self.smoothing_window, self.audio_dim), features.dtype)
            attention(dummy)

        return CoefficientMLP(self.k, self.hidden, self.num_layers, self.nonlinear, name="fc")(
            features
        )


def smoothing_windows(
    windows: jax.Array, frame_index: jax.Array, size: int = 8, num_frames: Optional[int] = None
) -> jax.Array:
    """Gathers the ``size`` windows around each frame, as the official audio trainer does.

    Args:
      windows: the clip's DeepSpeech windows, [N, 16, 29] (``aud.npy``).
      frame_index: int [B], the target frames i.
      size: T; frames ``i - size//2 .. i - size//2 + size - 1`` are taken.
      num_frames: frames at or beyond this index are zero windows (default N; the official
        trainer uses the training-set length during training).
    Returns:
      [B, size, 16, 29]; the target frame is at index ``size // 2``.
    """
    n = windows.shape[0] if num_frames is None else num_frames
    offsets = jnp.arange(size) - size // 2
    idx = jnp.asarray(frame_index)[:, None] + offsets[None, :]
    valid = (idx >= 0) & (idx < n) & (idx < windows.shape[0])
    gathered = windows[jnp.clip(idx, 0, windows.shape[0] - 1)]
    return jnp.where(valid[..., None, None], gathered, jnp.zeros_like(gathered))
