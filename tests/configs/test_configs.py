"""The config files (configs/*.py): every file and variant builds a locked config, `override` sets dotted keys,
and unknown encoders, variants and keys are refused."""

from __future__ import annotations

import importlib

import pytest

from configs.common import VARIANTS, make_config, override

TRAINING = ("rgb", "expression", "audio")


@pytest.mark.parametrize("encoder", TRAINING)
def test_every_training_file_and_variant_builds_a_locked_config(encoder):
    module = importlib.import_module(f"configs.{encoder}")
    for variant in VARIANTS:
        cfg = module.get_config(variant)
        assert cfg.to_dict() == make_config(encoder, variant).to_dict()
        assert cfg.is_locked
        with pytest.raises(AttributeError):
            cfg.no_such_knob = 1
    assert module.get_config().to_dict() == make_config(encoder, "paper").to_dict()


@pytest.mark.parametrize("name", ["pretrain_heads", "pretrain_face", "experiments"])
def test_the_other_files_have_a_default_and_a_tiny_variant(name):
    module = importlib.import_module(f"configs.{name}")
    assert module.get_config().to_dict() != module.get_config("tiny").to_dict()
    assert module.get_config().is_locked and module.get_config("tiny").is_locked
    with pytest.raises(ValueError, match="variant"):
        module.get_config("huge")


def test_the_face_prior_changes_values_of_the_head_prior_only():
    from configs import pretrain_face, pretrain_heads
    from hfagp.runtime.config_keys import flatten
    from hfagp_common import config_schema

    for variant in ("", "tiny"):
        face, heads = (flatten(m.get_config(variant).to_dict()) for m in (pretrain_face, pretrain_heads))
        assert set(face) == set(heads)
        config_schema.check(pretrain_face.get_config(variant), pretrain_face.SCHEMA, pretrain_face.RELATIONS)
    face = pretrain_face.get_config()
    assert (face.model.code, face.loss.image_distance, face.generator.neural_rendering_resolution) == ("params", "l1", 64)


def test_override_sets_dotted_keys_and_refuses_unknown_ones():
    cfg = override(make_config("rgb", "cpu"), {"schedule.total_steps": 30, "model.k": 4})
    assert cfg.schedule.total_steps == 30 and cfg.model.k == 4
    with pytest.raises((AttributeError, KeyError)):
        override(cfg, {"model.no_such_knob": 1})
    with pytest.raises(ValueError, match="variant"):
        make_config("rgb", "huge")
    with pytest.raises(ValueError, match="encoder"):
        make_config("depth", "cpu")
