"""Convolution kernels per backend, chosen explicitly by name; the plain XLA path is the reference.

Two choices, each a config field of the models that use them (`eg3d_flax.GeneratorConfig.conv_impl`,
`.upconv_impl`; the RGB encoder's `conv_impl`):

  conv_impl     how a stride-1 convolution's weight gradient is computed
    'xla'         XLA's own convolution gradients (cuDNN / TPU kernels; the reference)
    'cpu_gemm'    blocked im2col GEMMs (`conv_kernels.cpu_gemm`): XLA:CPU's weight-gradient convolution
                  is ~15x slower than the forward conv (measured at 128x128x64), this ~3x faster than it
  upconv_impl   how a stride-2 transposed 3x3 convolution (StyleGAN2's up-convolution) is computed
    'xla'         a convolution of the zero-dilated input (`lhs_dilation`), as the reference
    'polyphase'   four small convolutions of the undilated input, one per output parity
                  (`conv_kernels.polyphase`): no multiplies on inserted zeros (4x fewer FLOPs)
  'auto'        picks per backend, once, before tracing (`resolve`): CPU -> 'cpu_gemm' / 'polyphase',
                other backends -> 'xla' / 'xla'.

Every implementation computes the same values and gradients (tests compare them on CPU); only speed and
memory differ. Functions here take concrete names; 'auto' is resolved by the caller with `resolve`.
"""

from __future__ import annotations

from typing import Optional

import jax

from conv_kernels import cpu_gemm, polyphase, xla

CONV_IMPLS = ("auto", "xla", "cpu_gemm")
UPCONV_IMPLS = ("auto", "xla", "polyphase")
_AUTO = {"conv": {"cpu": "cpu_gemm"}, "upconv": {"cpu": "polyphase"}}


def resolve(kind: str, impl: str, backend: Optional[str] = None) -> str:
    """The concrete implementation for `impl` ('auto' -> by `backend`, default `jax.default_backend()`).

    kind: 'conv' or 'upconv'. Raises ValueError for unknown names.
    """
    known = {"conv": CONV_IMPLS, "upconv": UPCONV_IMPLS}
    if kind not in known:
        raise ValueError(f"kind must be 'conv' or 'upconv', got {kind!r}")
    if impl not in known[kind]:
        raise ValueError(f"{kind}_impl must be one of {known[kind]}, got {impl!r}")
    if impl != "auto":
        return impl
    return _AUTO[kind].get(backend or jax.default_backend(), "xla")


def _concrete(kind: str, impl: str) -> None:
    if impl == "auto" or impl not in {"conv": CONV_IMPLS, "upconv": UPCONV_IMPLS}[kind]:
        raise ValueError(f"{kind}_impl={impl!r}: pass a concrete implementation (resolve 'auto' first with "
                         f"conv_kernels.resolve)")


def conv2d(x: jax.Array, w: jax.Array, padding: int = 0, impl: str = "xla") -> jax.Array:
    """Cross-correlation (torch `conv2d` semantics), stride 1. x: [N,H,W,I], w: [kh,kw,I,O] -> [N,h,w,O]."""
    _concrete("conv", impl)
    if impl == "cpu_gemm":
        return cpu_gemm.conv2d(x, w, padding)
    return xla.conv2d(x, w, padding)


def conv_transpose2d_stride2_k3(x: jax.Array, w: jax.Array, impl: str = "xla", conv_impl: str = "xla") -> jax.Array:
    """torch `conv_transpose2d(x, w, stride=2)` for a 3x3 kernel, plus one trailing zero row and column.

    x: [N,H,W,I], w: [3,3,I,O] (applied unflipped, as conv_transpose does) -> [N,2H+2,2W+2,O].
    conv_impl: the weight-gradient implementation of the polyphase form's convolutions.
    """
    _concrete("upconv", impl)
    if impl == "polyphase":
        return polyphase.conv_transpose2d_stride2_k3(x, w, lambda a, b: conv2d(a, b, 0, conv_impl))
    return xla.conv_transpose2d_stride2_k3(x, w)


__all__ = ["CONV_IMPLS", "UPCONV_IMPLS", "conv2d", "conv_transpose2d_stride2_k3", "resolve"]
