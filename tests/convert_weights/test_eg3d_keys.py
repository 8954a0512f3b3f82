"""convert_weights.eg3d_keys: EG3D torch state dicts <-> the Flax variables of `eg3d_flax`, both ways, and the
errors for a checkpoint that does not fit the model."""

from __future__ import annotations

import numpy as np
import pytest

import eg3d_flax
from convert_weights import eg3d_keys
from eg3d_flax.checkpoint import variables_template


def test_key_mapping_roundtrip_and_errors():
    cfg = eg3d_flax.preset("tiny128")
    template = variables_template(cfg)
    rng = np.random.default_rng(0)
    manifest = eg3d_keys.torch_key_manifest(template)
    state = {k: rng.standard_normal(shape).astype(np.float32) for k, (shape, _) in manifest.items()}
    variables, skipped = eg3d_keys.state_dict_to_variables({**state, "dataset_label_std": np.zeros(25)}, template)
    assert skipped == ["dataset_label_std"]
    back = eg3d_keys.variables_to_state_dict(variables)
    assert sorted(back) == sorted(state)
    for k in state:
        np.testing.assert_array_equal(back[k], state[k])
    conv = variables["params"]["backbone"]["synthesis"]["b8"]["conv0"]["weight"]
    np.testing.assert_array_equal(conv, state["backbone.synthesis.b8.conv0.weight"].transpose(2, 3, 1, 0))
    missing = dict(state)
    missing.pop("decoder.net.0.bias")
    missing["backbone.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(eg3d_keys.KeyMappingError, match=r"decoder\.net\.0\.bias.*backbone\.extra\.weight"):
        eg3d_keys.state_dict_to_variables(missing, template)
    bad = dict(state)
    bad["decoder.net.0.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(eg3d_keys.KeyMappingError, match="shape mismatch"):
        eg3d_keys.state_dict_to_variables(bad, template)
