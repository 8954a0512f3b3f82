"""Pretraining end to end on a handful of identities (configs/pretrain_heads.py:tiny): data, training, validation,
resumption, export, and the pieces (batches, the sliced Wasserstein mapping fit)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from configs.pretrain_heads import get_config
    from hfagp.pretrain.loop import pretrain

    workdir = tmp_path_factory.mktemp("pretrain")
    config = get_config("tiny")
    provenance = pretrain(config, workdir)
    return workdir, config, provenance


def test_batches_are_deterministic_and_hold_whole_scenes(tiny_run):
    from hfagp.pretrain.data import load_data

    workdir, config, _ = tiny_run
    data = load_data(workdir / "data")
    a = data.batch(5, 0, 2, 2, 16)
    b = data.batch(5, 0, 2, 2, 16)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert a["image"].shape == (4, 128, 128, 3) and a["raw"].shape == (4, 16, 16, 3)
    assert a["scene"][0] == a["scene"][1] and a["scene"][2] == a["scene"][3]       # two views of each scene
    assert np.all(data.scene_identity[a["scene"]] == a["identity"])
    # The raw target is black where the person is absent; depth lies in EG3D's ray range on the foreground.
    assert np.all(a["raw"][a["mask"] == 0] == -1.0)
    fg = a["mask"] > 0.5
    assert fg.any() and np.all((a["depth"][fg] > 2.25) & (a["depth"][fg] < 3.3))


def test_run_exports_a_loadable_generator_with_provenance(tiny_run):
    import eg3d_flax
    from hfagp.pretrain.loop import file_checksums

    workdir, config, provenance = tiny_run
    out = workdir / "generator"
    G = eg3d_flax.load_generator(out)
    assert G.config.img_resolution == 128 and G.config.neural_rendering_resolution == 16
    stored = json.loads((out / "provenance.json").read_text())
    assert stored["checksums"] == {k: v for k, v in file_checksums(out).items() if k != "provenance.json"}
    assert stored["best_step"] in (3, 6) and stored["data"]["images"] == 3 * 2 * 2
    metrics = stored["held_out_metrics"]
    assert metrics["identity_seeds"] == [990] and np.isfinite(metrics["same_view_psnr"])
    # w_avg is the mean scene code; the fitted mapping network maps z to latents near the codes.
    with np.load(workdir / "best" / "codes.npz") as codes:
        identity, scene = codes["identity"], codes["scene"]
    w_avg = np.asarray(G.variables["buffers"]["backbone"]["mapping"]["w_avg"])
    assert w_avg.shape == (512,) and np.isfinite(w_avg).all() and np.abs(w_avg).max() > 0
    assert len(json.loads((workdir / "eval_metrics.jsonl").read_text().splitlines()[-1])["psnr_per_identity_and_view"][0]) == 3


def test_rerun_resumes_and_does_not_retrain(tiny_run):
    from hfagp.pretrain.loop import pretrain

    workdir, config, _ = tiny_run
    before = (workdir / "metrics.jsonl").read_text()
    pretrain(config, workdir)
    assert (workdir / "metrics.jsonl").read_text() == before     # no step ran again


def test_another_config_is_refused(tiny_run):
    from configs.pretrain_heads import get_config
    from hfagp.pretrain.loop import pretrain
    from hfagp_common.cli import ConfigError

    workdir, _, _ = tiny_run
    other = get_config("tiny")
    other.seed = 1
    with pytest.raises(ConfigError, match="another config"):
        pretrain(other, workdir)


def test_sliced_wasserstein_fit_moves_the_mapping_onto_the_codes():
    import eg3d_flax
    from hfagp.pretrain.export import fit_mapping

    G = eg3d_flax.random_generator(eg3d_flax.preset("tiny128", neural_rendering_resolution=16), seed=0)
    codes = np.random.default_rng(0).normal(0.5, 0.2, (256, 512)).astype(np.float32)
    _, losses = fit_mapping(G, codes, steps=60)
    assert losses[-1] < 0.2 * losses[0]
