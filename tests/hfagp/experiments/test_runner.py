"""hfagp.experiments.runner pieces that need no training."""

from __future__ import annotations

from pathlib import Path


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


def test_ablation_runs_are_the_fast_recipe_with_one_change_each():
    from configs.experiments import get_config
    from hfagp.experiments.runner import ABLATIONS, ablation_runs, run_config

    exp = get_config()
    variants = ablation_runs(exp)
    assert [label for label, _ in variants] == ["qr (default)", *ABLATIONS]
    names = [run.name for _, runs in variants for run in runs]
    assert len(set(names)) == len(names) == len(variants) * len(exp.ablations.seeds)
    configs = {label: [run_config(exp, run, Path("w")) for run in runs] for label, runs in variants}
    default = configs["qr (default)"][0]
    assert default.schedule.total_steps == exp.fast.total_steps
    assert default.schedule.generator_tuning_start == exp.ablations.generator_tuning_start
    assert default.optim.learning_rate == exp.fast.learning_rate and default.model.orthogonality == "qr"
    assert [c.seed for c in configs["qr (default)"]] == list(exp.ablations.seeds)
    for label, changes in ABLATIONS.items():
        c = configs[label][0]
        for key, value in changes.items():
            node = c
            for part in key.split("."):
                node = node[part]
            assert node == value, (label, key)
        assert c.schedule.total_steps == exp.fast.total_steps  # the recipe is the default's
    assert configs["init_official"][0].model.prior_init == "official" and default.model.prior_init == "w_avg"


def test_the_faithful_ablation_recipe_and_a_bad_one():
    import pytest

    from configs.experiments import get_config
    from hfagp.experiments.runner import ablation_runs, run_config

    exp = get_config()
    exp.unlock()
    exp.ablations.recipe = "faithful"
    (label, runs), *_ = ablation_runs(exp)
    assert run_config(exp, runs[0], Path("w")).schedule.total_steps == exp.total_steps
    exp.ablations.recipe = "quick"
    with pytest.raises(ValueError, match="ablations.recipe"):
        ablation_runs(exp)


def test_figure_runs_puts_each_runs_render_beside_one_ground_truth(tmp_path):
    import numpy as np
    import pytest

    from hfagp.experiments.runner import figure_runs
    from hfagp_common.images import read_image, save_png

    size, rows = 8, 3
    for run, value in (("a_id0", 60), ("b_id0", 120), ("a_id1", 180), ("b_id1", 240)):
        comparison = np.full((rows * size, 2 * size, 3), value, np.uint8)
        comparison[:, :size] = 10  # the ground-truth column
        save_png(tmp_path / "runs" / run / "eval" / "method" / "comparisons" / "frame_00005.png", comparison)
    path = figure_runs(tmp_path, "t", [["a_id0", "b_id0"], ["a_id1", "b_id1"]])
    figure = np.round((read_image(path) + 1) * 127.5).astype(int)
    block = 3 * size
    assert figure.shape == (rows * size, 2 * block + 8, 3)
    assert [figure[0, c * size, 0] for c in range(3)] == [10, 60, 120]
    assert figure[0, block + 2, 0] == 255  # the gap between identities
    assert [figure[0, block + 8 + c * size, 0] for c in range(3)] == [10, 180, 240]
    with pytest.raises(FileNotFoundError, match="no evaluation comparisons"):
        figure_runs(tmp_path, "t", [["missing_id0"]])


def test_cross_validated_r2_of_a_linear_map_noise_and_a_still_target():
    import numpy as np
    import pytest

    from hfagp.experiments.runner import cross_validated_r2, pooled_r2

    rng = np.random.RandomState(0)
    truth = rng.uniform(size=(150, 3))
    truth[:, 2] = 0.5                                  # a parameter that never moves is left out
    features = truth[:, :2] @ rng.normal(size=(2, 6)) + 0.1
    per_target = cross_validated_r2(features, truth)
    np.testing.assert_allclose(per_target[:2], 1.0, atol=1e-9)
    assert np.isnan(per_target[2])
    assert pooled_r2(features, truth) == pytest.approx(1.0, abs=1e-9)
    noisy = features + rng.normal(scale=0.5, size=features.shape)
    assert 0.0 < pooled_r2(noisy, truth) < 0.95
    assert pooled_r2(rng.normal(size=(150, 6)), truth) < 0.1  # unrelated coefficients explain nothing
    only_first = np.concatenate([truth[:, :1] * [1.0, 2.0], np.ones((150, 1))], axis=1)
    r2 = cross_validated_r2(only_first, truth)
    assert r2[0] == pytest.approx(1.0) and r2[1] < 0.1
    with pytest.raises(ValueError, match="no target varies"):
        pooled_r2(features, np.zeros((150, 2)))
