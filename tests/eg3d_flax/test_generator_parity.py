"""The Flax EG3D against the official PyTorch generator's golden outputs and gradients.

Tolerances are the fixture README's (../shared/fixtures/eg3d/README.md, "Suggested tolerances"):
forward arrays atol=rtol=1e-4; gradients through the renderer rel-L2 <= 1e-2; SR-only rel-L2 <= 1e-4.
Fixture arrays are NCHW; the port is NHWC, so outputs are transposed before comparing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from convert_weights import eg3d_keys
from shared_fixtures import EG3D_FIXTURES, require_fixtures

FWD = dict(atol=1e-4, rtol=1e-4)
# The 512x512 fixture generator: its compilations take about a minute each (slow); tiny128 keeps the quick tier's.
SMALL512 = pytest.param("small512", marks=pytest.mark.slow)


def nchw(x):
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def planes_as_reference(planes):
    """[B,3,H,W,32] -> the backbone's NCHW [B,96,H,W] layout (channel = plane*32 + feature)."""
    p = np.asarray(planes)
    b, n, h, w, c = p.shape
    return np.transpose(p, (0, 1, 4, 2, 3)).reshape(b, n * c, h, w)


def rel_l2(a, b):
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def references():
    require_fixtures()
    return {n: dict(np.load(EG3D_FIXTURES / f"{n}_reference.npz")) for n in ("tiny128", "small512")}


@pytest.mark.parametrize("name", ["tiny128", "small512"])
def test_mapping_matches_reference(name, fixture_generators, references):
    G, ref = fixture_generators[name], references[name]
    np.testing.assert_allclose(G.mapping(ref["z"], ref["c"]), ref["ws"], **FWD)
    np.testing.assert_allclose(G.mapping(ref["z"], ref["c"], truncation_psi=0.7), ref["ws_psi0p7"], **FWD)


@pytest.mark.parametrize("name", ["tiny128", SMALL512])
def test_synthesis_matches_reference(name, fixture_generators, references):
    G, ref = fixture_generators[name], references[name]
    out = G.synthesis(ref["ws"], ref["c"], noise_mode="const", deterministic=True, return_intermediates=True)
    planes = planes_as_reference(out["planes"])
    np.testing.assert_allclose(planes[:, :, ::8, ::8], ref["planes_sub8"], **FWD)
    np.testing.assert_allclose(planes[:, :, 112:144, 112:144], ref["planes_crop"], **FWD)
    p64 = planes.astype(np.float64)
    np.testing.assert_allclose(p64.mean(axis=(2, 3)), ref["planes_chan_mean"], **FWD)
    np.testing.assert_allclose(p64.std(axis=(2, 3), ddof=1), ref["planes_chan_std"], **FWD)
    np.testing.assert_allclose(out["ray_origins"], ref["ray_origins"], **FWD)
    np.testing.assert_allclose(out["ray_directions"], ref["ray_directions"], **FWD)
    np.testing.assert_allclose(nchw(out["feature_image"]), ref["feature_image"], **FWD)
    # image_raw is the clean rendering (the reference's 2X SR adds block0's ToRGB into it in place).
    np.testing.assert_allclose(nchw(out["image_raw"]), ref["image_raw_pre_sr"], **FWD)
    np.testing.assert_allclose(nchw(out["image_depth"]), ref["image_depth"], **FWD)
    image = nchw(out["image"])
    if "synth_image" in ref:
        np.testing.assert_allclose(image, ref["synth_image"], **FWD)
        np.testing.assert_allclose(image, ref["image"], **FWD)
    else:
        np.testing.assert_allclose(image, ref["image"], **FWD)
        np.testing.assert_allclose(image[:, :, ::4, ::4], ref["synth_image_sub4"], **FWD)


@pytest.mark.parametrize("name", ["tiny128", SMALL512])
def test_wplus_and_full_forward_match_reference(name, fixture_generators, references):
    G, ref = fixture_generators[name], references[name]
    out = G.synthesis(ref["wplus_ws"], ref["c"])
    if "wplus_image" in ref:
        np.testing.assert_allclose(nchw(out["image"]), ref["wplus_image"], **FWD)
    else:
        np.testing.assert_allclose(nchw(out["image"])[:, :, ::2, ::2], ref["wplus_image_sub2"], **FWD)
    np.testing.assert_allclose(nchw(out["image_depth"]), ref["wplus_image_depth"], **FWD)
    if name == "small512":  # no in-place aliasing in Hybrid8XDC: image_raw is the raw render there
        np.testing.assert_allclose(nchw(out["image_raw"]), ref["wplus_image_raw"], **FWD)
    full = G(ref["z"], ref["c"])  # mapping + synthesis
    np.testing.assert_allclose(nchw(full["image"]), ref["image"], **FWD)
    np.testing.assert_allclose(nchw(full["image_depth"]), ref["image_depth"], **FWD)


SR_ONLY = "superresolution.block1.conv1.weight"


def _check_gradients(G, ref, R, sr_only_bound=1e-4):
    m = G.module
    buffers = G.variables["buffers"]
    R = jnp.asarray(np.transpose(R, (0, 2, 3, 1)))
    c = jnp.asarray(ref["c"])

    def loss(params, ws):
        out = m.apply({"params": params, "buffers": buffers}, ws, c, method=m.synthesis)
        return jnp.sum(out["image"] * R)

    value, (g_params, g_ws) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(
        G.variables["params"], jnp.asarray(ref["ws"]))
    np.testing.assert_allclose(float(value), float(ref["loss_image_dot_R"][0]), rtol=1e-4)
    assert rel_l2(g_ws, ref["grad_ws"]) <= 1e-2
    flat = {eg3d_keys.flax_path_to_torch_key(tuple(k.key for k in kp)): v
            for kp, v in jax.tree_util.tree_flatten_with_path(g_params)[0]}
    checked = 0
    for key in ref:
        if not key.startswith("grad_param__"):
            continue
        torch_key = key[len("grad_param__"):].replace("__", ".")
        grad = eg3d_keys.flax_to_torch_array(torch_key.rsplit(".", 1)[-1], np.asarray(flat[torch_key]))
        assert grad.shape == ref[key].shape
        bound = sr_only_bound if torch_key == SR_ONLY else 1e-2
        assert rel_l2(grad, ref[key]) <= bound, (torch_key, rel_l2(grad, ref[key]))
        checked += 1
    assert checked == 5


@pytest.mark.slow  # the generator's backward pass compiled
def test_gradients_match_reference_tiny128(fixture_generators, references):
    ref = references["tiny128"]
    _check_gradients(fixture_generators["tiny128"], ref, ref["R"])


@pytest.mark.slow
def test_gradients_match_reference_small512(fixture_generators, references):
    ref = references["small512"]
    R = np.random.RandomState(7).randn(2, 3, 512, 512).astype(np.float32)
    # The README's SR-only bound (1e-4) cannot hold at 512: the stored float32 PyTorch gradient of
    # block1.conv1.weight (a sum over 2x512x512 positions with heavy cancellation) is itself 6.4e-4
    # (rel-L2) away from the float64 value, which we computed with this port in float64 (our float32:
    # 6.0e-4 from it, 8.4e-4 from the reference). tiny128 keeps the README's 1e-4.
    _check_gradients(fixture_generators["small512"], ref, R, sr_only_bound=2e-3)
