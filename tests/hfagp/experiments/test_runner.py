"""hfagp.experiments.runner pieces that need no training."""

from __future__ import annotations


def test_baseline_configs_need_no_vgg_weights():
    from configs.experiments import get_config
    from hfagp.experiments.runner import pti_config

    exp = get_config()
    pti = pti_config(exp, tune=True)
    inversion = pti_config(exp, tune=False)
    assert (pti.w_steps, pti.g_steps, pti.latent_space) == (exp.pti.w_steps, exp.pti.g_steps, exp.pti.latent_space)
    assert (inversion.g_steps, inversion.latent_space) == (0, "w+")
    assert pti.invert_distance == inversion.invert_distance == "l2_lpips"


def test_a_table_is_reused_only_for_the_config_it_was_made_with(tmp_path):
    from configs.experiments import get_config
    from hfagp.experiments.runner import _part_done, write_table

    exp = get_config("tiny")
    text = write_table(tmp_path, exp, "table1", "Table 1", ["a"], [[1]], {"x": 1}, wall_s=60.0)
    assert _part_done(tmp_path, exp, "table1") == text
    other_parts = get_config("tiny")
    other_parts.unlock()
    other_parts.parts.table4 = True          # which parts run does not change a table
    assert _part_done(tmp_path, other_parts, "table1") == text
    more_identities = get_config("tiny")
    more_identities.unlock()
    more_identities.identities = (0, 1)
    assert _part_done(tmp_path, more_identities, "table1") is None
    assert _part_done(tmp_path, exp, "table4") is None
