"""Pretraining end to end on a handful of identities (configs/pretrain_heads.py:tiny): data, training, validation,
resumption, export, and the pieces (batches, the sliced Wasserstein mapping fit)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The face prior's recipe (code map, face-weighted L1 and gradient loss) on the tiny data set."""
    from configs.pretrain_face import get_config
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
    # The face mask (test_face_mask_is_the_grown_face_parts) and its coverage at the neural rendering resolution.
    assert (a["face"] == 1.0).any() and set(np.unique(a["face"])) <= {0.0, 1.0}
    assert a["face_raw"].shape == (4, 16, 16) and a["face_raw"].min() >= 0 and a["face_raw"].max() <= 1
    np.testing.assert_allclose(a["face_raw"].mean(axis=(1, 2)), a["face"].mean(axis=(1, 2)), rtol=1e-5)
    # Views of one scene share its condition (standardised identity vector, expression).
    assert a["condition"].shape == (4, data.condition_dim)
    np.testing.assert_array_equal(a["condition"][0], a["condition"][1])
    assert not np.array_equal(a["condition"][0], a["condition"][2])


def test_face_mask_is_the_grown_face_parts(tiny_run):
    from hfagp import metrics
    from hfagp.pretrain.data import FACE_DILATION, FACE_PARTS, load_data

    workdir, _, _ = tiny_run
    data = load_data(workdir / "data")
    rows = np.arange(4)
    batch = data.rows(rows, 16)
    parts = metrics.part_mask(data.part_labels[rows], data.part_names, FACE_PARTS)
    assert np.all(batch["face"][parts] == 1.0)                          # every face-part pixel is in
    grown = metrics.dilate(parts, FACE_DILATION)
    assert np.all(batch["face"][~grown] == 0.0)                         # nothing beyond the grown parts
    hair = metrics.part_mask(data.part_labels[rows], data.part_names, ("hair", "background"))
    assert batch["face"][hair & ~grown].sum() == 0 and hair.any()


def test_code_models_give_each_scene_its_code():
    import jax.numpy as jnp

    from configs.pretrain_heads import get_config
    from hfagp.pretrain import objective

    class Data:   # the two facts of a data set the code models read
        num_identities, num_scenes, condition_dim = 2, 3, 5
        scene_identity = np.array([0, 0, 1])

        def scene_conditions(self):
            return np.arange(15, dtype=np.float32).reshape(3, 5) / 15.0

    config = get_config().model
    free = objective.init_model(config, Data(), 8, seed=0)
    batch = {"identity": np.array([1, 0]), "scene": np.array([2, 0]), "condition": Data().scene_conditions()[[2, 0]]}
    codes = {k: np.asarray(v) for k, v in free["codes"].items()}
    np.testing.assert_allclose(objective.batch_codes(free, batch), codes["identity"][[1, 0]] + codes["scene"][[2, 0]])
    np.testing.assert_allclose(objective.scene_codes(free, Data()), codes["identity"][[0, 0, 1]] + codes["scene"])
    config.code = "params"
    mapped = objective.init_model(config, Data(), 8, seed=0)
    assert sorted(mapped["code_map"]) == ["hidden_0", "hidden_1", "out"]
    assert mapped["code_map"]["hidden_0"]["w"].shape == (5, 256) and mapped["code_map"]["out"]["w"].shape == (256, 8)
    all_codes = objective.scene_codes(mapped, Data())
    np.testing.assert_allclose(objective.batch_codes(mapped, batch), all_codes[[2, 0]], rtol=1e-5, atol=1e-7)
    # The first codes are about `identity_code_std` per coordinate, as free identity codes are.
    many = objective.apply_code_map(mapped["code_map"], jnp.asarray(np.random.default_rng(0).normal(size=(512, 5))))
    assert 0.03 < float(jnp.std(many)) < 0.3


def test_face_weighted_loss_terms():
    import jax.numpy as jnp

    from hfagp.pretrain.objective import gradient_error, weighted_mean

    x = jnp.asarray(np.random.default_rng(0).random((2, 4, 4, 3)), jnp.float32)
    ones = jnp.ones((2, 4, 4))
    np.testing.assert_allclose(weighted_mean(x, ones), jnp.mean(x), rtol=1e-6)
    face = jnp.zeros((2, 4, 4)).at[:, 1, 1].set(1.0)
    # One face pixel weighted 1 + 9: it counts 10 times in the mean.
    expected = (jnp.sum(x) + 9 * jnp.sum(x[:, 1, 1])) / (3 * (32 + 2 * 9))
    np.testing.assert_allclose(weighted_mean(x, 1.0 + 9.0 * face), expected, rtol=1e-6)
    # The gradient term sees an edge of the error, not a constant offset.
    assert float(gradient_error(jnp.full((1, 4, 4, 3), 0.7), jnp.ones((1, 4, 4)))) == 0.0
    step = jnp.zeros((1, 4, 4, 3)).at[:, :, 2:].set(1.0)
    np.testing.assert_allclose(gradient_error(step, jnp.ones((1, 4, 4))), 4 * 3 / (4 * 3 * 3), rtol=1e-6)


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
    # w_avg is the mean scene code (the code map's codes of the data set's 6 scenes, saved with the map).
    with np.load(workdir / "best" / "codes.npz") as codes:
        scene_codes = codes["scene_codes"]
        assert "code_map/out/w" in codes.files and scene_codes.shape == (6, 512)
    w_avg = np.asarray(G.variables["buffers"]["backbone"]["mapping"]["w_avg"])
    np.testing.assert_allclose(w_avg, scene_codes.mean(axis=0), rtol=1e-5, atol=1e-7)
    assert np.abs(w_avg).max() > 0
    assert len(json.loads((workdir / "eval_metrics.jsonl").read_text().splitlines()[-1])["psnr_per_identity_and_view"][0]) == 3
    # Each validation leaves a picture: truth over the inverted prior, frontal and two novel views.
    from PIL import Image

    from hfagp.pretrain.data import SWEEP_EXPRESSIONS

    sheets = sorted(p.name for p in (workdir / "samples").iterdir())
    assert sheets == ["expressions_0000003.png", "expressions_0000006.png", "validation_0000003.png",
                      "validation_0000006.png"]
    assert Image.open(workdir / "samples" / sheets[-1]).size == (3 * 128, 2 * 128)
    # And the code map's renders of a held-out person's expressions, under the truth.
    assert Image.open(workdir / "samples" / sheets[0]).size == (len(SWEEP_EXPRESSIONS) * 128, 2 * 128)


def test_rerun_resumes_and_does_not_retrain(tiny_run):
    from hfagp.pretrain.loop import pretrain

    workdir, config, _ = tiny_run
    before = (workdir / "metrics.jsonl").read_text()
    pretrain(config, workdir)
    assert (workdir / "metrics.jsonl").read_text() == before     # no step ran again


def test_another_config_is_refused(tiny_run):
    from configs.pretrain_face import get_config
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


def test_a_time_limited_invocation_checkpoints_stops_and_resumes(tiny_run, tmp_path):
    from configs.pretrain_face import get_config
    from hfagp.pretrain.loop import pretrain

    data_dir = tiny_run[0] / "data"
    config = get_config("tiny")
    config.data.dir = str(data_dir)
    config.schedule.stop_after_hours = 1e-9       # stops after its first step
    assert pretrain(config, tmp_path / "run") == {"stopped_at": 1}
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit()) == ["1"]
    config.schedule.stop_after_hours = 0.0        # a resumable key: the rerun continues to the end
    provenance = pretrain(config, tmp_path / "run")
    assert provenance["steps_run"] == config.schedule.total_steps
    logged = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged] == list(range(1, config.schedule.total_steps + 1))  # once each, in order
    assert all(m["images_per_s"] > 0 for m in logged)
