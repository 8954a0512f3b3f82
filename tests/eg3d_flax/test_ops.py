"""Op-level checks against direct numpy implementations of the reference semantics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eg3d_flax import ops, rendering, triplane


def upfirdn2d_numpy(x, f, up, pad, gain):
    """Literal reference algorithm (zero insertion, pad, true convolution with f), NHWC, float64."""
    n, h, w, c = x.shape
    z = np.zeros((n, h * up, w * up, c))
    z[:, ::up, ::up] = x
    px0, px1, py0, py1 = pad
    z = np.pad(z, ((0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0)), (0, 0)))
    z = z[:, max(-py0, 0): z.shape[1] - max(-py1, 0), max(-px0, 0): z.shape[2] - max(-px1, 0)]
    ff = (f * gain)[::-1, ::-1]
    kh, kw = f.shape
    out = np.zeros((n, z.shape[1] - kh + 1, z.shape[2] - kw + 1, c))
    for r in range(kh):
        for s in range(kw):
            out += z[:, r: r + out.shape[1], s: s + out.shape[2]] * ff[r, s]
    return out


def conv_transpose_numpy(x, w):
    """torch conv_transpose2d(stride=2) semantics: out[2i+ky, 2j+kx] += x[i,j] @ w[ky,kx]."""
    n, h, wd, _ = x.shape
    k = w.shape[0]
    out = np.zeros((n, 2 * h + k - 2, 2 * wd + k - 2, w.shape[-1]))
    for ky in range(k):
        for kx in range(k):
            out[:, ky: ky + 2 * h: 2, kx: kx + 2 * wd: 2] += np.einsum("nhwi,io->nhwo", x, w[ky, kx])
    return out


def test_upfirdn2d_matches_reference_algorithm():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 7, 3))
    f = rng.standard_normal((4, 4))
    for up, pad, gain in [(1, (1, 2, 0, 1), 1.0), (2, (2, 1, 2, 1), 4.0), (2, (-1, 0, 1, -1), 2.0)]:
        got = ops.upfirdn2d(jnp.asarray(x, jnp.float32), jnp.asarray(f, jnp.float32), up=up, padding=pad, gain=gain)
        np.testing.assert_allclose(got, upfirdn2d_numpy(x, f, up, pad, gain), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("upconv_impl,conv_impl", [("polyphase", "cpu_gemm"), ("polyphase", "xla"), ("xla", "xla")])
def test_up_conv_equals_transposed_conv_then_fir(upconv_impl, conv_impl):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 5, 4))
    w = rng.standard_normal((3, 3, 4, 3))
    f = ops.setup_filter()
    expected = upfirdn2d_numpy(conv_transpose_numpy(x, w), f, 1, (1, 1, 1, 1), 4.0)
    got = ops.conv2d_up2(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), jnp.asarray(f), padding=1,
                         upconv_impl=upconv_impl, conv_impl=conv_impl)
    assert got.shape == (2, 12, 10, 3)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_modulated_conv_equals_grouped_per_sample_weights():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 6, 4)).astype(np.float32)
    w = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
    s = rng.standard_normal((2, 4)).astype(np.float32)
    got = ops.modulated_conv2d(jnp.asarray(x), jnp.asarray(w), jnp.asarray(s), padding=1)
    for b in range(2):
        wb = w * s[b][None, None, :, None]
        wb = wb / np.sqrt((wb ** 2).sum(axis=(0, 1, 2)) + 1e-8)
        ref = jax.lax.conv_general_dilated(x[b:b + 1], wb, (1, 1), [(1, 1)] * 2,
                                           dimension_numbers=("NHWC", "HWIO", "NHWC"))
        np.testing.assert_allclose(got[b:b + 1], ref, atol=1e-4, rtol=1e-4)


def test_bias_act_gain_and_clamp():
    x = jnp.asarray([-2.0, -0.5, 0.5, 300.0])
    out = ops.bias_act(x, jnp.asarray(1.0), act="lrelu", gain=np.sqrt(2), clamp=256.0)
    expected = np.clip(np.where(np.array([-1, 0.5, 1.5, 301.0]) > 0, [-1, 0.5, 1.5, 301.0],
                                0.2 * np.array([-1, 0.5, 1.5, 301.0])) * np.sqrt(2), -256, 256)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("size_in,size_out,aa", [(64, 128, True), (64, 128, False), (256, 128, True)])
def test_resize_bilinear_matches_half_pixel_and_antialias_definitions(size_in, size_out, aa):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, size_in, size_in, 2)).astype(np.float32)
    got = np.asarray(ops.resize_bilinear(jnp.asarray(x), size_out, aa))
    # jax.image.resize implements the same triangle-kernel (antialiased when shrinking) half-pixel scheme.
    ref = np.asarray(jax.image.resize(jnp.asarray(x), (1, size_out, size_out, 2), "linear", antialias=aa))
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_sample_pdf_matches_numpy_searchsorted():
    rng = np.random.default_rng(5)
    bins = np.sort(rng.uniform(2, 3, (7, 10)), axis=-1).astype(np.float32)
    weights = rng.uniform(0, 1, (7, 8)).astype(np.float32)
    weights[0] = 0.0
    u = np.broadcast_to(np.linspace(0, 1, 6, dtype=np.float32), (7, 6))
    got = np.asarray(rendering.sample_pdf(jnp.asarray(bins), jnp.asarray(weights), jnp.asarray(u)))
    w = weights + 1e-5
    cdf = np.concatenate([np.zeros((7, 1)), np.cumsum(w / w.sum(-1, keepdims=True), -1)], -1)
    for r in range(7):
        inds = np.searchsorted(cdf[r], u[r], side="right")
        below, above = np.maximum(inds - 1, 0), np.minimum(inds, 8)
        denom = cdf[r, above] - cdf[r, below]
        denom = np.where(denom < 1e-5, 1, denom)
        ref = bins[r, below] + (u[r] - cdf[r, below]) / denom * (bins[r, above] - bins[r, below])
        np.testing.assert_allclose(got[r], ref, atol=1e-5)


def test_unify_samples_sorts_by_depth_and_keeps_gradients():
    rng = np.random.default_rng(1)
    d1, d2 = (jnp.asarray(np.sort(rng.uniform(2, 3, (2, 4, 6)), -1), jnp.float32) for _ in range(2))
    c1, c2 = (jnp.asarray(rng.normal(size=(2, 4, 6, 3)), jnp.float32) for _ in range(2))
    s1, s2 = (jnp.asarray(rng.normal(size=(2, 4, 6)), jnp.float32) for _ in range(2))
    d, c, s = rendering.unify_samples(d1, c1, s1, d2, c2, s2)
    depths = np.concatenate([d1, d2], -1)
    order = np.argsort(depths, axis=-1, kind="stable")
    np.testing.assert_array_equal(d, np.take_along_axis(depths, order, -1))
    np.testing.assert_array_equal(c, np.take_along_axis(np.concatenate([c1, c2], -2), order[..., None], -2))
    np.testing.assert_array_equal(s, np.take_along_axis(np.concatenate([s1, s2], -1), order, -1))
    assert np.all(np.diff(np.asarray(d), axis=-1) >= 0)
    weight = jnp.arange(12.0)
    grad = jax.grad(lambda c1_: jnp.sum(rendering.unify_samples(d1, c1_, s1, d2, c2, s2)[1] * weight[:, None]))(c1)
    rank_of_first_set = np.argsort(order, -1)[..., :6]  # where each of c1's samples went
    np.testing.assert_array_equal(grad, np.broadcast_to(rank_of_first_set[..., None].astype(np.float32), grad.shape))


def test_grid_sample_zero_padding_and_corners():
    planes = jnp.arange(2 * 3 * 4 * 4 * 1, dtype=jnp.float32).reshape(2, 3, 4, 4, 1)
    # pixel centres (align_corners=False): u = (2*col + 1)/W - 1
    uv = jnp.asarray([[[[-0.75, -0.75], [0.75, 0.25], [1.5, 0.0], [-1.0, -1.0]]]], jnp.float32)
    uv = jnp.broadcast_to(uv, (2, 3, 4, 2))
    out = np.asarray(triplane.grid_sample_bilinear(planes, uv))[..., 0]
    p = np.asarray(planes)[..., 0]
    np.testing.assert_allclose(out[:, :, 0], p[:, :, 0, 0])            # exact texel centre
    np.testing.assert_allclose(out[:, :, 1], p[:, :, 2, 3])            # row 2, col 3
    assert np.all(out[:, :, 2] == 0)                                   # fully outside -> 0
    np.testing.assert_allclose(out[:, :, 3], p[:, :, 0, 0] * 0.25)     # corner: 3 of 4 taps padded


def test_plane_projection_keeps_the_reference_axes():
    pts = jnp.asarray([[[0.1, 0.2, 0.3]]])
    proj = np.asarray(triplane.project_onto_planes(pts))[0, :, 0]
    np.testing.assert_allclose(proj, [[0.1, 0.2], [0.1, 0.3], [0.3, 0.1]], atol=1e-7)


@pytest.mark.parametrize("up,pad,shape", [
    (2, (2, 1, 2, 1), (2, 5, 7, 3)),      # upsample2d's padding
    (1, (1, 2, 0, 1), (2, 5, 7, 3)),
    (2, (-1, 0, 1, -1), (1, 6, 6, 2)),    # crops on some sides
    (1, (-1, -2, 3, 0), (1, 9, 9, 1)),
    (2, (3, 3, -2, 4), (1, 5, 6, 2)),
])
def test_separable_fir_equals_2d_fir_values_and_gradients(up, pad, shape):
    """The two-pass polyphase FIR and its hand-written adjoint against the literal 2-D algorithm."""
    rng = np.random.default_rng(11)
    f = np.outer(rng.standard_normal(4), rng.standard_normal(4)).astype(np.float32)
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    got, vjp = jax.vjp(lambda x_: ops.upfirdn2d_separable(x_, jnp.asarray(f), up, pad, 3.0), x)
    np.testing.assert_allclose(got, upfirdn2d_numpy(np.asarray(x, np.float64), f, up, pad, 3.0),
                               atol=1e-5, rtol=1e-5)
    ct = jnp.asarray(rng.standard_normal(got.shape), jnp.float32)
    _, vjp_ref = jax.vjp(lambda x_: ops.upfirdn2d(x_, jnp.asarray(f), up=up, padding=pad, gain=3.0), x)
    np.testing.assert_allclose(vjp(ct)[0], vjp_ref(ct)[0], atol=1e-5, rtol=1e-5)


def test_fused_triplane_sampling_equals_per_plane_mean_values_and_gradients():
    """sample_mean_from_planes (one fused gather, custom single-scatter backward) == mean of grid_sample,
    including points on plane edges and outside (zero padding), for both planes and coordinates."""
    rng = np.random.default_rng(12)
    planes = jnp.asarray(rng.standard_normal((2, 3, 8, 8, 5)), jnp.float32)
    pts = rng.uniform(-0.6, 0.6, (2, 300, 3))
    pts[:, :4] = [[0.499, 0.499, 0.499], [-0.5, 0.2, 0.0], [0.7, -0.7, 0.1], [0.0, 0.0, 0.0]]
    pts = jnp.asarray(pts, jnp.float32)

    def ref(pl, pt):
        return jnp.mean(triplane.sample_from_planes(pl, pt, 1.0), axis=1)

    def fused(pl, pt):
        return triplane.sample_mean_from_planes(pl, pt, 1.0)

    out, vjp = jax.vjp(fused, planes, pts)
    out_ref, vjp_ref = jax.vjp(ref, planes, pts)
    np.testing.assert_allclose(out, out_ref, atol=1e-6)
    g = jnp.asarray(rng.standard_normal(out.shape), jnp.float32)
    for a, b in zip(vjp(g), vjp_ref(g)):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5)


def test_non_separable_resample_filters_are_reported():
    from eg3d_flax.checkpoint import non_separable_filters

    good = {"buffers": {"b8": {"resample_filter": ops.setup_filter()}, "w_avg": np.zeros(4)}}
    assert non_separable_filters(good) == []
    bad = {"buffers": {"b8": {"resample_filter": np.eye(4, dtype=np.float32)}}}
    assert non_separable_filters(bad) == ["b8/resample_filter"]


def test_ray_march_depth_of_empty_rays_is_far_with_finite_gradients():
    """A ray through empty space (all weights exactly 0) gets the far depth, as the reference's inf clamp, and
    depth supervision still has a finite gradient."""
    opts = rendering.RenderOptions(depth_resolution=4, depth_resolution_importance=0)
    depths = jnp.broadcast_to(jnp.linspace(2.25, 3.3, 6), (1, 2, 6))
    colors = jnp.zeros((1, 2, 6, 3))

    def depth_of(dens):
        return rendering.ray_march(colors, dens, depths, opts)[1]

    dens = jnp.stack([jnp.full((6,), -200.0), jnp.full((6,), 5.0)])[None]   # ray 0 empty, ray 1 dense
    d = depth_of(dens)
    assert float(d[0, 0]) == pytest.approx(3.3) and 2.25 < float(d[0, 1]) < 3.3
    grad = jax.grad(lambda x: jnp.sum(depth_of(x)))(dens)
    assert np.all(np.isfinite(np.asarray(grad)))
