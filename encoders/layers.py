"""Equalized-learning-rate layers of the official HFA-GP encoders (``networks/encoder3d.py``).

These are rosinality's StyleGAN2 layers: weights are stored as N(0, 1) draws and multiplied by
``1/sqrt(fan_in)`` at run time, biases start at zero. With Adam this sets the effective step
size per layer, so it is kept. Layouts: activations NHWC (images) or [B, C] (vectors), conv
kernels HWIO, dense kernels [in, out].
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import conv_kernels

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)


def fused_leaky_relu(x: jax.Array, bias: jax.Array) -> jax.Array:
    """``leaky_relu(x + bias, 0.2) * sqrt(2)``; ``bias`` broadcasts over the last axis."""
    return jax.nn.leaky_relu(x + bias, LRELU_SLOPE) * LRELU_GAIN


def blur_kernel(taps: Sequence[float] = BLUR_TAPS) -> np.ndarray:
    """Separable low-pass kernel ``outer(taps, taps) / sum``, [len, len] float32."""
    t = np.asarray(taps, np.float32)
    kernel = np.outer(t, t)
    return kernel / kernel.sum()


def blur(x: jax.Array, pad: tuple[int, int], taps: Sequence[float] = BLUR_TAPS) -> jax.Array:
    """FIR filter of NHWC ``x``: zero-pad (pad0, pad1) on both spatial axes, then a depthwise
    VALID correlation with the (symmetric) ``blur_kernel`` -- ``upfirdn2d(up=1, down=1)``."""
    channels = x.shape[-1]
    kernel = jnp.asarray(blur_kernel(taps))[:, :, None, None]
    kernel = jnp.tile(kernel, (1, 1, 1, channels))
    return jax.lax.conv_general_dilated(
        x,
        kernel.astype(x.dtype),
        window_strides=(1, 1),
        padding=(pad, pad),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=channels,
    )


class EqualLinear(nn.Module):
    """Equalized dense layer: ``x @ (w * lr_mul/sqrt(in)) + b * lr_mul``; ``activate`` applies the
    fused leaky ReLU (slope 0.2, gain sqrt 2) with the bias added inside it. x [..., in]."""

    features: int
    use_bias: bool = True
    bias_init: float = 0.0
    lr_mul: float = 1.0
    activate: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_features = x.shape[-1]
        kernel = self.param(
            "kernel", standard_normal_init(1.0 / self.lr_mul), (in_features, self.features)
        )
        y = jnp.matmul(x, kernel * (self.lr_mul / math.sqrt(in_features)))
        if not self.use_bias:
            return fused_leaky_relu(y, 0.0) if self.activate else y
        bias = self.param("bias", nn.initializers.constant(self.bias_init), (self.features,))
        bias = bias * self.lr_mul
        return fused_leaky_relu(y, bias) if self.activate else y + bias


class EqualConv2d(nn.Module):
    """Equalized conv, NHWC: ``conv(x, w / sqrt(in * ks²), stride, zero padding) + b``.

    conv_impl: the weight-gradient kernel of stride-1 convolutions (`conv_kernels`, a concrete name);
    stride-2 convolutions always use XLA's.
    """

    features: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    use_bias: bool = True
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_features = x.shape[-1]
        ks = self.kernel_size
        kernel = self.param(
            "kernel", standard_normal_init(), (ks, ks, in_features, self.features)
        )
        scale = 1.0 / math.sqrt(in_features * ks * ks)
        weight = (kernel * scale).astype(x.dtype)
        if self.stride == 1:
            y = conv_kernels.conv2d(x, weight, self.padding, self.conv_impl)
        else:
            pad = (self.padding, self.padding)
            y = jax.lax.conv_general_dilated(x, weight, window_strides=(self.stride, self.stride),
                                             padding=(pad, pad), dimension_numbers=("NHWC", "HWIO", "NHWC"))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return y


class FusedLeakyReLU(nn.Module):
    """Learned per-channel bias followed by ``leaky_relu(., 0.2) * sqrt(2)``; x [..., C]."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        bias = self.param("bias", nn.initializers.zeros_init(), (x.shape[-1],))
        return fused_leaky_relu(x, bias)


class ConvLayer(nn.Module):
    """Official ``ConvLayer``: [blur] -> equalized conv -> [fused leaky ReLU], NHWC.

    ``downsample``: blur with [1,3,3,1] padded ((p+1)//2, p//2), p = 2 + kernel_size - 1, then a
    stride-2 unpadded conv (halves H and W). Otherwise a stride-1 conv with padding ks//2.
    With ``activate`` the bias lives in the activation (the conv has none); without it the conv
    has a bias only if ``use_bias``. ``activate`` with ``use_bias=False`` is a plain leaky ReLU
    (slope 0.2, no gain), as in the official ``ScaledLeakyReLU``.
    """

    features: int
    kernel_size: int
    downsample: bool = False
    use_bias: bool = True
    activate: bool = True
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ks = self.kernel_size
        if self.downsample:
            p = (len(BLUR_TAPS) - 2) + (ks - 1)
            x = blur(x, ((p + 1) // 2, p // 2))
            stride, padding = 2, 0
        else:
            stride, padding = 1, ks // 2
        x = EqualConv2d(
            self.features,
            ks,
            stride=stride,
            padding=padding,
            use_bias=self.use_bias and not self.activate,
            conv_impl=self.conv_impl,
            name="conv",
        )(x)
        if not self.activate:
            return x
        if self.use_bias:
            return FusedLeakyReLU(name="act")(x)
        return jax.nn.leaky_relu(x, LRELU_SLOPE)


class ResBlock(nn.Module):
    """Official ``ResBlock``: (conv3x3 -> conv3x3 down) + (blur, 1x1 down skip), over sqrt 2.

    NHWC [B, H, W, Cin] -> [B, H/2, W/2, features]; H and W must be even.
    """

    features: int
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_features = x.shape[-1]
        out = ConvLayer(in_features, 3, conv_impl=self.conv_impl, name="conv1")(x)
        out = ConvLayer(self.features, 3, downsample=True, name="conv2")(out)
        skip = ConvLayer(
            self.features, 1, downsample=True, use_bias=False, activate=False, name="skip"
        )(x)
        return (out + skip) / math.sqrt(2.0)


class CoefficientMLP(nn.Module):
    """Stack of ``num_layers`` EqualLinear layers: hidden width ``hidden``, output ``features``.

    The official encoders' "MLPs" (``Encoder.fc``, ``Weights_3DMM.fc``) have no activation between
    layers (``nonlinear=False``), so the stack is one linear map in an over-parametrized form.
    ``nonlinear=True`` puts the fused leaky ReLU on every layer but the last. x [..., in].
    """

    features: int
    hidden: int = 512
    num_layers: int = 5
    nonlinear: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.num_layers < 1:
            raise ValueError(f"CoefficientMLP: num_layers must be >= 1, got {self.num_layers}")
        for i in range(self.num_layers - 1):
            x = EqualLinear(self.hidden, activate=self.nonlinear, name=f"fc_{i}")(x)
        return EqualLinear(self.features, name=f"fc_{self.num_layers - 1}")(x)


def standard_normal_init(scale: float = 1.0) -> nn.initializers.Initializer:
    """N(0, scale²) weights, drawn flat and reshaped.

    Same values as ``jax.random.normal(rng, shape)``, but with jax's default partitionable
    threefry a direct draw of a small 4-D shape takes 5-20 s to compile on these CPUs; the flat
    draw compiles in about a second.
    """

    def init(rng, shape, dtype=jnp.float32):
        return scale * jax.random.normal(rng, (math.prod(shape),), dtype).reshape(shape)

    return init


def torch_default_kernel_init() -> nn.initializers.Initializer:
    """PyTorch's default Conv/Linear weight init (kaiming_uniform, a=sqrt 5): U(+-1/sqrt(fan_in)),
    fan_in = product of all but the last (output) axis of a flax kernel. Drawn flat (see above)."""

    def init(rng, shape, dtype=jnp.float32):
        bound = 1.0 / math.sqrt(math.prod(shape[:-1]))
        flat = jax.random.uniform(rng, (math.prod(shape),), dtype, -bound, bound)
        return flat.reshape(shape)

    return init


def torch_default_bias_init(fan_in: int) -> nn.initializers.Initializer:
    """PyTorch's default Conv/Linear bias init, U(+-1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(rng, shape, dtype=jnp.float32):
        return jax.random.uniform(rng, shape, dtype, -bound, bound)

    return init
