"""The experiments' one command in its CI size (configs/experiments.py:tiny: one unseen identity, 60 training
steps, PTI 40 + 20 steps per frame on the first 2 of 4 test frames): the tables are written, the main claim's
direction holds (HFA-GP's novel views beat PTI's), and a second run redoes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.optimized]


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory):
    from configs.experiments import get_config
    from hfagp.experiments.runner import run_experiments

    out = tmp_path_factory.mktemp("experiments")
    exp = get_config("tiny")
    texts = run_experiments(exp, out)
    return out, exp, texts


def test_table1_is_written_with_every_method_and_its_wall_time(tiny_experiment):
    out, exp, texts = tiny_experiment
    assert list(texts) == ["table1"]
    table = json.loads((out / "tables" / "table1.json").read_text())
    assert table["wall_s"] > 0
    entry = table["per_identity"]["0"]
    for method in ("hfagp", "pti", "inversion"):
        scores = entry[method]
        assert set(scores) == {"same_psnr", "same_ssim", "novel_psnr", "novel_ssim"}
        assert all(np.isfinite(v) for v in scores.values()), (method, scores)
        # The face scores on the world's part labels, for every method.
        face = entry["face"][method]
        assert all(np.isfinite(face[f"{kind}_{name}"]) for kind in ("same", "novel")
                   for name in ("face_psnr", "detail_ratio")), (method, face)
    # HFA-GP's readback over every frame of the video, beside the ground truth's (the ceiling).
    face = entry["face"]["hfagp"]
    assert face["all_frames"] == exp.frames and face["heldout_frames"] == exp.test_frames
    assert 0 <= face["all_jaw_open_r2"] <= 1 and 0 < face["all_jaw_open_r2_ceiling"] <= 1, face
    depth = entry["depth_error"]
    assert set(depth) == {"same_view", "novel_views"} and all(0 < v < 1 for v in depth.values()), depth
    markdown = (out / "tables" / "table1.md").read_text()
    assert "| mean | HFA-GP (RGB) |" in markdown and "Wall time of this part" in markdown
    assert "| identity | method | face PSNR (same) |" in markdown and "ceiling" in markdown
    assert (out / "results.md").read_text().count("## Table 1") == 1
    # The comparison pictures of each method exist (ground truth | HFA-GP, ground truth | HFA-GP | PTI).
    run = out / "runs" / "rgb_id0" / "eval"
    for name in ("method", "pti", "inversion"):
        assert list((run / name / "comparisons").glob("*.png")), name
    # The in-training evaluation (TensorBoard and eval_metrics.jsonl) scores the face too.
    last = json.loads((out / "runs" / "rgb_id0" / "eval_metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == exp.total_steps
    for key in ("eval/face_psnr", "eval/novel_face_psnr", "eval/detail_ratio", "eval/jaw_open_r2_ceiling"):
        assert np.isfinite(last[key]), (key, last)


def test_hfagp_novel_views_beat_pti(tiny_experiment):
    """The paper's Fig. 3 claim, measured: a personalised prior keeps the person in views PTI never saw."""
    out, _, _ = tiny_experiment
    table = json.loads((out / "tables" / "table1.json").read_text())
    entry = table["per_identity"]["0"]
    assert table["hfagp_beats_pti_novel"] == {"0": True}
    assert entry["hfagp"]["novel_psnr"] > entry["pti"]["novel_psnr"], entry


def test_a_second_run_redoes_nothing(tiny_experiment):
    from hfagp.experiments.runner import run_experiments

    out, exp, texts = tiny_experiment
    watched = [p for p in out.rglob("*") if p.is_file() and p.suffix in (".json", ".md", ".npz", ".csv")]
    before = {p: p.stat().st_mtime_ns for p in watched}
    again = run_experiments(exp, out)
    assert again == texts
    changed = [str(p) for p in watched if p.stat().st_mtime_ns != before[p] and p.name != "results.md"]
    assert not changed, changed
