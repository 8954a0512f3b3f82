"""Tests for encoders/: shapes, official parameter counts, variants, audio smoothing, gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from encoders import AudioEncoder, ExpressionEncoder, RGBEncoder, make_encoder, smoothing_windows
from encoders.layers import (
    EqualConv2d,
    EqualLinear,
    blur,
    torch_default_bias_init,
    torch_default_kernel_init,
)
from prior import PersonalizedPrior

K = 6
SMALL_RGB = dict(input_size=8, feature_dim=32, channel_base=64, channel_max=16)
SMALL_MLP = dict(hidden=32, num_layers=3)


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def _official_rgb_count(k: int, size: int = 256) -> int:
    """Parameter count of the official Encoder(size, 512, k), from encoder3d.py's layer list."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    n = 3 * table[size] + table[size]  # 1x1 conv (no bias) + FusedLeakyReLU bias
    c_in = table[size]
    res = size
    while res > 4:
        c_out = table[res // 2]
        n += 9 * c_in * c_in + c_in  # conv1 + act bias
        n += 9 * c_in * c_out + c_out  # conv2 (blur, stride 2) + act bias
        n += c_in * c_out  # skip 1x1, no bias
        c_in, res = c_out, res // 2
    n += 16 * 512 * 512  # final 4x4 conv, no bias
    return n + 4 * (512 * 512 + 512) + 512 * k + k


def _mlp_count(in_dim, hidden, layers, k):
    return in_dim * hidden + hidden + (layers - 2) * (hidden * hidden + hidden) + hidden * k + k


def _shapes(module, *args, **kwargs):
    return jax.eval_shape(functools.partial(module.init, **kwargs), jax.random.PRNGKey(0), *args)


@pytest.mark.parametrize("size", [256, 512])
def test_rgb_official_parameter_count(size):
    enc = RGBEncoder(50, input_size=size)
    shapes = _shapes(enc, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
    assert _count(shapes) == _official_rgb_count(50, size)
    assert sorted(shapes["params"]) == sorted(
        [f"convs_{i}" for i in range(int(np.log2(size)))] + ["fc"])


def test_expression_and_audio_official_parameter_counts():
    expr = _shapes(ExpressionEncoder(50), jax.ShapeDtypeStruct((1, 76), jnp.float32))
    assert _count(expr) == _mlp_count(76, 512, 7, 50) == 1378354
    audio_net = 29 * 32 * 3 + 32 + 32 * 32 * 3 + 32 + 32 * 64 * 3 + 64 + 64 * 64 * 3 + 64
    audio_net += 2 * (64 * 64 + 64)
    attention = sum(i * o * 3 + o for i, o in [(32, 16), (16, 8), (8, 4), (4, 2), (2, 1)]) + 72
    plain = _shapes(AudioEncoder(50), jax.ShapeDtypeStruct((1, 16, 29), jnp.float32))
    assert _count(plain) == audio_net + _mlp_count(64, 512, 7, 50)
    smooth = _shapes(AudioEncoder(50, temporal_smoothing=True),
                     jax.ShapeDtypeStruct((1, 8, 16, 29), jnp.float32))
    assert _count(smooth) == audio_net + attention + _mlp_count(64, 512, 7, 50)


def test_blur_matches_upfirdn_on_an_impulse():
    x = jnp.zeros((1, 5, 5, 1)).at[0, 2, 2, 0].set(1.0)
    y = blur(x, (2, 1))  # 5 + 3 - 4 + 1 = 5 outputs per axis
    taps = np.array([1, 3, 3, 1]) / 8.0
    want = np.zeros((5, 5))
    for i in range(5):
        for j in range(5):
            di, dj = 2 - (i - 2), 2 - (j - 2)  # tap index hitting the impulse
            if 0 <= di < 4 and 0 <= dj < 4:
                want[i, j] = taps[di] * taps[dj]
    np.testing.assert_allclose(y[0, :, :, 0], want, atol=1e-7)


def _random_variables(module, *args, seed=0):
    """Variables of ``module`` with the shapes ``init`` makes but values from numpy.

    Compiling real initializers (threefry RNG) costs about a second per parameter on these CPUs,
    so most tests use N(0, 1) kernels (the official equalized-lr init) and N(0, 0.1²) biases;
    the audio nets' plain Conv/Dense kernels are scaled by 1/sqrt(fan_in) like PyTorch's.
    ``test_initializers_follow_the_official_recipes`` covers the real initializers.
    """
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        keys = jax.tree_util.keystr(path)
        value = rng.standard_normal(leaf.shape).astype(np.float32)
        if keys.endswith("['bias']"):
            return jnp.asarray(0.1 * value)
        if "audio_net" in keys or "attention" in keys:
            value /= np.sqrt(np.prod(leaf.shape[:-1]))
        return jnp.asarray(value)

    return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.fixture(scope="module")
def rgb_setup():
    enc = RGBEncoder(K, **SMALL_RGB)
    images = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 3), minval=-1, maxval=1)
    return enc, images, _random_variables(enc, images)


@pytest.fixture(scope="module")
def expression_setup():
    enc = ExpressionEncoder(K, **SMALL_MLP)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 76))
    return enc, x, _random_variables(enc, x)


@pytest.fixture(scope="module")
def audio_setup():
    enc = AudioEncoder(K, temporal_smoothing=True, **SMALL_MLP)
    windows = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 16, 29))
    return enc, windows, _random_variables(enc, windows)


def test_initializers_follow_the_official_recipes():
    enc = AudioEncoder(K, temporal_smoothing=True, **SMALL_MLP)
    # Initialized from single windows, the attention params must exist all the same.
    shapes = jax.eval_shape(enc.init, jax.random.PRNGKey(1), jnp.zeros((2, 16, 29)))["params"]
    assert sorted(shapes) == ["attention", "audio_net", "fc"]
    assert shapes["attention"]["fc"]["kernel"].shape == (8, 8)
    # PyTorch defaults in AudioNet / AudioAttNet: U(+-1/sqrt(fan_in)) weights and biases.
    bound = 1 / np.sqrt(3 * 29)
    kernel = torch_default_kernel_init()(jax.random.PRNGKey(2), (3, 29, 32))
    bias = torch_default_bias_init(3 * 29)(jax.random.PRNGKey(3), (32,))
    for leaf in (kernel, bias):
        assert np.abs(leaf).max() <= bound and np.abs(leaf).max() > 0.8 * bound
    # Equalized-lr layers: N(0, 1) weights, zero biases.
    dense = EqualLinear(64).init(jax.random.PRNGKey(4), jnp.zeros((1, 32)))["params"]
    np.testing.assert_allclose(np.std(dense["kernel"]), 1.0, atol=0.1)
    np.testing.assert_array_equal(dense["bias"], 0.0)
    conv = EqualConv2d(8, 3, use_bias=False).init(jax.random.PRNGKey(5), jnp.zeros((1, 4, 4, 8)))
    assert list(conv["params"]) == ["kernel"] and conv["params"]["kernel"].shape == (3, 3, 8, 8)
    np.testing.assert_allclose(np.std(conv["params"]["kernel"]), 1.0, atol=0.1)


def test_rgb_encoder_resizes_and_variants_differ(rgb_setup):
    lin, images, variables = rgb_setup
    nonlin = RGBEncoder(K, nonlinear=True, **SMALL_RGB)
    apply = jax.jit(lin.apply)
    # A constant image stays constant when resized: 16 px and 8 px inputs give the same code.
    const = jnp.full((1, 16, 16, 3), 0.3)
    big = jnp.concatenate([jax.image.resize(images[:1], (1, 16, 16, 3), "nearest"), const])
    out_big = apply(variables, big)
    assert out_big.shape == (2, K) and np.all(np.isfinite(out_big))
    out_small = apply(variables, jnp.concatenate([images[:1], const[:, :8, :8]]))
    np.testing.assert_allclose(out_big[1], out_small[1], atol=1e-5)
    # Same parameter tree for both variants; only the head's activations differ.
    out_nonlin = jax.jit(nonlin.apply)(variables, big)
    assert not np.allclose(out_big, out_nonlin, atol=1e-3)
    with pytest.raises(ValueError, match="power of two"):
        RGBEncoder(K, input_size=48).init(jax.random.PRNGKey(0), jnp.zeros((1, 48, 48, 3)))
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        lin.apply(variables, jnp.zeros((1, 8, 8, 4)))


def test_expression_encoder_linear_variant_is_affine(expression_setup):
    lin, x, variables = expression_setup
    nonlin = ExpressionEncoder(K, nonlinear=True, **SMALL_MLP)
    a, b = x[0], x[1]
    # Rows: a + b, a, b, 0. The official stack has no activations: f(a + b) = f(a) + f(b) - f(0).
    batch = jnp.stack([a + b, a, b, jnp.zeros_like(a)])
    f = jax.jit(lin.apply)(variables, batch)
    assert f.shape == (4, K)
    np.testing.assert_allclose(f[0], f[1] + f[2] - f[3], atol=1e-4)
    g = jax.jit(nonlin.apply)(variables, batch)
    assert np.abs(g[0] - g[1] - g[2] + g[3]).max() > 1e-2
    with pytest.raises(ValueError, match=r"\[B, 76\]"):
        lin.apply(variables, jnp.zeros((3, 64)))


def test_audio_encoder_windows_smoothing_and_centre(audio_setup):
    enc, windows, variables = audio_setup
    smooth = jax.jit(functools.partial(enc.apply, smooth=True))
    plain = jax.jit(functools.partial(enc.apply, smooth=False))
    # Without smoothing a [B, T, 16, 29] input uses the centre window T // 2.
    centre = plain(variables, windows)
    np.testing.assert_allclose(enc.apply(variables, windows[:, 4]), centre, atol=1e-5)
    # Attention weights sum to one: T identical windows smooth to that window's code.
    same = jnp.repeat(windows[:, 4:5], 8, axis=1)
    both = smooth(variables, jnp.concatenate([windows, same]))
    assert both.shape == (4, K)
    assert not np.allclose(both[:2], centre, atol=1e-4)
    np.testing.assert_allclose(both[2:], centre, atol=1e-5)
    with pytest.raises(ValueError, match="smoothing_window"):
        enc.apply(variables, windows[:, :5])
    with pytest.raises(ValueError, match="temporal_smoothing"):
        AudioEncoder(K).apply(variables, windows, smooth=True)
    nonlin = AudioEncoder(K, nonlinear=True, temporal_smoothing=True, **SMALL_MLP)
    out_nonlin = jax.jit(functools.partial(nonlin.apply, smooth=False))(variables, windows)
    assert not np.allclose(out_nonlin, centre, atol=1e-4)


def test_smoothing_windows_zero_pads_like_the_official_trainer():
    auds = jnp.arange(1, 11, dtype=jnp.float32)[:, None, None] * jnp.ones((10, 16, 29))
    win = smoothing_windows(auds, jnp.array([0, 5, 9]), size=8)
    assert win.shape == (3, 8, 16, 29)
    firsts = np.asarray(win[:, :, 0, 0])
    np.testing.assert_array_equal(firsts[0], [0, 0, 0, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(firsts[1], [2, 3, 4, 5, 6, 7, 8, 9])
    np.testing.assert_array_equal(firsts[2], [6, 7, 8, 9, 10, 0, 0, 0])
    limited = smoothing_windows(auds, jnp.array([5]), size=8, num_frames=7)
    np.testing.assert_array_equal(limited[0, :, 0, 0], [2, 3, 4, 5, 6, 7, 0, 0])


@pytest.mark.parametrize("kind", ["rgb", "expression", "audio"])
def test_gradients_flow_through_encoder_and_prior(kind, request):
    encoder, x, variables = request.getfixturevalue(f"{kind}_setup")
    prior = PersonalizedPrior(num_ws=2, w_dim=8, k=K)
    params = {
        "encoder": variables["params"],
        "prior": prior.init(jax.random.PRNGKey(2), jnp.zeros((1, K)))["params"],
    }
    target = jax.random.normal(jax.random.PRNGKey(3), (x.shape[0], 2, 8))

    def loss(p):
        ws = prior.apply({"params": p["prior"]}, encoder.apply({"params": p["encoder"]}, x))
        return jnp.mean((ws - target) ** 2)

    grads = jax.jit(jax.grad(loss))(params)
    assert set(grads) == {"encoder", "prior"}
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        g = np.asarray(g)
        assert np.all(np.isfinite(g)), jax.tree_util.keystr(path)
        assert np.abs(g).max() > 0, jax.tree_util.keystr(path)


def test_make_encoder_rejects_unknown_kind_and_config():
    with pytest.raises(ValueError, match="kind"):
        make_encoder("video", K)
    with pytest.raises(TypeError, match="AudioEncoder"):
        make_encoder("audio", K, input_size=256)
    assert isinstance(make_encoder("rgb", K, input_size=64), RGBEncoder)
