"""Parity of hfagp.lpips with PyPI lpips 0.1.4 on the golden fixtures in fixtures/lpips/.

Fixture inputs and outputs are NCHW; they are transposed to NHWC here. Tolerances are the ones
suggested in fixtures/lpips/README.md, against the float64 reference wherever one exists.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hfagp import lpips
from convert_weights import lpips as lpips_convert
from shared_fixtures import LPIPS_FIXTURES, require_fixtures

REPO = Path(__file__).resolve().parents[2]
FIXTURES = LPIPS_FIXTURES

NETS = ("alex", "vgg")


@pytest.fixture(scope="module", autouse=True)
def _lpips_fixtures():
    """Every test here reads fixtures/lpips: skipped without it (failed under HFAGP_REQUIRE_FIXTURES=1)."""
    require_fixtures(FIXTURES)


def weights_path(net: str) -> Path:
    return FIXTURES / f"lpips_{net}_weights.npz"


def nhwc(a: np.ndarray) -> jnp.ndarray:
    return jnp.asarray(np.transpose(a, (0, 2, 3, 1)))


def assert_close_scaled(actual, ref, factor: float, what: str) -> None:
    """|actual - ref| <= factor * max|ref| elementwise."""
    ref = np.asarray(ref)
    atol = factor * np.abs(ref).max()
    np.testing.assert_allclose(np.asarray(actual), ref, rtol=0, atol=atol, err_msg=what)


@pytest.fixture(scope="module", params=["alex", pytest.param("vgg", marks=pytest.mark.slow)])  # vgg: ~1 min compile
def case(request):
    """Per net: loaded variables, the reference arrays, and an LPIPSFn."""
    net = request.param
    variables = lpips.load_lpips_params(weights_path(net), net)
    with np.load(FIXTURES / f"lpips_{net}_reference.npz") as npz:
        ref = {k: npz[k] for k in npz.files}
    return net, variables, ref, lpips.make_lpips(variables, net)


@jax.jit
def _distance_per_layer(fn, x0, x1):
    return fn(x0, x1, per_layer=True)


@functools.partial(jax.jit, static_argnums=0)
def _everything(net, variables, x0, x1):
    """All size-64 quantities in one program (XLA shares the backbone passes between them)."""
    model = lpips.LPIPS(net)

    def loss(a):
        (total, terms), state = model.apply(
            variables, a, x1, per_layer=True, capture_intermediates=True, mutable=["intermediates"]
        )
        return jnp.sum(total), (total, terms, state["intermediates"])

    grad, (total, terms, inter) = jax.grad(loss, has_aux=True)(x0)
    spatial, spatial_terms = model.apply(variables, x0, x1, spatial=True, per_layer=True)
    return {
        "out": total,
        "per_layer": jnp.stack(terms),
        "grad": grad,
        "head_maps": [inter[f"lin{k}"]["__call__"][0][..., 0] for k in range(5)],
        "features_x0": inter["backbone"]["__call__"][0],  # the first backbone call is on x0
        "spatial": spatial,
        "spatial_layers": jnp.stack(spatial_terms),
        "swapped": model.apply(variables, x1, x0),
        "same": model.apply(variables, x0, x0),
    }


@pytest.fixture(scope="module")
def run64(case):
    net, variables, ref, _ = case
    out = _everything(net, variables, nhwc(ref["x0_64"]), nhwc(ref["x1_64"]))
    return net, ref, jax.tree.map(np.asarray, out)


# --- architecture facts --------------------------------------------------------------------


def test_feature_sizes_match_readme():
    assert lpips.feature_sizes("alex", 64) == (15, 7, 3, 3, 3)
    assert lpips.feature_sizes("alex", 256) == (63, 31, 15, 15, 15)
    assert lpips.feature_sizes("vgg", 64) == (64, 32, 16, 8, 4)
    assert lpips.feature_sizes("vgg", 256) == (256, 128, 64, 32, 16)
    assert lpips.min_input_size("alex") <= 32
    assert lpips.min_input_size("vgg") == 16


def test_converter_tables_agree_with_model():
    for net in NETS:
        model_slices = tuple(
            tuple(op.index for op in ops if isinstance(op, lpips._Conv))
            for ops in lpips.BACKBONE_SLICES[net]
        )
        assert model_slices == lpips_convert.TORCHVISION_SLICES[net]
    assert lpips_convert.SCALING_SHIFT == lpips.SCALING_SHIFT
    assert lpips_convert.SCALING_SCALE == lpips.SCALING_SCALE
    with np.load(weights_path("alex")) as npz:
        np.testing.assert_array_equal(
            npz["scaling_layer.shift"].ravel(), np.float32(lpips.SCALING_SHIFT)
        )
        np.testing.assert_array_equal(
            npz["scaling_layer.scale"].ravel(), np.float32(lpips.SCALING_SCALE)
        )


def test_resize_bilinear_matches_torch_half_pixel_rule():
    # torch: interpolate([0, 1], size=4, mode='bilinear', align_corners=False) -> 0, .25, .75, 1
    x = jnp.asarray([0.0, 1.0]).reshape(1, 1, 2, 1)
    out = lpips.resize_bilinear(x, (1, 4))
    np.testing.assert_allclose(np.asarray(out).ravel(), [0.0, 0.25, 0.75, 1.0], atol=1e-7)
    const = lpips.resize_bilinear(jnp.full((2, 3, 3, 1), 0.7), (64, 64))
    np.testing.assert_allclose(np.asarray(const), 0.7, atol=1e-7)


@jax.jit
def _distance_and_map(fn, x0, x1):
    return fn(x0, x1), fn(x0, x1, spatial=True)


@pytest.mark.parametrize("net,hw", [("alex", (32, 45)), ("vgg", (16, 23))])
def test_small_non_square_inputs_work(net, hw):
    fn = lpips.make_lpips(weights_path(net), net)
    x0 = jax.random.uniform(jax.random.key(1), (2, *hw, 3), minval=-1, maxval=1)
    x1 = jax.random.uniform(jax.random.key(2), (2, *hw, 3), minval=-1, maxval=1)
    d, d_map = _distance_and_map(fn, x0, x1)
    assert d.shape == (2,) and d_map.shape == (2, *hw)
    assert np.all(np.isfinite(d)) and np.all(np.asarray(d) > 0)
    assert np.all(np.isfinite(d_map)) and np.all(np.asarray(d_map) >= 0)


def test_too_small_or_bad_inputs_raise():
    variables = lpips.load_lpips_params(weights_path("vgg"), "vgg")
    model = lpips.LPIPS("vgg")
    small = jnp.zeros((1, 15, 15, 3))
    with pytest.raises(ValueError, match="needs H, W >= 16"):
        model.apply(variables, small, small)
    with pytest.raises(ValueError, match="differ in shape"):
        model.apply(variables, jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, 16, 17, 3)))
    with pytest.raises(ValueError, match="NHWC"):
        model.apply(variables, jnp.zeros((1, 3, 16, 16)), jnp.zeros((1, 3, 16, 16)))


# --- parity with the reference ------------------------------------------------------------


def assert_distances_match(total, terms, ref, size: int) -> None:
    np.testing.assert_allclose(total, ref[f"out_{size}_f64"].reshape(4), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        terms, ref[f"per_layer_{size}_f64"].reshape(5, 4), rtol=1e-5, atol=1e-7
    )
    assert total[3] == 0.0  # pair 3 is identical


def test_distance_and_per_layer_64(run64):
    _, ref, out = run64
    assert out["out"].shape == (4,) and out["per_layer"].shape == (5, 4)
    assert_distances_match(out["out"], out["per_layer"], ref, 64)


def test_distance_and_per_layer_256(case):
    _, _, ref, fn = case
    total, terms = _distance_per_layer(fn, nhwc(ref["x0_256"]), nhwc(ref["x1_256"]))
    assert total.shape == (4,) and len(terms) == 5
    assert_distances_match(np.asarray(total), np.stack([np.asarray(t) for t in terms]), ref, 256)


def test_distance_sum_of_layers(run64):
    _, _, out = run64
    np.testing.assert_allclose(out["per_layer"].sum(0), out["out"], rtol=1e-6, atol=1e-9)


def test_spatial_maps(run64):
    net, ref, out = run64
    assert out["spatial"].shape == (4, 64, 64)
    assert_close_scaled(out["spatial"], ref["spatial_64"][:, 0], 1e-5, f"{net} spatial_64")
    assert_close_scaled(
        out["spatial_layers"], ref["spatial_layers_64"][:, :, 0], 1e-5, f"{net} spatial_layers_64"
    )
    assert np.all(out["spatial"][3] == 0.0)


def test_head_maps_and_features(run64):
    net, ref, out = run64
    for k, head_map in enumerate(out["head_maps"]):
        assert_close_scaled(head_map, ref[f"lin_map_64_layer{k}"][:, 0], 1e-5, f"{net} lin{k}")
    for k, feats in enumerate(out["features_x0"]):
        key = f"feat0_64_layer{k}"
        if key in ref:
            assert_close_scaled(feats[:1], np.transpose(ref[key], (0, 2, 3, 1)), 1e-5, key)


def test_gradient(run64):
    net, ref, out = run64
    ref_grad = np.transpose(ref["grad_x0_64_f64"], (0, 2, 3, 1))
    assert np.all(np.isfinite(out["grad"]))
    assert_close_scaled(out["grad"], ref_grad, 1e-2, f"{net} grad_x0_64")
    assert np.all(out["grad"][3] == 0.0)  # identical pair: exactly zero gradient


def test_identical_pair_and_symmetry(run64):
    _, _, out = run64
    np.testing.assert_array_equal(out["same"], 0.0)
    np.testing.assert_array_equal(out["swapped"], out["out"])


# --- weights files ------------------------------------------------------------------------

# torchvision state_dict names and shapes (independent of the converter's tables).
TORCHVISION_SHAPES = {
    "alex": {
        "features.0": (64, 3, 11, 11),
        "features.3": (192, 64, 5, 5),
        "features.6": (384, 192, 3, 3),
        "features.8": (256, 384, 3, 3),
        "features.10": (256, 256, 3, 3),
        "classifier.1": (4096, 9216),
        "classifier.4": (4096, 4096),
        "classifier.6": (1000, 4096),
    },
    "vgg": {
        "features.0": (64, 3, 3, 3),
        "features.2": (64, 64, 3, 3),
        "features.5": (128, 64, 3, 3),
        "features.7": (128, 128, 3, 3),
        "features.10": (256, 128, 3, 3),
        "features.12": (256, 256, 3, 3),
        "features.14": (256, 256, 3, 3),
        "features.17": (512, 256, 3, 3),
        "features.19": (512, 512, 3, 3),
        "features.21": (512, 512, 3, 3),
        "features.24": (512, 512, 3, 3),
        "features.26": (512, 512, 3, 3),
        "features.28": (512, 512, 3, 3),
        "classifier.0": (4096, 25088),
        "classifier.3": (4096, 4096),
        "classifier.6": (1000, 4096),
    },
}
HEAD_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
LAST_CONV = {"alex": 10, "vgg": 28}


def fake_torchvision(net: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in TORCHVISION_SHAPES[net].items():
        if name.startswith("classifier"):  # big and unused: no memory behind it
            out[f"{name}.weight"] = np.broadcast_to(np.float32(0), shape)
        else:
            out[f"{name}.weight"] = rng.standard_normal(shape).astype(np.float32)
        out[f"{name}.bias"] = rng.standard_normal(shape[:1]).astype(np.float32)
    return out


def fake_heads(net: str, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        f"lin{k}.model.1.weight": rng.uniform(0, 1, (1, c, 1, 1)).astype(np.float32)
        for k, c in enumerate(HEAD_CHANNELS[net])
    }


@pytest.mark.parametrize("net", NETS)
def test_convert_maps_torchvision_names(net, tmp_path):
    backbone, heads = fake_torchvision(net), fake_heads(net)
    arrays = lpips_convert.convert_state_dicts(net, backbone, heads)
    with np.load(weights_path(net)) as npz:
        fixture_shapes = {k: npz[k].shape for k in npz.files if k != "meta_json"}
    assert {k: a.shape for k, a in arrays.items()} == fixture_shapes
    assert all(a.dtype == np.float32 for a in arrays.values())
    # values land where the model expects them, via a written file and the loader
    path = tmp_path / f"lpips_{net}.npz"
    np.savez(path, meta_json=np.asarray(json.dumps({"net": net})), **arrays)
    variables = lpips.load_lpips_params(path, net)
    last = LAST_CONV[net]
    np.testing.assert_array_equal(
        variables["params"]["backbone"][f"features_{last}"]["kernel"],
        backbone[f"features.{last}.weight"].transpose(2, 3, 1, 0),
    )
    np.testing.assert_array_equal(
        variables["params"]["backbone"][f"features_{last}"]["bias"],
        backbone[f"features.{last}.bias"],
    )
    np.testing.assert_array_equal(
        variables["params"]["lin4"]["kernel"][:, 0], heads["lin4.model.1.weight"].ravel()
    )


def test_convert_round_trip_of_fixture_weights(tmp_path):
    """Fixture tensors renamed to torchvision names convert back to identical variables."""
    with np.load(weights_path("alex")) as npz:
        fixture = {k: npz[k] for k in npz.files}
    backbone = {  # net.slice<S>.<i>.weight -> features.<i>.weight
        "features." + k.split(".", 2)[2]: v.astype(np.float32)
        for k, v in fixture.items()
        if k.startswith("net.")
    }
    heads = {k: v for k, v in fixture.items() if k.startswith("lin")}
    arrays = lpips_convert.convert_state_dicts("alex", backbone, heads)
    path = tmp_path / "alex.npz"
    np.savez(path, **arrays)
    converted = lpips.load_lpips_params(path)
    reference = lpips.load_lpips_params(weights_path("alex"))
    jax.tree.map(np.testing.assert_array_equal, converted, reference)


def test_convert_rejects_wrong_inputs():
    heads = fake_heads("vgg")
    with pytest.raises(ValueError, match="features.2.weight"):
        lpips_convert.convert_state_dicts("vgg", fake_torchvision("alex"), heads)
    bn_like = fake_torchvision("vgg")
    bn_like["features.1.running_mean"] = np.zeros(64, np.float32)
    with pytest.raises(ValueError, match="unexpected keys"):
        lpips_convert.convert_state_dicts("vgg", bn_like, heads)
    with pytest.raises(ValueError, match="lin3"):
        lpips_convert.convert_state_dicts(
            "vgg", fake_torchvision("vgg"), {k: v for k, v in heads.items() if "lin3" not in k}
        )
    with pytest.raises(ValueError, match="head lin1"):
        lpips_convert.convert_state_dicts("alex", fake_torchvision("alex"), fake_heads("vgg"))


def test_converter_cli_needs_neither_jax_nor_torch_to_start():
    code = (
        "import sys, convert_weights.lpips as c\n"
        "assert 'jax' not in sys.modules and 'torch' not in sys.modules\n"
        "c.main(['--help'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "--backbone" in result.stdout


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m convert_weights\.lpips --net vgg"):
        lpips.load_lpips_params(tmp_path / "nope.npz", "vgg")
    with pytest.raises(FileNotFoundError, match="convert_weights.lpips"):
        lpips.make_lpips(tmp_path / "nope.npz", "alex")


def test_wrong_net_is_refused():
    with pytest.raises(ValueError, match="holds LPIPS-alex weights, but net='vgg'"):
        lpips.load_lpips_params(weights_path("alex"), "vgg")
    alex = lpips.load_lpips_params(weights_path("alex"))
    with pytest.raises(ValueError, match="do not fit LPIPS-vgg"):
        lpips.make_lpips(alex, "vgg")
    with pytest.raises(ValueError, match="net must be one of"):
        image = jnp.zeros((1, 64, 64, 3))
        lpips.LPIPS("squeeze").init(jax.random.key(0), image, image)


def test_missing_and_unused_keys_are_listed(tmp_path):
    with np.load(weights_path("alex")) as npz:
        arrays = {k: npz[k] for k in npz.files}
    del arrays["lin2.model.1.weight"]
    arrays["lins.0.model.1.weight"] = arrays["lin0.model.1.weight"]
    arrays["net.slice4.8.bias"] = arrays["net.slice4.8.bias"][:10]
    path = tmp_path / "broken.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError) as info:
        lpips.load_lpips_params(path, "alex")
    message = str(info.value)
    assert "lin2.model.1.weight" in message
    assert "lins.0.model.1.weight" in message
    assert "net.slice4.8.bias (10,)" in message


def test_make_lpips_from_path_is_a_jittable_pytree():
    fn = lpips.make_lpips(weights_path("alex"), "alex")
    leaves = jax.tree.leaves(fn)  # the weights are leaves, so jit traces them as arguments
    assert len(leaves) == 2 + 2 * 5 + 5 and all(isinstance(a, jax.Array) for a in leaves)
    with np.load(FIXTURES / "lpips_alex_reference.npz") as npz:
        x0, x1, ref = nhwc(npz["x0_64"]), nhwc(npz["x1_64"]), npz["out_64_f64"].reshape(4)
    d, _ = _distance_per_layer(fn, x0, x1)
    np.testing.assert_allclose(np.asarray(d), ref, rtol=1e-5, atol=1e-7)
