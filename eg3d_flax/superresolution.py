"""EG3D's super-resolution heads (`training/superresolution.py`), NHWC.

Each takes the raw neural rendering (rgb [B,h,w,3], features [B,h,w,32]) and ws, resizes
the inputs to its input resolution if needed (torch `interpolate`, bilinear, align_corners=False,
optional antialias) and runs two StyleGAN2 skip blocks conditioned on the *last* w only.

Channel widths and `w_dim=512` are hard-coded in the reference (they ignore `channel_base` /
`channel_max`), and so are they here. `conv_clamp` is 256 when the checkpoint was trained with
fp16 SR layers (`sr_num_fp16_res > 0`, as the released FFHQ models are) and None otherwise.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from eg3d_flax import ops
from eg3d_flax.layers import SynthesisBlock, remat_block

# class name -> (input_resolution, output_resolution, (block0 channels, block1 channels),
#                block0 upsamples?, resize only when smaller?, has own resample_filter buffer?)
SR_SPECS = {
    "SuperresolutionHybrid2X": (64, 128, (128, 64), False, False, True),
    "SuperresolutionHybrid4X": (128, 256, (128, 64), False, True, True),
    "SuperresolutionHybrid8X": (128, 512, (128, 64), True, False, True),
    "SuperresolutionHybrid8XDC": (128, 512, (256, 128), True, False, False),
}


class SuperResolution(nn.Module):
    """rgb [B,h,w,3], features [B,h,w,C], ws [B,num_ws,512] -> image [B,R,R,3]."""

    kind: str
    channels: int = 32
    img_resolution: int = 512
    sr_antialias: bool = True
    conv_clamp: Optional[float] = None
    compute_dtype: jnp.dtype = jnp.float32
    remat: bool = False  # recompute each block's activations in the backward pass (jax.checkpoint)
    conv_impl: str = "xla"     # convolution kernels (`conv_kernels`), concrete names
    upconv_impl: str = "xla"

    @nn.compact
    def __call__(self, rgb: jax.Array, x: jax.Array, ws: jax.Array, noise_mode: str = "none"):
        if self.kind not in SR_SPECS:
            raise ValueError(f"unknown super-resolution module {self.kind!r}; known: {sorted(SR_SPECS)}")
        in_res, out_res, (c0, c1), up0, only_smaller, has_filter = SR_SPECS[self.kind]
        if out_res != self.img_resolution:
            raise ValueError(f"{self.kind} produces {out_res}x{out_res}, config says {self.img_resolution}")
        if has_filter:
            self.variable("buffers", "resample_filter", lambda: jnp.asarray(ops.setup_filter()))
        ws = jnp.repeat(ws[:, -1:], 3, axis=1)
        size = x.shape[2]
        if (size < in_res) if only_smaller else (size != in_res):
            x = ops.resize_bilinear(x, in_res, self.sr_antialias)
            rgb = ops.resize_bilinear(rgb, in_res, self.sr_antialias)
        common = dict(w_dim=512, img_channels=3, conv_clamp=self.conv_clamp, compute_dtype=self.compute_dtype,
                      conv_impl=self.conv_impl, upconv_impl=self.upconv_impl)
        res0 = out_res // 2 if up0 else in_res
        block_cls = remat_block() if self.remat else SynthesisBlock
        x, rgb = block_cls(self.channels, c0, resolution=res0, upsample=up0, name="block0", **common)(
            x, rgb, ws, noise_mode)
        x, rgb = block_cls(c0, c1, resolution=out_res, name="block1", **common)(x, rgb, ws, noise_mode)
        return rgb
