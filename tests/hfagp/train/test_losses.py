"""The reconstruction loss (hfagp.train.losses): L2 at the loss resolution + lambda * LPIPS (fixture weights)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hfagp.train.losses import reconstruction_loss
from shared_fixtures import LPIPS_FIXTURES, missing_fixture


def _images(seed, size=64):
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (2, size, size, 3)), jnp.float32)


def test_l2_is_computed_on_area_averaged_images():
    pred, target = _images(0), _images(1)
    loss, metrics = reconstruction_loss(pred, target, loss_resolution=32, lpips_weight=0.0)
    avg = lambda x: np.asarray(x).reshape(2, 32, 2, 32, 2, 3).mean(axis=(2, 4))
    mse = np.mean((avg(pred) - avg(target)) ** 2)
    np.testing.assert_allclose(loss, mse, rtol=1e-6)
    np.testing.assert_allclose(metrics["psnr"], -10 * np.log10(mse / 4), rtol=1e-6)
    with pytest.raises(ValueError, match="not an integer factor"):
        reconstruction_loss(pred, target, loss_resolution=48, lpips_weight=0.0)


def test_lpips_term_with_the_fixture_weights_and_its_gradient():
    from hfagp.lpips import make_lpips

    weights = LPIPS_FIXTURES / "lpips_alex_weights.npz"
    if not weights.is_file():
        missing_fixture(f"{weights} not found")
    lpips_fn = make_lpips(weights, "alex")
    pred, target = _images(2), _images(3)
    loss, metrics = reconstruction_loss(pred, target, loss_resolution=64, lpips_weight=5.0, lpips_fn=lpips_fn)
    distance = np.asarray(lpips_fn(pred, target)).reshape(-1)
    assert distance.shape == (2,) and np.all(distance > 0)
    np.testing.assert_allclose(metrics["lpips"], distance.mean(), rtol=1e-6)
    np.testing.assert_allclose(loss, metrics["l2"] + 5.0 * distance.mean(), rtol=1e-6)
    grad = jax.grad(lambda p: reconstruction_loss(p, target, loss_resolution=64, lpips_weight=5.0,
                                                  lpips_fn=lpips_fn)[0])(pred)
    grad_l2 = jax.grad(lambda p: reconstruction_loss(p, target, loss_resolution=64, lpips_weight=0.0)[0])(pred)
    assert np.all(np.isfinite(grad)) and not np.allclose(grad, grad_l2)  # the LPIPS term contributes
    with pytest.raises(ValueError, match="no LPIPS function"):
        reconstruction_loss(pred, target, loss_resolution=64, lpips_weight=1.0)


def test_face_weights_put_boxes_about_the_mouth_and_eyes():
    from hfagp.train.losses import FACE_BOXES, face_weights

    # Mouth at (32, 40), eyes at (40, 24) and (24, 24): eye distance 16 px.
    points = jnp.asarray([[[32.0, 40.0], [40.0, 24.0], [24.0, 24.0]]])
    w = np.asarray(face_weights(points, 64, 4.0))[0]
    assert set(np.unique(w)) == {1.0, 5.0}
    half, above, below = (16 * k for k in FACE_BOXES["mouth"])
    assert w[40, 32] == w[int(40 + below), 32] == w[int(np.ceil(40 - above)), int(32 + half)] == 5.0
    assert w[int(40 + below) + 1, 32] == 1.0 and w[40, int(32 + half) + 1] == 1.0
    assert w[24, 40] == w[24, 24] == 5.0 and w[24, 32] == 1.0        # each eye, not the bridge of the nose
    assert w[0, 0] == w[63, 63] == 1.0


def test_face_weighted_l2_counts_face_pixels_more():
    pred, target = _images(0), _images(1)
    plain, metrics = reconstruction_loss(pred, target, loss_resolution=64, lpips_weight=0.0)
    ones = jnp.ones((2, 64, 64))
    same, _ = reconstruction_loss(pred, target, loss_resolution=64, lpips_weight=0.0, pixel_weights=ones)
    np.testing.assert_allclose(same, plain, rtol=1e-6)
    # An error only inside the weighted region weighs more; the logged l2/psnr stay the plain mean.
    weights = ones.at[:, :8, :8].set(11.0)
    err = jnp.zeros_like(pred).at[:, :8, :8].set(0.5)
    loss, m = reconstruction_loss(target + err, target, loss_resolution=32, lpips_weight=0.0, pixel_weights=weights)
    plain_mse = float(jnp.mean(jnp.square(err)))
    np.testing.assert_allclose(m["l2"], plain_mse, rtol=1e-5)
    np.testing.assert_allclose(loss, 0.25 * 11 * 64 / (11 * 64 + 4032), rtol=1e-5)
    assert m["weighted_l2"] == loss
