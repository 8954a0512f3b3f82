"""`python -m hfagp.eval` on a tiny trained run: outputs against independent computations."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from shared_fixtures import LPIPS_FIXTURES, missing_fixture

pytestmark = pytest.mark.slow

LPIPS_WEIGHTS = LPIPS_FIXTURES / "lpips_alex_weights.npz"
# 1 same view + 4 novel views: the PTI renders of one frame and the method's batches share one shape.
BATCH = 5
# PTI with zero steps: its pipeline (base generator, start code, per-frame render at 1 + 4 cameras) runs
# and is checked; one optimisation step would compile PTI's two step functions, ~170 s of CPU time on
# 2 cores for this tiny generator (tests/hfagp/eval/test_pti.py covers the steps themselves).
PTI_STEPS = ("--pti-config", "cpu_test", "--pti-w-steps", "0", "--pti-g-steps", "0")


@pytest.fixture(scope="module")
def evaluated(tiny_rgb_run, tmp_path_factory):
    from hfagp.eval.__main__ import main

    if not LPIPS_WEIGHTS.is_file():
        missing_fixture(f"LPIPS fixture weights not found at {LPIPS_WEIGHTS}")
    out = tmp_path_factory.mktemp("eval")
    rc = main([str(tiny_rgb_run), "--out", str(out), "--batch-size", str(BATCH), "--lpips-weights",
               str(LPIPS_WEIGHTS), "--baseline", "pti", *PTI_STEPS, "--quiet"])
    assert rc == 0
    with open(out / "per_frame.csv") as f:
        rows = list(csv.DictReader(f))
    return out, rows, json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def avatar_and_frames(tiny_rgb_run):
    from hfagp.inference import load_split, load_trained

    avatar = load_trained(tiny_rgb_run)
    return avatar, load_split(avatar, "test")


def _row(rows, frame, method, view):
    (row,) = [r for r in rows if int(r["frame_index"]) == frame and r["method"] == method and r["view"] == view]
    return row


def _numpy_psnr(pred, target):
    mse = np.mean((np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2, axis=(1, 2, 3))
    return 10 * np.log10(4.0 / mse)


def test_outputs_and_row_layout(evaluated, avatar_and_frames):
    out, rows, summary = evaluated
    _, frames = avatar_and_frames
    n = len(frames["image"])
    views = ["same", "novel0", "novel1", "novel2", "novel3"]
    assert n == 4 and summary["num_frames"] == n and summary["split"] == "test" and summary["step"] == 12
    assert len(rows) == n * len(views) * 2
    assert list(rows[0]) == ["frame_index", "method", "view", "view_kind", "psnr", "ssim", "lpips", "face_psnr",
                             "face_ssim", "eyes_psnr", "mouth_psnr", "detail_ratio", "mouth_score", "eye_score"]
    # A synthetic (EG3D-made) world has no part labels: the face columns are empty and the summary says why.
    assert all(r["face_psnr"] == "" for r in rows)
    assert not summary["face"]["available"] and "part labels" in summary["face"]["reason"]
    for frame in frames["frame_index"]:
        for method in ("hfagp", "pti"):
            assert [r["view"] for r in rows if int(r["frame_index"]) == frame and r["method"] == method] == views
    assert all(math.isfinite(float(r[m])) for r in rows for m in ("psnr", "ssim", "lpips"))
    assert summary["lpips"]["enabled"] and summary["novel_views"]["available"]
    assert [v["yaw_offset_deg"] for v in summary["novel_views"]["views"]] == [20.0, -20.0, 0.0, 0.0]
    assert summary["timing"]["render"]["frames_per_s"] > 0
    assert len(summary["images"]) == 4 and all((out / p).is_file() for p in summary["images"])
    from PIL import Image

    with Image.open(out / summary["images"][0]) as im:  # rows: 5 views; columns: truth, hfagp, pti
        assert im.size == (3 * 128, 5 * 128)


def test_json_means_equal_csv_means(evaluated):
    _, rows, summary = evaluated
    for method in ("hfagp", "pti"):
        for kind in ("same", "novel"):
            selected = [r for r in rows if r["method"] == method and r["view_kind"] == kind]
            means = summary["metrics"][method][f"{kind}_view"]
            assert means["count"] == len(selected) == (4 if kind == "same" else 16)
            for m in ("psnr", "ssim", "lpips"):
                np.testing.assert_allclose(means[m], np.mean([float(r[m]) for r in selected]), rtol=1e-12)
        per_view = summary["metrics_per_view"][method]["novel2"]
        np.testing.assert_allclose(
            per_view["psnr"], np.mean([float(r["psnr"]) for r in rows if r["method"] == method
                                       and r["view"] == "novel2"]), rtol=1e-12)


def test_metrics_equal_independent_computation(evaluated, avatar_and_frames, tiny_rgb_run):
    """The method's rows: re-render with `load_trained(...).render`, score with numpy/skimage/LPIPS directly."""
    from skimage.metrics import structural_similarity

    from hfagp.lpips import make_lpips

    _, rows, _ = evaluated
    avatar, frames = avatar_and_frames
    world = tiny_rgb_run.parent / "world"
    labels = dict(json.loads((world / "novel_views" / "dataset.json").read_text())["labels"])
    first = int(frames["frame_index"][0])
    novel_name = f"{first:05d}_view1.png"
    from PIL import Image

    novel_truth = np.asarray(Image.open(world / "novel_views" / novel_name), np.float32)[None] / 127.5 - 1
    # One batch of 5: the 4 test frames at their own cameras + the first frame at novel view 1.
    inputs = np.concatenate([frames["image"], frames["image"][:1]])
    cams = np.concatenate([frames["label"], np.asarray(labels[novel_name], np.float32)[None]])
    pred = np.clip(np.asarray(avatar.render(inputs, cams)["image"]), -1, 1)
    truth = np.concatenate([frames["image"], novel_truth])

    psnr = _numpy_psnr(pred, truth)
    ssim = [structural_similarity((p.astype(np.float64) + 1) / 2, (t.astype(np.float64) + 1) / 2,
                                  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
                                  channel_axis=-1) for p, t in zip(pred, truth)]
    lpips = np.asarray(make_lpips(LPIPS_WEIGHTS, "alex")(pred, truth)).reshape(-1)
    keys = [(int(f), "same") for f in frames["frame_index"]] + [(first, "novel1")]
    for i, (frame, view) in enumerate(keys):
        row = _row(rows, frame, "hfagp", view)
        np.testing.assert_allclose(float(row["psnr"]), psnr[i], atol=2e-3)
        np.testing.assert_allclose(float(row["ssim"]), ssim[i], atol=2e-5)
        np.testing.assert_allclose(float(row["lpips"]), lpips[i], rtol=1e-3, atol=1e-5)


def test_pti_rows_equal_independent_computation(evaluated, avatar_and_frames):
    """With zero steps PTI renders the run's *base* generator at its start code (the mean of mapped samples at the
    frame's camera, on every layer)."""
    from hfagp.eval.pti import PTIConfig, start_code
    from hfagp.model import build_generator
    from PIL import Image

    _, rows, summary = evaluated
    avatar, frames = avatar_and_frames
    assert summary["pti"]["config"]["w_steps"] == 0 and summary["pti"]["config"]["g_steps"] == 0
    world = avatar.config.data.synthetic.dir
    labels = dict(json.loads(open(f"{world}/novel_views/dataset.json").read())["labels"])
    base = build_generator(avatar.config.generator)
    frame = int(frames["frame_index"][1])
    start = np.asarray(start_code(base, PTIConfig.cpu_test(), frames["label"][1]), np.float32)
    ws = np.broadcast_to(start, (BATCH, base.num_ws, base.config.w_dim))
    views = [f"{frame:05d}_view{v}.png" for v in range(4)]
    cams = np.stack([frames["label"][1]] + [np.asarray(labels[v], np.float32) for v in views])
    pred = np.clip(np.asarray(base.synthesis(ws, cams)["image"]), -1, 1)
    truth = np.stack([frames["image"][1]] + [np.asarray(Image.open(f"{world}/novel_views/{v}"), np.float32)
                                             / 127.5 - 1 for v in views])
    psnr = _numpy_psnr(pred, truth)
    for i, view in enumerate(["same", "novel0", "novel1", "novel2", "novel3"]):
        np.testing.assert_allclose(float(_row(rows, frame, "pti", view)["psnr"]), psnr[i], atol=2e-3)
    # The tuned run's renders differ from the base generator's.
    assert not np.isclose(float(_row(rows, frame, "hfagp", "same")["psnr"]), psnr[0], atol=1e-3)


def test_principal_angles_against_scipy(evaluated, avatar_and_frames, tiny_rgb_run):
    from scipy.linalg import subspace_angles

    _, _, summary = evaluated
    avatar, _ = avatar_and_frames
    sub = summary["subspace"]
    with np.load(tiny_rgb_run.parent / "world" / "ground_truth.npz") as gt:
        hidden = gt["basis"].reshape(len(gt["basis"]), -1)
    angles = np.asarray(sub["principal_angles_deg"])
    assert sub["available"] and sub["learned_k"] == avatar.k == 8 and sub["hidden_dim"] == 4
    assert len(angles) == min(avatar.k, len(hidden)) == 4
    assert np.all((angles >= 0) & (angles <= 90)) and np.all(np.diff(angles) >= 0)
    np.testing.assert_allclose(sub["mean_deg"], angles.mean(), rtol=1e-12)
    np.testing.assert_allclose(sub["max_deg"], angles.max(), rtol=1e-12)
    want = np.sort(np.degrees(subspace_angles(avatar.basis_matrix().T.astype(np.float64), hidden.T)))
    np.testing.assert_allclose(angles, want, atol=1e-6)


def test_without_lpips_weights_and_bad_workdir(tiny_rgb_run, tmp_path, capsys):
    """LPIPS is omitted (and the summary says why) without weights; a non-run is a clear error."""
    from hfagp.eval.__main__ import main

    out = tmp_path / "eval"
    assert main([str(tiny_rgb_run), "--out", str(out), "--batch-size", str(BATCH), "--max-frames", "1",
                 "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lpips"]["enabled"] is False and "lpips-weights" in summary["lpips"]["note"]
    assert "lpips" not in summary["metrics"]["hfagp"]["same_view"] and summary["num_frames"] == 1
    with open(out / "per_frame.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and "lpips" not in rows[0]

    assert main([str(tmp_path / "missing"), "--quiet"]) == 2
    assert "is not a training workdir" in capsys.readouterr().err
