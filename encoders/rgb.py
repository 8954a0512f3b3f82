"""RGB-frame encoder f: image -> k basis coefficients (official ``networks/encoder3d.Encoder``).

Architecture at the default ``input_size=256`` (channels from ``min(channel_base // res,
channel_max)``, which reproduces the official table 1024:16 ... 64:256, <=32:512):

  1x1 ConvLayer 3 -> 64 (fused leaky ReLU)                                   256x256
  ResBlock 64->128, 128->256, 256->512, 512->512, 512->512, 512->512      128 ... 4
  4x4 unpadded EqualConv2d 512 -> feature_dim (no bias)                     1x1 -> [B, 512]
  CoefficientMLP: 4 x EqualLinear(512, 512) + EqualLinear(512, k)          -> [B, k]

The official MLP has no activations (``nonlinear=False``); its ``use_softmax`` and ``out_pose``
options are off in all official runs and are not ported.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax

from encoders.layers import CoefficientMLP, ConvLayer, EqualConv2d, ResBlock


class RGBEncoder(nn.Module):
    """images [B, H, W, 3] float32 in [-1, 1] -> coefficients [B, k].

    Images whose size differs from ``input_size`` are resized to ``input_size`` x
    ``input_size`` with ``jax.image.resize(method="bilinear", antialias=True)`` (a triangle
    filter widened by the scale when shrinking, like PIL's bilinear ``Resize`` the official data
    pipeline applies; non-square inputs are stretched).

    Attributes:
      k: number of coefficients (basis size).
      input_size: resolution the convolutional trunk runs at; a power of two >= 4.
      feature_dim: width of the image code and of the MLP's hidden layers (official 512).
      mlp_layers: EqualLinear layers in the head (official 5).
      nonlinear: fused leaky ReLU between the head's layers (official: none).
      channel_base, channel_max: trunk width at resolution r is min(channel_base // r,
        channel_max); the defaults are the official widths (smaller values are for tests).
      conv_impl: weight-gradient kernel of the stride-1 convolutions (`conv_kernels`; a concrete name).
    """

    k: int
    input_size: int = 256
    feature_dim: int = 512
    mlp_layers: int = 5
    nonlinear: bool = False
    channel_base: int = 16384
    channel_max: int = 512
    conv_impl: str = "xla"

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        size = self.input_size
        if size < 4 or size & (size - 1):
            raise ValueError(f"RGBEncoder: input_size must be a power of two >= 4, got {size}")
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"RGBEncoder: expected images [B, H, W, 3], got {images.shape}")
        batch = images.shape[0]
        if images.shape[1:3] != (size, size):
            images = jax.image.resize(
                images, (batch, size, size, 3), method="bilinear", antialias=True
            )
        h = ConvLayer(self.channels(size), 1, conv_impl=self.conv_impl, name="convs_0")(images)
        log_size = int(math.log2(size))
        for i, log_res in enumerate(range(log_size, 2, -1), start=1):
            h = ResBlock(self.channels(2 ** (log_res - 1)), conv_impl=self.conv_impl, name=f"convs_{i}")(h)
        h = EqualConv2d(self.feature_dim, 4, use_bias=False, conv_impl=self.conv_impl,
                        name=f"convs_{log_size - 1}")(h)
        h = h.reshape(batch, self.feature_dim)
        return CoefficientMLP(
            self.k, self.feature_dim, self.mlp_layers, self.nonlinear, name="fc"
        )(h)
