"""Every field of every config (train.py's, hfagp.pretrain's, hfagp.experiments'), with bad values generated from
the declared schemas (hfagp_common.config_schema): each is refused with one message naming the dotted key, before
any work; the same for a workdir's config.json read back. A new field is covered when it is declared, and a field
without a rule fails `test_every_field_has_a_rule`."""

from __future__ import annotations

import copy
import json

import pytest

from configs import common, experiments, pretrain_heads
from hfagp_common import config_schema
from hfagp_common.cli import ConfigError


def _train_values() -> dict:
    return common.make_config("rgb", "cpu").to_dict()


# (name, schema module, a valid config's values, the ledger's entry point)
SCHEMAS = {
    "train": (common, _train_values, "train.py"),
    "pretrain": (pretrain_heads, lambda: pretrain_heads.get_config("tiny").to_dict(), "hfagp.pretrain"),
    "experiments": (experiments, lambda: experiments.get_config("tiny").to_dict(), "hfagp.experiments"),
}


def _set(values: dict, key: str, value) -> dict:
    out = copy.deepcopy(values)
    node = out
    *path, last = key.split(".")
    for part in path:
        node = node[part]
    node[last] = value
    return out


def _cases():
    for name, (module, _, _) in SCHEMAS.items():
        for key in module.SCHEMA:
            yield pytest.param(name, key, id=f"{name}:{key}")


@pytest.mark.parametrize("name, key", list(_cases()))
def test_every_bad_value_of_every_field_is_refused_naming_the_key(name, key, ledger):
    module, values_of, entry_point = SCHEMAS[name]
    values = values_of()
    config_schema.check(values, module.SCHEMA, module.RELATIONS)  # the valid config passes
    rule = module.SCHEMA[key]
    for bad in rule.bad_values():
        with ledger.bad_input(f"{entry_point} config"):
            with pytest.raises(ConfigError) as e:
                config_schema.check(_set(values, key, bad), module.SCHEMA, module.RELATIONS)
            assert str(e.value).startswith(f"{key} must be "), str(e.value)
            assert "\n" not in str(e.value)


# One violation of each relation: {schema: [(overrides, the message's start)]}.
RELATION_CASES = {
    "train": [
        ({"data.synthetic.test_frames": 60}, "data.synthetic.test_frames must be fewer"),
        ({"data.heads.test_frames": 150, "data.heads.frames": 150}, "data.heads.test_frames must be fewer"),
        ({"loss.resolution": 256}, "loss.resolution must divide"),
        ({"loss.resolution": 32, "data.resolution": 64, "generator.neural_rendering_resolution": 48},
         "generator.neural_rendering_resolution must be 0"),
        ({"generator.preset": "", "generator.path": ""}, "set generator.path"),
        ({"distributed.enabled": True}, "distributed.enabled needs"),
    ],
    "pretrain": [
        ({"optim.views_per_scene": 3}, "optim.views_per_scene must be at most"),
        ({"optim.scenes_per_batch": 7}, "optim.scenes_per_batch must be at most"),
        ({"generator.neural_rendering_resolution": 256}, "generator.neural_rendering_resolution must divide"),
        ({"data.resolution": 512}, "data.resolution must be the preset's"),
    ],
    "experiments": [
        ({"test_frames": 40}, "test_frames must be fewer"),
        ({"pti.max_frames": 5}, "pti.max_frames must be at most"),
        ({"fast.generator_tuning_starts": [8, 16]}, "every fast.generator_tuning_starts"),
        ({"ablations.generator_tuning_start": 16}, "ablations.generator_tuning_start must be below"),
    ],
}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_every_relation_is_checked(name, ledger):
    module, values_of, entry_point = SCHEMAS[name]
    cases = RELATION_CASES[name]
    assert len(cases) == len(module.RELATIONS)
    messages = set()
    for overrides, start in cases:
        values = values_of()
        for key, value in overrides.items():
            values = _set(values, key, value)
        with ledger.bad_input(f"{entry_point} config"):
            with pytest.raises(ConfigError, match="^" + start.replace(".", r"\.")) as e:
                config_schema.check(values, module.SCHEMA, module.RELATIONS)
        messages.add(next(r.message for r in module.RELATIONS if str(e.value).startswith(r.message)))
    assert messages == {r.message for r in module.RELATIONS}


def test_every_field_has_a_rule_in_every_variant():
    for encoder in ("rgb", "expression", "audio"):
        for variant in common.VARIANTS:
            cfg = common.make_config(encoder, variant)
            assert config_schema.undeclared(cfg, common.SCHEMA) == [], (encoder, variant)
            values = cfg.to_dict()
            if not values["generator"]["preset"]:
                values["generator"]["path"] = "some/generator"
            config_schema.check(values, common.SCHEMA, common.RELATIONS)
    for module in (pretrain_heads, experiments):
        for variant in ("", "tiny"):
            cfg = module.get_config(variant)
            assert config_schema.undeclared(cfg, module.SCHEMA) == []
            config_schema.check(cfg, module.SCHEMA, module.RELATIONS)


def test_the_choices_are_the_librarys():
    import eg3d_flax
    from avatar_data.formats import FORMATS
    from encoders import ENCODERS
    from hfagp import lpips, precision
    from hfagp.train.validate import DATA_SOURCES
    from prior.basis import INIT_MODES, ORTHOGONALITY_MODES

    def values(schema, key):
        return set(schema[key].values)

    s = common.SCHEMA
    assert values(s, "model.encoder") == set(ENCODERS)
    assert values(s, "precision") == set(precision.PRECISIONS)
    assert values(s, "model.orthogonality") == set(ORTHOGONALITY_MODES)
    assert values(s, "model.prior_init") == set(INIT_MODES) == values(experiments.SCHEMA, "fast.prior_init")
    assert values(s, "loss.lpips_net") == set(lpips.NETS)
    assert values(s, "data.format") == set(FORMATS)
    assert values(s, "data.source") == set(DATA_SOURCES)
    assert values(s, "generator.preset") == set(eg3d_flax.PRESETS) | {""}
    assert values(pretrain_heads.SCHEMA, "generator.preset") == set(eg3d_flax.PRESETS)


def test_an_unknown_or_missing_key_is_refused_and_a_close_one_suggested():
    values = _train_values()
    values["optim"]["batchsize"] = 2
    with pytest.raises(ConfigError, match=r"optim\.batchsize is not a setting \(did you mean optim\.batch_size\?\)"):
        config_schema.check(values, common.SCHEMA, common.RELATIONS)
    values = _train_values()
    del values["model"]["k"]
    with pytest.raises(ConfigError, match=r"^model\.k is missing"):
        config_schema.check(values, common.SCHEMA, common.RELATIONS)
    config_schema.check_saved(values, common.SCHEMA, common.RELATIONS)  # an older run may lack a newer key


def test_a_workdirs_config_json_is_checked_when_read_back(tmp_path, ledger):
    """Every field of a training workdir's config.json with its first bad value: `hfagp.workdir.load_config` (what
    hfagp.eval, hfagp.render and resuming read) refuses it naming the file and the key."""
    from hfagp import workdir as workdir_lib

    values = _train_values()
    (tmp_path / "config.json").write_text(json.dumps(values))
    workdir_lib.load_config(tmp_path)
    for key, rule in common.SCHEMA.items():
        bad = rule.bad_values()[0]
        (tmp_path / "config.json").write_text(json.dumps(_set(values, key, bad)))
        with ledger.bad_input("train.py config.json"):
            with pytest.raises(ConfigError) as e:
                workdir_lib.load_config(tmp_path)
            assert str(e.value).startswith(f"{tmp_path / 'config.json'}: {key} must be "), str(e.value)


def test_a_pretraining_config_json_is_checked_when_resumed(tmp_path, ledger):
    from hfagp.pretrain.loop import pretrain

    cfg = pretrain_heads.get_config("tiny")
    values = _set(cfg.to_dict(), "data.views_per_scene", -2)
    (tmp_path / "config.json").write_text(json.dumps(values))
    with ledger.bad_input("hfagp.pretrain config.json"):
        with pytest.raises(ConfigError, match=r"config\.json: data\.views_per_scene must be an integer in \[1, 100\]"):
            pretrain(cfg, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # nothing written

