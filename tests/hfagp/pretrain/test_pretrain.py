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
    # Validation scores the face region too (the validation renders carry the head world's part labels).
    assert np.isfinite(metrics["same_view_face_psnr"]) and metrics["novel_view_detail_ratio"] >= 0
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
    with pytest.raises(ConfigError, match=r"another config .*changed seed"):
        pretrain(other, workdir)


def test_resume_may_change_the_run_length_and_validation_cadence():
    from configs.pretrain_heads import get_config
    from hfagp.pretrain.loop import resume_changes

    saved = json.loads(get_config().to_json_best_effort())
    longer = get_config()
    longer.schedule.total_steps = 2 * longer.schedule.total_steps
    longer.schedule.eval_every = 500
    longer.export.dtype = "float32"
    assert resume_changes(saved, json.loads(longer.to_json_best_effort())) == []
    other = get_config()
    other.optim.code_lr = 0.5
    other.data.identities = 7
    assert resume_changes(saved, json.loads(other.to_json_best_effort())) == ["data.identities", "optim.code_lr"]


def test_sliced_wasserstein_fit_moves_the_mapping_onto_the_codes():
    import eg3d_flax
    from hfagp.pretrain.export import fit_mapping

    G = eg3d_flax.random_generator(eg3d_flax.preset("tiny128", neural_rendering_resolution=16), seed=0)
    codes = np.random.default_rng(0).normal(0.5, 0.2, (256, 512)).astype(np.float32)
    _, losses = fit_mapping(G, codes, steps=60)
    assert losses[-1] < 0.2 * losses[0]


def test_report_scores_the_prior_beside_a_random_generator(tiny_run, tmp_path):
    from PIL import Image

    from hfagp.pretrain.report import STRIP_YAW_DEG, main

    workdir, _, _ = tiny_run
    out = tmp_path / "report"
    assert main([str(workdir / "generator"), "--out", str(out), "--identities", "0", "--invert-steps", "2"]) == 0
    summary = json.loads((out / "inversion.json").read_text())
    for scores in (summary, summary["random_generator"]):
        psnr = np.asarray(scores["psnr"])
        assert psnr.shape == (1, 3) and np.isfinite(psnr).all()     # the frontal view and yaw -30, +30
        assert scores["gap_db"] == pytest.approx(psnr[0, 0] - psnr[0, 1:].mean(), abs=2e-3)
        assert np.asarray(scores["face_psnr"]).shape == (1, 3) and np.isfinite(scores["same_view_detail_ratio"])
    assert summary["strip_rows"] == ["ground truth", "prior", "random generator"]
    assert summary["strip_yaw_deg"] == sorted(STRIP_YAW_DEG)
    strip = Image.open(out / "orbit_strip.png")
    assert strip.size[0] > strip.size[1]                            # 7 yaw columns, 3 rows
    text = (out / "inversion.md").read_text()
    assert "random generator" in text and text.count("| mean |") == 2
