"""Every convolution kernel against the plain XLA path: values and both gradients, on CPU."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import conv_kernels
from conv_kernels import cpu_gemm, xla


def conv_transpose_numpy(x, w):
    """torch conv_transpose2d(stride=2) semantics: out[2i+ky, 2j+kx] += x[i,j] @ w[ky,kx]."""
    n, h, wd, _ = x.shape
    k = w.shape[0]
    out = np.zeros((n, 2 * h + k - 2, 2 * wd + k - 2, w.shape[-1]))
    for ky in range(k):
        for kx in range(k):
            out[:, ky: ky + 2 * h: 2, kx: kx + 2 * wd: 2] += np.einsum("nhwi,io->nhwo", x, w[ky, kx])
    return out


def test_resolve_picks_per_backend_and_refuses_unknown_names():
    assert conv_kernels.resolve("conv", "auto", "cpu") == "cpu_gemm"
    assert conv_kernels.resolve("conv", "auto", "gpu") == "xla"
    assert conv_kernels.resolve("conv", "auto", "tpu") == "xla"
    assert conv_kernels.resolve("upconv", "auto", "cpu") == "polyphase"
    assert conv_kernels.resolve("upconv", "auto", "gpu") == "xla"
    assert conv_kernels.resolve("conv", "xla", "cpu") == "xla"
    with pytest.raises(ValueError, match="conv_impl must be one of"):
        conv_kernels.resolve("conv", "cudnn")
    with pytest.raises(ValueError, match="concrete"):
        conv_kernels.conv2d(jnp.ones((1, 4, 4, 1)), jnp.ones((3, 3, 1, 1)), 1, impl="auto")


@pytest.mark.parametrize("chunk_bytes", [None, 1, 3000])  # direct GEMMs; one row per block; several rows
@pytest.mark.parametrize("kh,kw,padding", [(3, 3, 1), (2, 2, 0), (2, 1, 0), (1, 1, 0), (4, 4, 0)])
def test_cpu_gemm_conv_matches_xla_values_and_gradients(monkeypatch, chunk_bytes, kh, kw, padding):
    if chunk_bytes is not None:
        monkeypatch.setattr(cpu_gemm, "WGRAD_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((2, 9, 8, 5)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((kh, kw, 5, 4)), jnp.float32)
    out_shape = (2, 10 - kh + 2 * padding, 9 - kw + 2 * padding, 4)
    g = jnp.asarray(rng.standard_normal(out_shape), jnp.float32)
    loss = lambda impl: lambda x, w: jnp.sum(conv_kernels.conv2d(x, w, padding, impl) * g)
    np.testing.assert_allclose(conv_kernels.conv2d(x, w, padding, "cpu_gemm"), xla.conv2d(x, w, padding),
                               atol=1e-5, rtol=1e-5)
    ours = jax.grad(loss("cpu_gemm"), argnums=(0, 1))(x, w)
    plain = jax.grad(loss("xla"), argnums=(0, 1))(x, w)
    for a, b in zip(ours, plain):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(cpu_gemm.conv2d_weight_grad(x, g, kh, kw, padding), plain[1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("impl,conv_impl", [("xla", "xla"), ("polyphase", "xla"), ("polyphase", "cpu_gemm")])
def test_transposed_conv_implementations_equal_torch_semantics_and_each_other(impl, conv_impl):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 6, 3))
    w = rng.standard_normal((3, 3, 3, 4))
    got = conv_kernels.conv_transpose2d_stride2_k3(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32),
                                                   impl, conv_impl)
    expected = np.pad(conv_transpose_numpy(x, w), ((0, 0), (0, 1), (0, 1), (0, 0)))
    assert got.shape == (2, 12, 14, 4)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    g = jnp.asarray(rng.standard_normal(got.shape), jnp.float32)

    def grads(impl_, conv_impl_):
        f = lambda x, w: jnp.sum(conv_kernels.conv_transpose2d_stride2_k3(x, w, impl_, conv_impl_) * g)
        return jax.grad(f, argnums=(0, 1))(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32))

    for a, b in zip(grads(impl, conv_impl), grads("xla", "xla")):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
