"""Config values as dotted keys (hfagp.runtime.config_keys): flattening and key patterns."""

from __future__ import annotations

from hfagp.runtime.config_keys import covered, flatten


def test_flatten_keeps_lists_and_empty_sections_whole():
    values = {"optim": {"learning_rate": 0.1, "betas": [0.9, 0.99]}, "model": {"encoder_kwargs": {}}, "seed": 0}
    assert flatten(values) == {"optim.learning_rate": 0.1, "optim.betas": [0.9, 0.99], "model.encoder_kwargs": {},
                               "seed": 0}


def test_a_pattern_covers_its_key_and_section_and_star_everything():
    assert covered("optim.learning_rate", ["optim"]) and covered("optim.learning_rate", ["optim.learning_rate"])
    assert not covered("optimizer.x", ["optim"]) and not covered("optim", ["optim.learning_rate"])
    assert covered("anything.at.all", ["*"]) and not covered("seed", [])
