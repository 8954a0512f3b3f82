"""PTI baseline (hfagp.eval.pti) on frames rendered by the random tiny128 generator from known W+ codes.

The tests that run PTI are slow: compiling the two step functions (generator forward+backward)
takes ~45 s and ~90 s of CPU time here; the persistent XLA cache (tests/conftest.py) serves reruns.
"""

from __future__ import annotations

import numpy as np
import pytest

# Few steps, larger learning rates: enough for clear gains on these frames, in CPU-test time.
STEPS = dict(w_steps=12, g_steps=16, w_lr=0.1, g_lr=2e-3, w_std_samples=16)


@pytest.fixture(scope="module")
def setup():
    """Generator, two target frames [2,128,128,3] from known codes, their cameras, 3 render views each."""
    import eg3d_flax
    from avatar_data.cameras import EG3D_FOV_DEG, fov_to_intrinsics, yaw_sweep

    G = eg3d_flax.random_generator(eg3d_flax.preset("tiny128", neural_rendering_resolution=32), seed=0)
    views = yaw_sweep(3, 20.0, intrinsics=fov_to_intrinsics(EG3D_FOV_DEG))  # the frames are seen from views 0, 1
    cameras = views[:2]
    z = np.random.RandomState(1).randn(2, G.config.z_dim).astype(np.float32)
    ws_true = np.asarray(G.mapping(z, cameras))
    images = np.asarray(G.synthesis(ws_true, cameras)["image"])
    render_cameras = np.stack([np.roll(views, -i, axis=0) for i in range(2)])   # view 0 = own camera
    return G, images, cameras, render_cameras


@pytest.fixture(scope="module")
def runs(setup):
    """PTI on frames [a, b], then on [b] alone; with the step functions' trace counts around each."""
    from hfagp.eval import pti

    G, images, cameras, render_cameras = setup
    config = pti.PTIConfig.cpu_test(**STEPS)
    counts = [dict(pti.TRACE_COUNTS)]
    both = pti.run_pti(G, images, cameras, render_cameras, config=config, progress=False)
    counts.append(dict(pti.TRACE_COUNTS))
    only_b = pti.run_pti(G, images[1:], cameras[1:], render_cameras[1:], config=config, progress=False)
    counts.append(dict(pti.TRACE_COUNTS))
    return config, both, only_b, counts


def _mse(a, b):
    return float(np.mean(np.square(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def test_defaults_are_the_official_pti_values():
    from hfagp.eval.pti import PTIConfig

    c = PTIConfig()
    assert (c.w_steps, c.g_steps, c.w_lr, c.g_lr) == (450, 350, 0.01, 3e-4)
    assert (c.l2_weight, c.lpips_weight, c.lpips_threshold) == (1.0, 1.0, 0.06)
    assert (c.noise_reg_weight, c.w_noise_factor, c.w_noise_ramp) == (1e5, 0.05, 0.75)
    # first_inv_type='w', the projector's start (mean of mapped samples) and its VGG distance at 256.
    assert (c.latent_space, c.start, c.invert_distance, c.invert_resolution) == ("w", "mapped_mean", "lpips_vgg", 256)
    assert PTIConfig.cpu_test().w_steps < 50
    for field in ("latent_space", "start", "invert_distance"):
        with pytest.raises(ValueError, match=field):
            PTIConfig(**{field: "mean_face"})


def test_noise_penalty_and_normalization():
    import jax
    import jax.numpy as jnp

    from hfagp.eval.pti import noise_regularization, normalize_noises

    smooth = {"a": jnp.ones((16, 16)), "b": jnp.ones((4, 4))}
    # A constant map correlates perfectly with its shifts: 2 terms per pyramid level (16, 8; 4).
    assert float(noise_regularization(smooth)) == pytest.approx(6.0)
    white = {"a": jax.random.normal(jax.random.PRNGKey(0), (256, 256))}
    assert float(noise_regularization(white)) < 1e-3
    n = normalize_noises({"a": 3.0 + 2.0 * white["a"]})["a"]
    assert abs(float(n.mean())) < 1e-5 and float(jnp.mean(n ** 2)) == pytest.approx(1.0, rel=1e-4)


@pytest.mark.slow
def test_pti_fits_a_generated_frame_inversion_then_tuning(setup, runs):
    from hfagp.eval.pti import start_code

    G, images, cameras, render_cameras = setup
    config, both, _, _ = runs
    for i in range(2):
        own = render_cameras[i, :1].repeat(3, 0)   # batch 3 like the output renders: no extra compile
        start = np.broadcast_to(np.asarray(start_code(G, config, cameras[i])), (3, G.num_ws, G.config.w_dim))
        at_avg = _mse(G.synthesis(start, own)["image"][0], images[i])
        at_pivot = _mse(G.synthesis(np.repeat(both.ws[i][None], 3, 0), own)["image"][0], images[i])
        tuned = _mse(both.images[i, 0], images[i])
        print(f"frame {i}: MSE at w_avg {at_avg:.4f}, base G at the pivot {at_pivot:.4f}, tuned G {tuned:.4f}")
        assert at_pivot < 0.2 * at_avg          # inversion alone removes most of the error
        assert tuned < 0.8 * at_pivot           # tuning the generator removes more
    inv, tune = both.invert_losses, both.tune_losses
    assert inv.shape == (2, config.w_steps) and tune.shape == (2, config.g_steps)
    assert np.all(inv[:, -3:].mean(1) < 0.2 * inv[:, 0])
    assert np.all(tune[:, -2:].mean(1) < tune[:, 0])
    assert np.all(both.tune_steps == config.g_steps)   # L2 only: no LPIPS early stop


@pytest.mark.slow
def test_output_shapes_ranges_and_views(setup, runs):
    G, images, _, render_cameras = setup
    _, both, _, _ = runs
    assert both.images.shape == (2, 3, 128, 128, 3) and both.images.dtype == np.float32
    assert both.ws.shape == (2, G.num_ws, G.config.w_dim)
    assert np.array_equal(both.ws[:, 1:], np.broadcast_to(both.ws[:, :1], both.ws[:, 1:].shape))  # W: one code
    assert np.isfinite(both.images).all()
    lo, hi = images.min(), images.max()
    assert both.images.min() > lo - 1.0 and both.images.max() < hi + 1.0
    for i in range(2):   # the novel views are different images from the fitted view
        assert _mse(both.images[i, 1], both.images[i, 0]) > 1e-3


@pytest.mark.slow
def test_generator_is_reset_for_every_frame(runs):
    _, both, only_b, _ = runs
    np.testing.assert_allclose(only_b.images[0], both.images[1], atol=1e-5)
    np.testing.assert_allclose(only_b.ws[0], both.ws[1], atol=1e-6)
    np.testing.assert_allclose(only_b.tune_losses[0], both.tune_losses[1], rtol=1e-5)


@pytest.mark.slow
def test_step_functions_compile_once(setup, runs):
    from hfagp.eval import pti

    G, images, cameras, _ = setup
    config, _, _, counts = runs
    before, after_two, after_three = counts
    for name in ("invert_step", "tune_step"):
        assert after_two.get(name, 0) - before.get(name, 0) <= 1   # at most one trace for two frames
        assert after_three.get(name, 0) == after_two.get(name, 0)  # none for another call
    # Other step counts and learning rates are traced values: still no recompilation.
    other = config.replace(w_steps=2, g_steps=2, w_lr=0.02, g_lr=1e-4, w_noise_factor=0.1)
    ws, _ = pti.invert_latent(G, images[0], cameras[0], config=other)
    pti.tune_generator(G, ws, images[0], cameras[0], config=other)
    assert dict(pti.TRACE_COUNTS) == after_three


def test_bad_inputs_name_the_problem():
    import eg3d_flax
    from hfagp.eval import pti

    G = eg3d_flax.Generator(eg3d_flax.preset("tiny128"), variables={})   # shapes are checked first
    images, cameras, render_cameras = np.zeros((2, 128, 128, 3)), np.zeros((2, 25)), np.zeros((2, 3, 25))
    config = pti.PTIConfig.cpu_test(w_steps=1, g_steps=1)
    with pytest.raises(ValueError, match=r"images must be \[N,128,128,3\]"):
        pti.run_pti(G, images[:, :64, :64], cameras, render_cameras, config=config)
    with pytest.raises(ValueError, match="cameras must be"):
        pti.run_pti(G, images, cameras[:1], render_cameras, config=config)
    with pytest.raises(ValueError, match="render_cameras must be"):
        pti.run_pti(G, images, cameras, render_cameras[:, 0], config=config)


@pytest.mark.slow
def test_tuning_stops_once_lpips_is_below_the_threshold(setup):
    import jax
    import jax.numpy as jnp

    from hfagp.eval import pti

    G, images, cameras, _ = setup
    config = pti.PTIConfig.cpu_test(w_steps=1, g_steps=4, w_std_samples=16)
    ws = np.asarray(G.mapping(np.zeros((1, G.config.z_dim), np.float32), cameras[:1]))[0]
    below = lambda x, y: jnp.full(x.shape[:1], 0.01)   # a plain function: wrapped, not a pytree of weights
    params, losses, applied = pti.tune_generator(G, ws, images[0], cameras[0], config=config, lpips_fn=below)
    assert applied == 0 and np.isfinite(losses[0]) and np.isnan(losses[1:]).all()
    same = jax.tree_util.tree_map(lambda a, b: bool(np.array_equal(a, b)), params, G.variables["params"])
    assert all(jax.tree_util.tree_leaves(same))
    params, losses, applied = pti.tune_generator(G, ws, images[0], cameras[0], config=config.replace(
        lpips_threshold=0.0), lpips_fn=below)   # threshold off: all steps run
    assert applied == 4 and np.isfinite(losses).all()


def test_start_codes_and_latent_spaces():
    import eg3d_flax
    from avatar_data.cameras import yaw_sweep
    from hfagp.eval import pti

    G = eg3d_flax.random_generator(eg3d_flax.preset("tiny128", neural_rendering_resolution=32), seed=0)
    camera = yaw_sweep(1, 0.0)[0]
    official = pti.PTIConfig(w_std_samples=32)
    mean, spread = pti.mapped_stats(G, camera, 32)
    z = np.random.RandomState(123).randn(32, G.config.z_dim).astype(np.float32)
    mapped = np.asarray(G.mapping(z, np.repeat(camera[None], 32, 0)))[:, 0]
    np.testing.assert_allclose(mean, mapped.mean(0), rtol=1e-6, atol=1e-6)
    assert spread == pytest.approx(float(np.sqrt(np.sum((mapped - mapped.mean(0)) ** 2) / 32)), rel=1e-5)
    code = np.asarray(pti.start_code(G, official, camera))
    assert code.shape == (1, 1, G.config.w_dim)  # W: one code, repeated over the layers by the step
    np.testing.assert_allclose(code[0, 0], mean, rtol=1e-6, atol=1e-6)
    w_avg = np.asarray(G.variables["buffers"]["backbone"]["mapping"]["w_avg"])
    plus = np.asarray(pti.start_code(G, official.replace(latent_space="w+", start="w_avg")))
    assert plus.shape == (1, G.num_ws, G.config.w_dim)
    assert np.array_equal(plus[0], np.broadcast_to(w_avg, plus[0].shape))
    assert not np.allclose(mean, w_avg)


def test_the_lpips_vgg_distance_needs_its_weights():
    import eg3d_flax
    from hfagp.eval import pti

    G = eg3d_flax.Generator(eg3d_flax.preset("tiny128"), variables={})
    with pytest.raises(ValueError, match="LPIPS-VGG"):
        pti.invert_latent(G, np.zeros((128, 128, 3)), np.zeros(25), config=pti.PTIConfig(w_steps=1))


@pytest.mark.slow
def test_the_official_inversion_distance_is_lpips_vgg_at_the_inversion_resolution(setup):
    """One deterministic step (no code noise, no noise maps): the reported distance is LPIPS-VGG of the start
    code's render and the frame, both area-averaged to invert_resolution."""
    import jax.numpy as jnp

    from hfagp.eval import pti
    from hfagp.lpips import make_lpips
    from hfagp_common.images import area_downsample
    from shared_fixtures import LPIPS_FIXTURES, require_fixtures

    vgg = make_lpips(require_fixtures(LPIPS_FIXTURES / "lpips_vgg_weights.npz"), "vgg")
    G, images, cameras, _ = setup
    config = pti.PTIConfig(w_steps=1, g_steps=0, w_std_samples=16, w_noise_factor=0.0, optimize_noise=False,
                           render_deterministic=True, invert_resolution=64)
    ws, losses = pti.invert_latent(G, images[0], cameras[0], config=config, vgg_fn=vgg)
    start = np.broadcast_to(np.asarray(pti.start_code(G, config, cameras[0])), (1, G.num_ws, G.config.w_dim))
    render = G.synthesis(start, cameras[:1])["image"]
    expected = float(vgg(area_downsample(render, 64), area_downsample(jnp.asarray(images[:1]), 64))[0])
    print(f"distance {losses[0]:.6f}, LPIPS-VGG at 64: {expected:.6f}")
    assert losses[0] == pytest.approx(expected, rel=1e-4)
    assert np.allclose(ws, start[0])  # the first step's lr is 0 (ramp-up from 0)
