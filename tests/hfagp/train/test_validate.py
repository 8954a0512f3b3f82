"""What train.py refuses before training when the data cannot feed the config (hfagp.train.validate)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


def test_a_face_weighted_loss_needs_face_points():
    import eg3d_flax
    from configs.common import make_config
    from hfagp.model import ModelSpec
    from hfagp.train.validate import check_data_matches
    from hfagp_common.cli import ConfigError

    cfg = make_config("rgb", "cpu")
    cfg.loss.face_weight = 4.0
    spec = ModelSpec.from_config(cfg)
    generator = eg3d_flax.preset("tiny128")
    data = SimpleNamespace(resolution=128, keys=frozenset({"image", "label", "frame_index"}), train=[None] * 8)
    with pytest.raises(ConfigError, match=r"loss.face_weight=4.0 needs the frames' face points"):
        check_data_matches(cfg, spec, generator, data)
    data.keys = data.keys | {"face_points"}
    check_data_matches(cfg, spec, generator, data)
    cfg.loss.face_weight = 0.0
    check_data_matches(cfg, spec, generator, SimpleNamespace(resolution=128, keys=frozenset({"image", "label"}),
                                                             train=[None] * 8))
