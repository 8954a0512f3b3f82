"""StyleGAN2 layers of EG3D's backbone and super-resolution, as flax.linen modules.

Parameter names and the module tree mirror NVIDIA's `training/networks_stylegan2.py`
(`backbone.synthesis.b64.conv0.affine.weight` is `params/backbone/synthesis/b64/conv0/affine/weight`
here), so converting a checkpoint is a mechanical rename plus layout transposes
(`convert_weights.eg3d_keys`). Layouts: activations NHWC, conv kernels HWIO, dense kernels [in, out].
Buffers (`w_avg`, `noise_const`, `resample_filter`) live in the non-trainable `buffers` collection.

Initializers reproduce the reference's (N(0,1) weights with run-time equalized-lr gains), so a
randomly initialised generator behaves like a freshly constructed PyTorch one.
"""

from __future__ import annotations

import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from eg3d_flax import ops

NOISE_MODES = ("random", "const", "none")


def _normal(scale: float = 1.0):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.normal(key, shape, dtype) * scale

    return init


class FullyConnectedLayer(nn.Module):
    """Equalized-lr dense layer. weight [in, out] stored pre-gain; out = act(x @ (w*g) + b*lr)."""

    in_features: int
    out_features: int
    activation: str = "linear"
    lr_multiplier: float = 1.0
    bias_init: float = 0.0
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        weight = self.param(
            "weight", _normal(1.0 / self.lr_multiplier), (self.in_features, self.out_features)
        )
        w = weight * (self.lr_multiplier / math.sqrt(self.in_features))
        x = jnp.dot(x, w.astype(x.dtype))
        b = None
        if self.use_bias:
            b = self.param("bias", nn.initializers.constant(self.bias_init), (self.out_features,))
            if self.lr_multiplier != 1:
                b = b * self.lr_multiplier
        if self.activation == "linear":
            return x if b is None else x + b
        return ops.bias_act(x, b, act=self.activation)


class MappingNetwork(nn.Module):
    """z [B,z_dim], c [B,c_dim] -> ws [B,num_ws,w_dim] (with the `w_avg` buffer for truncation)."""

    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int
    num_layers: int = 8
    lr_multiplier: float = 0.01

    @nn.compact
    def __call__(self, z, c, truncation_psi: float = 1.0, truncation_cutoff: Optional[int] = None):
        w_avg = self.variable("buffers", "w_avg", jnp.zeros, (self.w_dim,))
        parts = []
        if self.z_dim > 0:
            parts.append(ops.normalize_2nd_moment(z.astype(jnp.float32)))
        if self.c_dim > 0:
            embed = FullyConnectedLayer(self.c_dim, self.w_dim, name="embed")
            parts.append(ops.normalize_2nd_moment(embed(c.astype(jnp.float32))))
        x = jnp.concatenate(parts, axis=1)
        features = [x.shape[1]] + [self.w_dim] * self.num_layers
        for idx in range(self.num_layers):
            x = FullyConnectedLayer(
                features[idx], features[idx + 1], activation="lrelu",
                lr_multiplier=self.lr_multiplier, name=f"fc{idx}",
            )(x)
        x = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.num_ws, self.w_dim))
        if truncation_psi != 1:
            avg = w_avg.value
            truncated = avg + truncation_psi * (x - avg)
            if truncation_cutoff is None:
                x = truncated
            else:
                keep = (jnp.arange(self.num_ws) < truncation_cutoff)[None, :, None]
                x = jnp.where(keep, truncated, x)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x up), noise, bias, lrelu with gain and clamp."""

    in_channels: int
    out_channels: int
    w_dim: int
    resolution: int
    up: int = 1
    use_noise: bool = True
    conv_clamp: Optional[float] = None
    kernel_size: int = 3
    compute_dtype: jnp.dtype = jnp.float32
    conv_impl: str = "xla"     # convolution kernels (`conv_kernels`), concrete names
    upconv_impl: str = "xla"

    @nn.compact
    def __call__(self, x, w, noise_mode: str = "const", gain: float = 1.0):
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        f = self.variable("buffers", "resample_filter", lambda: jnp.asarray(ops.setup_filter()))
        styles = FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1.0, name="affine")(w)
        k = self.kernel_size
        weight = self.param("weight", _normal(), (k, k, self.in_channels, self.out_channels))
        noise = None
        if self.use_noise:
            noise_const = self.variable(
                "buffers", "noise_const",
                lambda: jax.random.normal(self.make_rng("params"), (self.resolution, self.resolution)),
            )
            strength = self.param("noise_strength", nn.initializers.zeros, ())
            if noise_mode == "random":
                key = self.make_rng("noise")
                noise = jax.random.normal(key, (x.shape[0], self.resolution, self.resolution, 1)) * strength
            elif noise_mode == "const":
                noise = (noise_const.value * strength)[None, :, :, None]
        bias = self.param("bias", nn.initializers.zeros, (self.out_channels,))
        x = ops.modulated_conv2d(
            x, weight, styles, noise=noise, up=self.up, padding=k // 2,
            resample_filter=f.value, compute_dtype=self.compute_dtype, conv_impl=self.conv_impl,
            upconv_impl=self.upconv_impl,
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, bias, act="lrelu", gain=math.sqrt(2.0) * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation, bias, clamp."""

    in_channels: int
    out_channels: int
    w_dim: int
    conv_clamp: Optional[float] = None
    compute_dtype: jnp.dtype = jnp.float32
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x, w):
        styles = FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1.0, name="affine")(w)
        styles = styles * (1.0 / math.sqrt(self.in_channels))
        weight = self.param("weight", _normal(), (1, 1, self.in_channels, self.out_channels))
        bias = self.param("bias", nn.initializers.zeros, (self.out_channels,))
        x = ops.modulated_conv2d(x, weight, styles, demodulate=False, compute_dtype=self.compute_dtype,
                                 conv_impl=self.conv_impl)
        return ops.bias_act(x, bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One 'skip'-architecture block: [const | conv0 (2x up)], conv1, ToRGB added to the upsampled img.

    `upsample=False` gives EG3D's `SynthesisBlockNoUp` (used by the 2X/4X super-resolution):
    conv0 keeps the resolution and the incoming img is not upsampled.
    """

    in_channels: int  # 0 = first block (learned const input)
    out_channels: int
    w_dim: int
    resolution: int
    img_channels: int
    upsample: bool = True
    conv_clamp: Optional[float] = None
    compute_dtype: jnp.dtype = jnp.float32
    conv_impl: str = "xla"
    upconv_impl: str = "xla"

    @property
    def num_conv(self) -> int:
        return 1 if self.in_channels == 0 else 2

    @nn.compact
    def __call__(self, x, img, ws, noise_mode: str = "const"):
        """ws: [B, num_conv + 1, w_dim]. Returns (x [B,res,res,out], img [B,res,res,img_channels])."""
        f = self.variable("buffers", "resample_filter", lambda: jnp.asarray(ops.setup_filter()))
        layer = dict(w_dim=self.w_dim, resolution=self.resolution, conv_clamp=self.conv_clamp,
                     compute_dtype=self.compute_dtype, conv_impl=self.conv_impl, upconv_impl=self.upconv_impl)
        if self.in_channels == 0:
            const = self.param("const", _normal(), (self.resolution, self.resolution, self.out_channels))
            x = jnp.broadcast_to(const[None], (ws.shape[0],) + const.shape)
            x = SynthesisLayer(self.out_channels, self.out_channels, name="conv1", **layer)(
                x, ws[:, 0], noise_mode)
        else:
            up = 2 if self.upsample else 1
            x = SynthesisLayer(self.in_channels, self.out_channels, up=up, name="conv0", **layer)(
                x, ws[:, 0], noise_mode)
            x = SynthesisLayer(self.out_channels, self.out_channels, name="conv1", **layer)(
                x, ws[:, 1], noise_mode)
        if img is not None and self.upsample:
            img = ops.upsample2d(img, f.value)
        y = ToRGBLayer(self.out_channels, self.img_channels, self.w_dim, conv_clamp=self.conv_clamp,
                       compute_dtype=self.compute_dtype, conv_impl=self.conv_impl, name="torgb")(x, ws[:, self.num_conv])
        img = y if img is None else img + y
        return x, img


def remat_block():
    """SynthesisBlock under `nn.remat` (same parameter tree); `noise_mode` stays a static argument."""
    return nn.remat(SynthesisBlock, static_argnums=(4,))


def block_resolutions(img_resolution: int) -> list[int]:
    return [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]


def block_channels(res: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // res, channel_max)


def synthesis_num_ws(img_resolution: int) -> int:
    """Number of w vectors the skip-architecture synthesis network consumes (14 at 256)."""
    return sum(1 if r == 4 else 2 for r in block_resolutions(img_resolution)) + 1


class SynthesisNetwork(nn.Module):
    """ws [B,num_ws,w_dim] -> image [B,img_res,img_res,img_channels] (for EG3D: the 96-ch tri-planes)."""

    w_dim: int
    img_resolution: int
    img_channels: int
    channel_base: int = 32768
    channel_max: int = 512
    conv_clamp: Optional[float] = None
    compute_dtype: jnp.dtype = jnp.float32
    remat: bool = False  # recompute each block's activations in the backward pass (jax.checkpoint)
    conv_impl: str = "xla"
    upconv_impl: str = "xla"

    @nn.compact
    def __call__(self, ws, noise_mode: str = "const"):
        block_cls = remat_block() if self.remat else SynthesisBlock
        x = img = None
        w_idx = 0
        for res in block_resolutions(self.img_resolution):
            in_ch = block_channels(res // 2, self.channel_base, self.channel_max) if res > 4 else 0
            out_ch = block_channels(res, self.channel_base, self.channel_max)
            block = block_cls(
                in_ch, out_ch, self.w_dim, res, self.img_channels, conv_clamp=self.conv_clamp,
                compute_dtype=self.compute_dtype, conv_impl=self.conv_impl, upconv_impl=self.upconv_impl,
                name=f"b{res}",
            )
            num_conv = 1 if in_ch == 0 else 2
            x, img = block(x, img, ws[:, w_idx: w_idx + num_conv + 1], noise_mode)
            w_idx += num_conv
        return img
