"""`GeneratorConfig.to_eg3d_kwargs` is the inverse of `from_eg3d_kwargs` and matches the fixture manifests."""

from __future__ import annotations

import dataclasses
import json

import pytest

from eg3d_flax.config import PRESETS, GeneratorConfig, preset
from eg3d_flax.rendering import RenderOptions
from shared_fixtures import require_fixtures


# Presets of the official code's architectures (the fixtures hold their manifests); heads128 is the project's own.
OFFICIAL_PRESETS = ("ffhq512-128", "small512", "tiny128")


def test_every_preset_is_official_or_the_head_prior():
    assert set(PRESETS) == {*OFFICIAL_PRESETS, "heads128"}


@pytest.mark.parametrize("name", OFFICIAL_PRESETS)
def test_presets_equal_manifest_init_kwargs(name):
    manifest = json.loads((require_fixtures() / f"manifest_{name}.json").read_text())
    kwargs, nrr = preset(name).to_eg3d_kwargs()
    assert json.loads(json.dumps(kwargs)) == manifest["init_kwargs"]
    assert nrr == manifest["neural_rendering_resolution"]


@pytest.mark.parametrize("cfg", [
    *PRESETS.values(),
    preset("tiny128", mapping_lr_multiplier=0.02, backbone_conv_clamp=256.0, c_scale=0.5, decoder_lr_mul=2.0,
           c_gen_conditioning_zero=True, avg_camera_pivot=(0.0, 0.05, 0.2),
           render=RenderOptions(depth_resolution=8, depth_resolution_importance=4, ray_start="auto",
                                ray_end="auto", box_warp=2.0, white_back=True, density_noise=0.5,
                                disparity_space_sampling=True)),
], ids=[*PRESETS, "non-default"])
def test_round_trip(cfg):
    kwargs, nrr = cfg.to_eg3d_kwargs()
    assert GeneratorConfig.from_eg3d_kwargs(json.loads(json.dumps(kwargs)), nrr) == cfg


def test_heads128_is_the_pretraining_config_architecture():
    from configs.pretrain_heads import get_config

    g = get_config().generator
    expected = preset(g.preset, channel_base=g.channel_base, channel_max=g.channel_max,
                      neural_rendering_resolution=g.neural_rendering_resolution,
                      render=dataclasses.replace(preset(g.preset).render, depth_resolution=g.depth_resolution,
                                                 depth_resolution_importance=g.depth_resolution_importance))
    assert preset("heads128") == expected


def test_planes_eg3d_cannot_build_raise():
    with pytest.raises(ValueError, match="256x256"):
        preset("tiny128", plane_resolution=128).to_eg3d_kwargs()
