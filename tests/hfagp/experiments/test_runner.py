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
