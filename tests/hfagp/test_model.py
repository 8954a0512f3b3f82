"""hfagp.model: the generator a config names (a converted directory or a preset) with its run-time options."""

from __future__ import annotations

import ml_collections
import pytest


def _gen_cfg(**values):
    base = dict(path="", preset="", preset_seed=0, compute_dtype="float32", remat="none", conv_impl="xla",
                upconv_impl="auto", neural_rendering_resolution=0, render_deterministic=False)
    base.update(values)
    return ml_collections.ConfigDict(base)


def test_a_converted_directory_loads_with_the_run_time_options(converted_dirs):
    from hfagp.model import build_generator

    G = build_generator(_gen_cfg(path=str(converted_dirs["tiny128"]), neural_rendering_resolution=16,
                                 remat="renderer"))
    assert G.config.neural_rendering_resolution == 16 and G.config.remat == "renderer"
    assert G.config.conv_impl == "xla" and G.config.upconv_impl in ("xla", "polyphase")


def test_missing_generators_are_config_errors(tmp_path):
    from hfagp.model import build_generator
    from hfagp_common.cli import ConfigError

    with pytest.raises(ConfigError, match="not a converted generator directory"):
        build_generator(_gen_cfg(path=str(tmp_path)))
    with pytest.raises(ConfigError, match="generator.preset"):
        build_generator(_gen_cfg())
