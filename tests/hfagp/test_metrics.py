"""hfagp.metrics against scikit-image, scipy, numpy and known values."""

from __future__ import annotations

import numpy as np
import pytest

from hfagp import metrics
from shared_fixtures import LPIPS_FIXTURES, missing_fixture


def _pair(seed=0, shape=(3, 40, 37, 3), noise=0.3):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, shape).astype(np.float32)
    b = np.clip(a + noise * rng.standard_normal(shape), -1, 1).astype(np.float32)
    return a, b


def _smooth_pair(size=48):
    """Natural-image-like pair: a smooth gradient image and a shifted, darkened copy."""
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([np.sin(3 * x + y), np.cos(2 * y - x), x * y * 2 - 1], -1)
    other = 0.8 * np.roll(img, 2, axis=1) - 0.05
    return np.clip(img, -1, 1)[None].astype(np.float32), np.clip(other, -1, 1)[None].astype(np.float32)


def test_psnr_matches_skimage_and_known_values():
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _pair()
    got = np.asarray(metrics.psnr(a, b))
    want = [peak_signal_noise_ratio(a[i], b[i], data_range=2.0) for i in range(len(a))]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # Same as PSNR of the [0, 1] images with data range 1.
    want01 = [peak_signal_noise_ratio((b[i] + 1) / 2, (a[i] + 1) / 2, data_range=1.0) for i in range(len(a))]
    np.testing.assert_allclose(got, want01, rtol=1e-5)
    # A constant error of 0.2 in [-1, 1] is 0.1 in [0, 1]: exactly 20 dB; identical images: +inf.
    x = np.zeros((2, 16, 16, 3), np.float32)
    np.testing.assert_allclose(np.asarray(metrics.psnr(x + 0.2, x)), [20.0, 20.0], rtol=1e-5)
    assert np.all(np.isinf(np.asarray(metrics.psnr(x, x))))


@pytest.mark.parametrize("pair", ["noise", "smooth", "odd_size"])
def test_ssim_matches_skimage(pair):
    from skimage.metrics import structural_similarity

    a, b = {"noise": _pair, "smooth": _smooth_pair, "odd_size": lambda: _pair(1, (2, 11, 23, 3), 0.1)}[pair]()
    got = np.asarray(metrics.ssim(a, b))
    want = [structural_similarity((a[i].astype(np.float64) + 1) / 2, (b[i].astype(np.float64) + 1) / 2,
                                  gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                  data_range=1.0, channel_axis=-1) for i in range(len(a))]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_ssim_known_values_and_errors():
    a, _ = _pair()
    np.testing.assert_allclose(np.asarray(metrics.ssim(a, a)), 1.0, atol=1e-6)
    assert metrics.ssim_map(a, a).shape == (3, 30, 27, 3)
    # Uniform images: SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1) in [0, 1] units.
    x = np.full((1, 16, 16, 3), -1.0, np.float32)
    m1, m2, c1 = 0.0, 0.5, 0.01 ** 2
    np.testing.assert_allclose(np.asarray(metrics.ssim(x, x + 1.0)), (2 * m1 * m2 + c1) / (m1 ** 2 + m2 ** 2 + c1),
                               rtol=1e-5)
    window = metrics.gaussian_window()
    assert window.shape == (11,) and abs(window.sum() - 1) < 1e-12
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(np.zeros((1, 10, 16, 3)), np.zeros((1, 10, 16, 3)))
    with pytest.raises(ValueError, match="one shape"):
        metrics.ssim(np.zeros((1, 16, 16, 3)), np.zeros((1, 16, 17, 3)))


def test_principal_angles_match_scipy_and_known_cases():
    from scipy.linalg import subspace_angles

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 50)), rng.standard_normal((6, 50))
    got = metrics.principal_angles(a, b)
    want = np.sort(np.degrees(subspace_angles(a.T, b.T)))
    assert got.shape == (4,)
    np.testing.assert_allclose(got, want, atol=1e-8)
    np.testing.assert_allclose(metrics.principal_angles(b, a), want, atol=1e-8)

    # Known: a subspace with itself (any basis of it) -> 0; orthogonal coordinate planes -> 90;
    # e1 against the span of (cos t e1 + sin t e2) -> t, including tiny t (arcsin branch).
    mix = rng.standard_normal((4, 4))
    np.testing.assert_allclose(metrics.principal_angles(a, mix @ a), 0.0, atol=1e-6)
    eye = np.eye(6)
    np.testing.assert_allclose(metrics.principal_angles(eye[:2], eye[2:5]), [90.0, 90.0], atol=1e-10)
    for t_deg in (1e-4, 30.0, 89.0):
        t = np.radians(t_deg)
        got = metrics.principal_angles(eye[:1], (np.cos(t) * eye[0] + np.sin(t) * eye[1])[None])
        np.testing.assert_allclose(got, [t_deg], rtol=1e-8)
    # A k-dim subspace containing a d-dim one: d zero angles.
    np.testing.assert_allclose(metrics.principal_angles(eye[:4], eye[1:3]), [0.0, 0.0], atol=1e-10)
    with pytest.raises(ValueError, match="linearly dependent"):
        metrics.principal_angles(np.stack([eye[0], 2 * eye[0]]), eye[:2])
    with pytest.raises(ValueError, match="bases"):
        metrics.principal_angles(eye[:2], np.eye(5)[:2])


def test_lpips_metric_wraps_hfagp_lpips():
    from hfagp.lpips import make_lpips

    path = LPIPS_FIXTURES / "lpips_alex_weights.npz"
    if not path.is_file():
        missing_fixture(f"LPIPS fixture weights not found at {path}")
    a, b = _pair(2, (2, 64, 64, 3), 0.2)
    fn = metrics.make_lpips_metric(path, "alex")
    got = np.asarray(fn(a, b))
    want = np.asarray(make_lpips(path, "alex")(a, b)).reshape(-1)
    assert got.shape == (2,)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(fn(a, a)), 0.0, atol=1e-6)
