"""Pure-JAX versions of the StyleGAN2/EG3D tensor ops (`torch_utils.ops`), channels-last.

Every function here works on NHWC arrays (batch, height, width, channels) and HWIO conv
kernels. The semantics (padding, gains, filter flips, clamping) follow the reference
implementations of NVIDIA's `upfirdn2d`, `bias_act` and `conv2d_resample`, so that a
checkpoint trained with them gives the same numbers here.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import conv_kernels

ACTIVATION_GAINS = {"linear": 1.0, "lrelu": math.sqrt(2.0), "relu": math.sqrt(2.0)}
LRELU_ALPHA = 0.2


def setup_filter(taps: Sequence[float] = (1, 3, 3, 1)) -> np.ndarray:
    """2-D FIR filter `outer(taps, taps) / sum`, float32 [k, k] (StyleGAN's `setup_filter`)."""
    f = np.asarray(taps, dtype=np.float32)
    f = np.outer(f, f)
    return (f / f.sum()).astype(np.float32)


def normalize_2nd_moment(x: jax.Array, axis: int = 1, eps: float = 1e-8) -> jax.Array:
    """x / sqrt(mean(x^2) + eps) along `axis`."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)


def bias_act(
    x: jax.Array,
    bias: Optional[jax.Array] = None,
    act: str = "linear",
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
) -> jax.Array:
    """Bias (over the last axis), activation, gain, clamp to [-clamp, clamp] — in that order."""
    if bias is not None:
        x = x + bias.astype(x.dtype)
    if act == "lrelu":
        x = jnp.where(x >= 0, x, x * LRELU_ALPHA)
    elif act == "relu":
        x = jax.nn.relu(x)
    elif act != "linear":
        raise ValueError(f"unsupported activation {act!r}")
    gain = ACTIVATION_GAINS[act] if gain is None else gain
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = jnp.clip(x, -clamp, clamp)
    return x


def upfirdn2d(
    x: jax.Array,
    f: jax.Array,
    up: int = 1,
    down: int = 1,
    padding: Sequence[int] = (0, 0, 0, 0),
    flip_filter: bool = False,
    gain: float = 1.0,
) -> jax.Array:
    """Upsample (zero insertion), pad/crop, FIR filter, downsample. x: [N,H,W,C], f: [kh,kw].

    `padding` is (x0, x1, y0, y1) like the reference; negative values crop. The filter is
    applied as kh*kw shifted multiply-adds, which XLA fuses into one elementwise pass (a
    depthwise convolution is much slower on CPU, and no faster elsewhere for 4x4 taps).
    """
    px0, px1, py0, py1 = padding
    f = f.astype(x.dtype) * gain
    if not flip_filter:
        f = f[::-1, ::-1]
    # One lax.pad does zero insertion (interior), the trailing zeros of the reference's
    # reshape-based upsampling (+up-1 at the high end) and the pad/crop.
    zero = jnp.zeros((), x.dtype)
    x = jax.lax.pad(
        x,
        zero,
        [(0, 0, 0), (py0, py1 + up - 1, up - 1), (px0, px1 + up - 1, up - 1), (0, 0, 0)],
    )
    kh, kw = f.shape
    oh = (x.shape[1] - kh) // down + 1
    ow = (x.shape[2] - kw) // down + 1
    out = None
    for r in range(kh):
        for s in range(kw):
            tap = x[:, r: r + (oh - 1) * down + 1: down, s: s + (ow - 1) * down + 1: down, :] * f[r, s]
            out = tap if out is None else out + tap
    return out


def _window(x: jax.Array, start: int, length: int, axis: int) -> jax.Array:
    """x[start : start+length] along `axis`, zeros outside [0, x.shape[axis]).

    One `lax.pad` (negative padding crops), so each shifted read has its own padding config and
    fuses into the multiply-add that consumes it; a shared `jnp.pad` followed by slices was
    materialised once per parity as a full-size copy (~18 ms each at 256x256x96 on CPU).
    """
    config = [(0, 0, 0)] * x.ndim
    config[axis] = (-start, start + length - x.shape[axis], 0)
    return jax.lax.pad(x, jnp.zeros((), x.dtype), config)


def _upfirdn1d(x: jax.Array, taps: jax.Array, axis: int, up: int, pad0: int, pad1: int) -> jax.Array:
    """1-D upfirdn along `axis` (down=1): zero-insert by `up` (1 or 2), pad/crop, correlate with `taps`.

    `taps` are already flipped/scaled as the correlation needs. For up=2 it is evaluated per output
    parity (polyphase): each phase only touches the taps that land on real samples, so no multiply
    is spent on inserted zeros and nothing of the zero-stuffed signal is materialised.
    """
    k = taps.shape[0]
    n_in = x.shape[axis]
    n_out = n_in * up + pad0 + pad1 - k + 1

    if up == 1:
        out = None
        for t in range(k):
            term = _window(x, t - pad0, n_out, axis) * taps[t]
            out = term if out is None else out + term
        return out
    if up != 2:
        raise ValueError(f"_upfirdn1d supports up=1 or 2, got {up}")
    phases = []
    for ph in range(2):
        length = (n_out - ph + 1) // 2
        out = None
        for t in range(k):
            if (ph + t - pad0) % 2:
                continue  # this tap falls on an inserted zero
            term = _window(x, (ph + t - pad0) // 2, length, axis) * taps[t]
            out = term if out is None else out + term
        phases.append(out)
    if phases[1].shape[axis] < phases[0].shape[axis]:
        pads = [(0, 0)] * x.ndim
        pads[axis] = (0, 1)
        phases[1] = jnp.pad(phases[1], pads)
    y = jnp.stack(phases, axis=axis + 1)
    shape = list(x.shape)
    shape[axis] = 2 * phases[0].shape[axis]
    return jax.lax.slice_in_dim(y.reshape(shape), 0, n_out, axis=axis)


def _upfirdn1d_adjoint(g: jax.Array, taps: jax.Array, axis: int, up: int, pad0: int, n_in: int) -> jax.Array:
    """The transpose of `_upfirdn1d` (same taps): dx[s] = sum_t taps[t] * g[up*s + pad0 - t], zeros outside.

    For up=2 the cotangent is split into its two parities by a reshape (no strided slicing), and
    each tap reads one parity at a fixed shift: a 2x-decimating correlation.
    """
    k = taps.shape[0]
    if up == 1:
        parity = (g,)
    elif up == 2:
        if g.shape[axis] % 2:
            pads = [(0, 0)] * g.ndim
            pads[axis] = (0, 1)
            g = jnp.pad(g, pads)
        shape = list(g.shape)
        shape[axis: axis + 1] = [g.shape[axis] // 2, 2]
        g2 = g.reshape(shape)
        parity = tuple(jax.lax.index_in_dim(g2, q, axis=axis + 1, keepdims=False) for q in range(2))
    else:
        raise ValueError(f"_upfirdn1d_adjoint supports up=1 or 2, got {up}")
    out = None
    for t in range(k):  # g[up*s + pad0 - t] == parity[(pad0 - t) % up][s + (pad0 - t) // up]
        term = _window(parity[(pad0 - t) % up], (pad0 - t) // up, n_in, axis) * taps[t]
        out = term if out is None else out + term
    return out


def separable_taps(f: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(vertical, horizontal) 1-D factors of a rank-1 2-D filter: f == outer(fy, fx).

    Exact for separable filters such as StyleGAN's outer([1,3,3,1], [1,3,3,1]) / 64; the
    checkpoint converter refuses non-separable `resample_filter` buffers, which this relies on.
    """
    fy = jnp.sum(f, axis=1)
    fx = jnp.sum(f, axis=0) / jnp.sum(f)
    return fy, fx


def _upfirdn2d_separable_impl(x, f, up, padding, gain):
    px0, px1, py0, py1 = padding
    fy, fx = separable_taps(f.astype(x.dtype))
    fy, fx = fy[::-1] * gain, fx[::-1]  # correlation form of the reference's true convolution
    x = jax.lax.optimization_barrier(_upfirdn1d(x, fy, axis=1, up=up, pad0=py0, pad1=py1))
    return jax.lax.optimization_barrier(_upfirdn1d(x, fx, axis=2, up=up, pad0=px0, pad1=px1))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _upfirdn2d_separable(x, f, up, padding, gain):
    return _upfirdn2d_separable_impl(x, f, up, padding, gain)


def _upfirdn2d_separable_fwd(x, f, up, padding, gain):
    return _upfirdn2d_separable_impl(x, f, up, padding, gain), (f, x.shape)


def _upfirdn2d_separable_bwd(up, padding, gain, res, g):
    f, shape = res
    px0, _, py0, _ = padding
    fy, fx = separable_taps(f.astype(g.dtype))
    fy, fx = fy[::-1] * gain, fx[::-1]
    g = jax.lax.optimization_barrier(_upfirdn1d_adjoint(g, fx, axis=2, up=up, pad0=px0, n_in=shape[2]))
    g = jax.lax.optimization_barrier(_upfirdn1d_adjoint(g, fy, axis=1, up=up, pad0=py0, n_in=shape[1]))
    return g, jnp.zeros_like(f)


_upfirdn2d_separable.defvjp(_upfirdn2d_separable_fwd, _upfirdn2d_separable_bwd)


def upfirdn2d_separable(
    x: jax.Array,
    f: jax.Array,
    up: int = 1,
    padding: Sequence[int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> jax.Array:
    """`upfirdn2d` (down=1) for a separable (rank-1) filter `f` [k,k]: the same values, faster.

    Forward: two 1-D passes (2k instead of k*k multiply-adds per output; for up=2 polyphase, a
    quarter of those again). Backward: the explicit adjoint, also as two 1-D passes (autodiff of
    either form let XLA split the taps into separately materialised full-size arrays: 16 of them
    for the 256x256x96 tri-plane image, ~0.6 s of a 2.7 s tiny128 step).
    Each pass is put behind an optimisation barrier: without it XLA fuses chains of these (the
    skip architecture's upsampled image, block after block) into one expression that recomputes
    every earlier level per tap; a 6-level chain at 96 channels took 0.52 s instead of 0.07 s.
    No gradient flows to `f` (a fixed buffer).
    """
    return _upfirdn2d_separable(x, f, int(up), tuple(int(p) for p in padding), float(gain))


def upsample2d(x: jax.Array, f: jax.Array, up: int = 2) -> jax.Array:
    """2x FIR upsampling with the reference's default padding and gain up**2. [N,H,W,C] -> [N,2H,2W,C].

    `f` must be separable (StyleGAN's resample filters are)."""
    fw = f.shape[-1]
    p0, p1 = (fw + up - 1) // 2, (fw - up) // 2
    return upfirdn2d_separable(x, f, up=up, padding=(p0, p1, p0, p1), gain=up**2)


def conv2d(x: jax.Array, w: jax.Array, padding: int = 0, impl: str = "xla") -> jax.Array:
    """Cross-correlation (torch `conv2d` semantics). x: [N,H,W,I], w: [kh,kw,I,O].

    impl: the weight-gradient implementation ('xla' | 'cpu_gemm', see `conv_kernels`).
    """
    return conv_kernels.conv2d(x, w, padding, impl)


def conv2d_up2(x: jax.Array, w: jax.Array, f: jax.Array, padding: int, upconv_impl: str = "xla",
               conv_impl: str = "xla") -> jax.Array:
    """`conv2d_resample(up=2, flip_weight=False)`: transposed stride-2 conv, then FIR.

    x: [N,H,W,I], w: [k,k,I,O] (k odd), f: [4,4]. Returns [N,2H,2W,O].
    The reference runs `conv_transpose2d` (a true convolution of the zero-stuffed input) and then
    `upfirdn2d` with gain 4 and its adjusted padding; same here. 3x3 kernels (every StyleGAN2 layer)
    run the transposed convolution as `upconv_impl` says ('xla' | 'polyphase', see `conv_kernels`).
    """
    kh, kw = w.shape[0], w.shape[1]
    fw = f.shape[-1]
    up = 2
    px0 = padding + (fw + up - 1) // 2 - (kw - 1)
    px1 = padding + (fw - up) // 2 - (kw - up)
    py0 = padding + (fw + up - 1) // 2 - (kh - 1)
    py1 = padding + (fw - up) // 2 - (kh - up)
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)
    if (kh, kw) == (3, 3) and pxt == 0 and pyt == 0:
        y = conv_kernels.conv_transpose2d_stride2_k3(x, w, upconv_impl, conv_impl)
        # drop the trailing zero row/col by reducing the high padding by one
        return upfirdn2d_separable(y, f, padding=(px0, px1 - 1, py0, py1 - 1), gain=up**2)
    # General case: conv_transpose2d == dilated-input correlation with the flipped kernel.
    y = jax.lax.conv_general_dilated(
        x,
        w[::-1, ::-1],
        window_strides=(1, 1),
        padding=[(kh - 1 - pyt, kh - 1 - pyt), (kw - 1 - pxt, kw - 1 - pxt)],
        lhs_dilation=(up, up),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return upfirdn2d_separable(y, f, padding=(px0 + pxt, px1 - pxt, py0 + pyt, py1 - pyt), gain=up**2)


def modulated_conv2d(
    x: jax.Array,
    weight: jax.Array,
    styles: jax.Array,
    noise: Optional[jax.Array] = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: Optional[jax.Array] = None,
    demodulate: bool = True,
    compute_dtype: jnp.dtype = jnp.float32,
    conv_impl: str = "xla",
    upconv_impl: str = "xla",
) -> jax.Array:
    """StyleGAN2 modulated convolution, "scale activations" formulation.

    x: [N,H,W,I], weight: [k,k,I,O] (shared over the batch), styles: [N,I], noise broadcastable
    to the output. Equivalent to the reference's fused grouped convolution (per-sample weights
    w * s, demodulated), but computed as (x * s) conv weight, then * demod -- one ordinary conv
    for the whole batch, which XLA runs far faster than a batch-grouped conv. The reference's
    fp16 pre-normalisation is not needed (float32 or bfloat16 with float32 accumulation).
    conv_impl / upconv_impl: the convolution kernels (`conv_kernels`; concrete names).
    """
    dcoefs = None
    if demodulate:
        w = weight[None] * styles[:, None, None, :, None]  # [N,k,k,I,O]
        dcoefs = jax.lax.rsqrt(jnp.sum(jnp.square(w), axis=(1, 2, 3)) + 1e-8)  # [N,O]
    x = (x * styles[:, None, None, :]).astype(compute_dtype)
    wc = weight.astype(compute_dtype)
    if up == 1:
        x = conv2d(x, wc, padding=padding, impl=conv_impl)
    elif up == 2:
        x = conv2d_up2(x, wc, resample_filter.astype(compute_dtype), padding=padding, upconv_impl=upconv_impl,
                       conv_impl=conv_impl)
    else:
        raise ValueError(f"unsupported up={up}")
    x = x.astype(jnp.float32)
    if dcoefs is not None:
        x = x * dcoefs[:, None, None, :]
    if noise is not None:
        x = x + noise
    return x


def _bilinear_weights_1d(in_size: int, out_size: int, antialias: bool) -> np.ndarray:
    """[out, in] interpolation matrix of torch `interpolate(bilinear, align_corners=False)`.

    With `antialias=True` and downsampling, the triangle filter is stretched by in/out and
    renormalised (torch's `_upsample_bilinear2d_aa`); for upsampling both modes coincide.
    """
    scale = in_size / out_size
    support = scale if (antialias and scale > 1) else 1.0
    m = np.zeros((out_size, in_size), np.float64)
    for i in range(out_size):
        if antialias and scale > 1:
            center = scale * (i + 0.5)
            lo = max(int(center - support + 0.5), 0)
            hi = min(int(center + support + 0.5), in_size)
            js = np.arange(lo, hi)
            wts = np.maximum(0.0, 1.0 - np.abs((js - center + 0.5) / support))
            m[i, lo:hi] = wts / wts.sum()
        else:
            src = max(scale * (i + 0.5) - 0.5, 0.0)
            j0 = min(int(math.floor(src)), in_size - 1)
            j1 = min(j0 + 1, in_size - 1)
            t = src - j0
            m[i, j0] += 1.0 - t
            m[i, j1] += t
    return m.astype(np.float32)


def resize_bilinear(x: jax.Array, size: int, antialias: bool) -> jax.Array:
    """torch `F.interpolate(x, (size, size), mode='bilinear', align_corners=False, antialias=...)`.

    x: [N,H,W,C] -> [N,size,size,C]. Separable, as two small matmuls with constant matrices.
    """
    _, h, w, _ = x.shape
    my = jnp.asarray(_bilinear_weights_1d(h, size, antialias))
    mx = jnp.asarray(_bilinear_weights_1d(w, size, antialias))
    hi = jax.lax.Precision.HIGHEST
    x = jnp.einsum("oh,nhwc->nowc", my, x, precision=hi)
    return jnp.einsum("pw,nowc->nopc", mx, x, precision=hi)
