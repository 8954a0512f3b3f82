"""Tests for prior/: QR basis, penalty, PersonalizedPrior forward/init modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prior import (
    PersonalizedPrior,
    basis_vectors_ws,
    init_offset_from_w_avg,
    orthogonality_penalty,
    orthonormal_basis,
)

NUM_WS, W_DIM, K = 3, 16, 5


def _init(orthogonality="qr", init_mode="official", seed=0):
    prior = PersonalizedPrior(NUM_WS, W_DIM, K, orthogonality=orthogonality, init_mode=init_mode)
    params = prior.init(jax.random.PRNGKey(seed), jnp.zeros((1, K)))["params"]
    return prior, params


def test_orthonormal_basis_is_the_official_householder_qr():
    basis = np.random.default_rng(0).standard_normal((K, NUM_WS * W_DIM)).astype(np.float32)
    q = np.asarray(orthonormal_basis(jnp.asarray(basis)))
    # numpy and torch.qr both call LAPACK geqrf/orgqr: same signs as the official Q.T.
    q_ref = np.linalg.qr((basis.astype(np.float64) + 1e-8).T)[0].T
    np.testing.assert_allclose(q, q_ref, atol=1e-5)
    np.testing.assert_allclose(q @ q.T, np.eye(K), atol=1e-5)


def test_orthonormal_basis_full_size_is_orthonormal():
    basis = jax.random.normal(jax.random.PRNGKey(1), (50, 14 * 512))
    q = np.asarray(jax.jit(orthonormal_basis)(basis), np.float64)
    assert q.shape == (50, 14 * 512)
    np.testing.assert_allclose(q @ q.T, np.eye(50), atol=1e-5)


def test_orthonormal_basis_rejects_wide_input():
    with pytest.raises(ValueError, match="k <= D"):
        orthonormal_basis(jnp.zeros((10, 4)))


def test_penalty_zero_for_orthonormal_positive_otherwise():
    q = orthonormal_basis(jax.random.normal(jax.random.PRNGKey(2), (K, 40)))
    assert float(orthogonality_penalty(q)) < 1e-5
    basis = jnp.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    # B Bᵀ - I = [[0, 1], [1, 1]] -> 3.
    np.testing.assert_allclose(float(orthogonality_penalty(basis)), 3.0, rtol=1e-6)


def test_qr_prior_forward_is_coeffs_times_q_plus_offset():
    prior, params = _init("qr")
    assert params["basis"].shape == (K, NUM_WS * W_DIM)
    assert params["offset"].shape == (NUM_WS * W_DIM,)
    # Official init: offset is the mean of the N(0, 1) basis draw.
    np.testing.assert_allclose(params["offset"], params["basis"].mean(0), atol=1e-6)
    coeffs = jax.random.normal(jax.random.PRNGKey(3), (4, K))
    ws = jax.jit(prior.apply)({"params": params}, coeffs)
    assert ws.shape == (4, NUM_WS, W_DIM)
    q = np.asarray(orthonormal_basis(params["basis"]), np.float64)
    want = np.asarray(coeffs, np.float64) @ q + np.asarray(params["offset"], np.float64)
    np.testing.assert_allclose(ws.reshape(4, -1), want, atol=1e-5)
    rows = np.asarray(prior.apply({"params": params}, 1e3 * jnp.eye(K)), np.float64).reshape(K, -1)
    rows = (rows - np.asarray(params["offset"])) / 1e3
    np.testing.assert_allclose(rows @ rows.T, np.eye(K), atol=1e-5)


@pytest.mark.parametrize("mode", ["penalty", "none"])
def test_raw_modes_use_unit_scale_raw_basis(mode):
    prior, params = _init(mode)
    norms = np.linalg.norm(np.asarray(params["basis"]), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=0.35)  # rows of N(0, 1/D), D = 48
    coeffs = jax.random.normal(jax.random.PRNGKey(4), (2, K))
    ws = prior.apply({"params": params}, coeffs)
    want = coeffs @ params["basis"] + params["offset"]
    np.testing.assert_allclose(ws.reshape(2, -1), want, atol=1e-5)


def test_module_penalty_only_in_penalty_mode():
    for mode in ("qr", "none"):
        prior, params = _init(mode)
        assert float(prior.apply({"params": params}, method="penalty")) == 0.0
    prior, params = _init("penalty")
    got = prior.apply({"params": params}, method="penalty")
    assert float(got) > 0.0
    np.testing.assert_allclose(got, orthogonality_penalty(params["basis"]), rtol=1e-6)


@pytest.mark.parametrize("mode", ["qr", "penalty"])
def test_gradients_reach_basis_and_offset(mode):
    prior, params = _init(mode)
    coeffs = jax.random.normal(jax.random.PRNGKey(5), (2, K))
    target = jax.random.normal(jax.random.PRNGKey(6), (2, NUM_WS, W_DIM))

    def loss(p):
        ws = prior.apply({"params": p}, coeffs)
        return jnp.mean((ws - target) ** 2) + prior.apply({"params": p}, method="penalty")

    grads = jax.jit(jax.grad(loss))(params)
    for name in ("basis", "offset"):
        g = np.asarray(grads[name])
        assert np.all(np.isfinite(g)), name
        assert np.abs(g).max() > 0, name


def test_w_avg_init_tiles_w_avg():
    prior = PersonalizedPrior(NUM_WS, W_DIM, K, init_mode="w_avg")
    params = prior.init(jax.random.PRNGKey(0), jnp.zeros((1, K)))["params"]
    np.testing.assert_array_equal(params["offset"], 0.0)  # to be filled from the generator's w_avg
    params = init_offset_from_w_avg(params, jnp.arange(W_DIM, dtype=jnp.float32))
    np.testing.assert_array_equal(params["offset"], np.tile(np.arange(W_DIM), NUM_WS))
    ws = prior.apply({"params": params}, jnp.zeros((1, K)))
    np.testing.assert_allclose(ws[0], np.broadcast_to(np.arange(W_DIM), (NUM_WS, W_DIM)))
    tiled = init_offset_from_w_avg(params, jnp.ones((NUM_WS, W_DIM)))
    np.testing.assert_array_equal(tiled["offset"], 1.0)
    with pytest.raises(ValueError, match="cannot fill"):
        init_offset_from_w_avg(params, jnp.ones((W_DIM + 1,)))


def test_basis_vectors_ws_are_one_hot_latents():
    prior, params = _init("qr")
    latents = basis_vectors_ws(params, 10.0, w_dim=W_DIM)
    assert latents.shape == (K, NUM_WS, W_DIM)
    np.testing.assert_allclose(latents, prior.apply({"params": params}, 10.0 * jnp.eye(K)),
                               atol=1e-5)
    neg = basis_vectors_ws(params, -5.0, w_dim=W_DIM)
    offset = params["offset"].reshape(NUM_WS, W_DIM)
    np.testing.assert_allclose(neg - offset, -0.5 * (latents - offset), atol=1e-5)
    method = prior.apply({"params": params}, 10.0, method="basis_ws")
    np.testing.assert_allclose(method, latents, atol=1e-6)


def test_bad_config_and_input_raise():
    with pytest.raises(ValueError, match="orthogonality"):
        _init("gram")
    with pytest.raises(ValueError, match="init_mode"):
        _init(init_mode="zeros")
    prior, params = _init()
    with pytest.raises(ValueError, match="coeffs"):
        prior.apply({"params": params}, jnp.zeros((2, K + 1)))
