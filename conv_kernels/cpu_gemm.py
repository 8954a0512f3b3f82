"""Convolution weight gradients as blocked im2col GEMMs, for XLA:CPU.

XLA:CPU's weight-gradient convolution runs ~15x slower than the forward convolution (measured at
128x128x64 on the 2-core machine of docs/benchmarks.md). `conv2d` here has XLA's forward and input
gradient and computes the weight gradient with `conv2d_weight_grad`: ~3x faster than kh*kw GEMMs over
shifted full-size copies (3x3 [2,512,512,64] -> 64: 1630 -> 604 ms). Values equal XLA's gradients to
float32 rounding (tests compare every kernel shape the models use).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from conv_kernels import xla

# Bytes of one block's im2col matrix in `conv2d_weight_grad`: small enough to stay in cache.
WGRAD_CHUNK_BYTES = 2_500_000


def conv2d_weight_grad(x: jax.Array, g: jax.Array, kh: int, kw: int, padding: int) -> jax.Array:
    """Weight gradient of a stride-1 correlation: dW[ky,kx,i,o] = sum_{n,y,x} xp[n,y+ky,x+kx,i] g[n,y,x,o].

    x: [N,H,W,I], g: [N,h,w,O] (the output's cotangent). Returns [kh,kw,I,O] (float32).
    Loops over blocks of output rows: each block's im2col matrix [rows*w, kh*kw*I] is built in cache and
    contracted with the block's cotangent in one GEMM with a [O, kh*kw*I] result. Small activations (the
    whole im2col within one block) take the direct route of kh*kw GEMMs.
    """
    n, _, _, cin = x.shape
    _, h, w, cout = g.shape
    xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    contract_rows = (((0,), (0,)), ((), ()))
    row_bytes = w * kh * kw * cin * jnp.dtype(x.dtype).itemsize
    if kh * kw == 1 or n * h * row_bytes <= WGRAD_CHUNK_BYTES:
        g2 = g.reshape(-1, cout)
        taps = [jax.lax.dot_general(xp[:, ky: ky + h, kx: kx + w].reshape(-1, cin), g2, contract_rows,
                                    preferred_element_type=jnp.float32)
                for ky in range(kh) for kx in range(kw)]
        return jnp.stack(taps).reshape(kh, kw, cin, cout)
    rows = max(d for d in range(1, h + 1) if h % d == 0 and (d == 1 or d * row_bytes <= WGRAD_CHUNK_BYTES))
    blocks_per_image = h // rows

    def accumulate(block, acc):
        img, row0 = block // blocks_per_image, (block % blocks_per_image) * rows
        xs = jax.lax.dynamic_slice(xp, (img, row0, 0, 0), (1, rows + kh - 1, xp.shape[2], cin))[0]
        gs = jax.lax.dynamic_slice(g, (img, row0, 0, 0), (1, rows, w, cout))[0].reshape(-1, cout)
        col = jnp.concatenate([xs[ky: ky + rows, kx: kx + w] for ky in range(kh) for kx in range(kw)], axis=-1)
        return acc + jax.lax.dot_general(gs, col.reshape(-1, kh * kw * cin), contract_rows,
                                         preferred_element_type=jnp.float32)

    acc = jax.lax.fori_loop(0, n * blocks_per_image, accumulate, jnp.zeros((cout, kh * kw * cin), jnp.float32))
    return acc.reshape(cout, kh, kw, cin).transpose(1, 2, 3, 0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d(x: jax.Array, w: jax.Array, padding: int) -> jax.Array:
    """`xla.conv2d` with the weight gradient of `conv2d_weight_grad` (input gradient: XLA's)."""
    return xla.conv2d(x, w, padding)


def _conv2d_fwd(x, w, padding):
    return xla.conv2d(x, w, padding), (x, w)


def _conv2d_bwd(padding, res, g):
    x, w = res
    _, vjp_x = jax.vjp(lambda x_: xla.conv2d(x_, w, padding), x)
    (dx,) = vjp_x(g)
    dw = conv2d_weight_grad(x, g, w.shape[0], w.shape[1], padding)
    return dx, dw.astype(w.dtype)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)
