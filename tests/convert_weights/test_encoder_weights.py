"""Official HFA-GP encoder weights, converted by `convert_weights.encoder_weights`, make the Flax encoders compute
what the official PyTorch modules compute (fixtures from scripts/make_official_fixtures.py).

Weights are re-made from the fixture's recipe (parameter i of a state dict = scale_i * RandomState(seed + i)
normal draws, in the official `state_dict()` order), converted, and the outputs and input gradients of the
official forward compared: outputs to 1e-5 and gradients to 1e-4 of the reference's largest magnitude, in
float32. No torch is needed.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from convert_weights.encoder_weights import (OfficialWeightsError, audio_encoder_params, expression_encoder_params,
                                             rgb_encoder_params, rgb_input_size)
from encoders import AudioEncoder, ExpressionEncoder, RGBEncoder

FIXTURE = Path(__file__).parent / "fixtures" / "official_encoders.npz"
OUTPUT_TOL = 1e-5
GRAD_TOL = 1e-4


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURE) as f:
        return {k: f[k] for k in f.files}


def state_dict(ref: dict, net: str) -> dict:
    """The official state dict of `net` from the fixture's recipe; checked against the stored sums."""
    keys, ndims, dims = ref[f"{net}/keys"], ref[f"{net}/ndims"], ref[f"{net}/shapes"]
    seed, scales = int(ref[f"{net}/seed"]), ref[f"{net}/scales"]
    out, at = {}, 0
    for i, key in enumerate(keys):
        shape = tuple(int(d) for d in dims[at:at + ndims[i]])
        at += ndims[i]
        if scales[i] == 0.0:
            out[str(key)] = ref[f"{net}/buffer/{key}"]
        else:
            draw = np.random.RandomState(seed + i).standard_normal(shape).astype(np.float32)
            out[str(key)] = draw * np.float32(scales[i])
    sums = np.array([out[str(k)].astype(np.float64).sum() for k in keys])
    np.testing.assert_array_equal(sums, ref[f"{net}/weight_sums"])
    return out


def assert_close(got, want, tol, what):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, what
    err = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
    print(f"{what}: max |diff| / max |ref| = {err:.2e}")
    assert err <= tol, f"{what}: relative error {err:.2e} > {tol}"


def check_case(ref, case, module, params, **kwargs):
    x, cot = jnp.asarray(ref[f"{case}/input"]), jnp.asarray(ref[f"{case}/cotangent"])
    fn = jax.jit(lambda p, x: module.apply({"params": p}, x, **kwargs))
    out = fn(params, x)
    grad = jax.jit(jax.grad(lambda x: jnp.sum(fn(params, x) * cot)))(x)
    assert_close(out, ref[f"{case}/output"], OUTPUT_TOL, f"{case} output")
    assert_close(grad, ref[f"{case}/input_grad"], GRAD_TOL, f"{case} input gradient")


@pytest.mark.slow  # a 128x128 forward and backward through 22M parameters: ~1 min compile on 2 busy cores
def test_rgb_encoder_matches_the_official_encoder(ref):
    params = rgb_encoder_params(state_dict(ref, "rgb"))
    k = ref["rgb/output"].shape[1]
    assert rgb_input_size(params) == 128
    check_case(ref, "rgb", RGBEncoder(k, input_size=128), params)


def test_expression_encoder_matches_weights_3dmm(ref):
    params = expression_encoder_params(state_dict(ref, "expression"))
    check_case(ref, "expression", ExpressionEncoder(ref["expression/output"].shape[1]), params)


@pytest.mark.parametrize("smooth", [False, True], ids=["plain", "attention"])
def test_audio_encoder_matches_audionet_attnet_and_head(ref, smooth):
    head, net = state_dict(ref, "audio/head"), state_dict(ref, "audio/audio_net")
    attention = state_dict(ref, "audio/attention") if smooth else None
    params = audio_encoder_params(head, net, attention)
    case = "audio_smooth" if smooth else "audio_plain"
    encoder = AudioEncoder(ref[f"{case}/output"].shape[1], temporal_smoothing=smooth)
    check_case(ref, case, encoder, params, smooth=smooth)


def test_conversion_refuses_a_wrong_layout(ref):
    state = state_dict(ref, "expression")
    with pytest.raises(OfficialWeightsError, match="unexpected keys"):
        expression_encoder_params({**state, "fc.9.scale": np.zeros(3)})
    rgb = state_dict(ref, "rgb")
    rgb["net_app.convs.1.skip.0.kernel"] = np.ones((4, 4), np.float32)
    with pytest.raises(OfficialWeightsError, match="blur filter"):
        rgb_encoder_params(rgb)
    with pytest.raises(OfficialWeightsError, match="missing"):
        audio_encoder_params(state, {})
