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
