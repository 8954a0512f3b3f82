"""From a raw video to an evaluated avatar: `train.py --config.data.folder=VIDEO.mp4` prepares the video once
(avatar_data.prepare), trains the CPU config on it and `python -m hfagp.eval` scores the held-out frames."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from shared_fixtures import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.heavy]  # ~5 minutes: prepare, train, evaluate


def _mediapipe_problem() -> str:
    try:
        from avatar_data.prepare import tracking

        tracking.import_mediapipe()
    except ImportError as e:
        return str(e)
    return ""


def test_video_prepared_trained_and_evaluated(tmp_path):
    if _mediapipe_problem():
        pytest.skip(f"needs mediapipe 0.10.14: {_mediapipe_problem()}")
    from avatar_data.prepare import evaluate as prepare_evaluate

    video = tmp_path / "talk.mp4"
    prepare_evaluate.make_motion_video(str(video), num_frames=50)
    workdir = tmp_path / "run"
    cmd = [sys.executable, "train.py", "--config=configs/rgb.py:cpu", f"--workdir={workdir}",
           "--config.data.source=folder", f"--config.data.folder={video}", "--config.data.resolution=128",
           "--config.progress_bar=false", "--config.schedule.total_steps=6",
           "--config.schedule.generator_tuning_start=4", "--config.log_every=1", "--config.checkpoint.every=6",
           "--config.eval.max_frames=2", "--config.eval.novel_views=0", "--config.eval.basis_images=false",
           "--config.eval_every=6"]
    first = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1500)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "preparing" in first.stderr
    prepared = workdir / "prepared_data" / "talk_128px"
    meta = json.loads((prepared / "prepare.json").read_text())
    assert meta["counts"]["kept"] >= 0.99 * meta["counts"]["decoded"]
    steps = [json.loads(x)["step"] for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))

    # A rerun reuses the preparation (and resumes at the end: nothing to train).
    again = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "preparing" not in again.stderr, again.stderr[-2000:]

    evaluated = subprocess.run([sys.executable, "-m", "hfagp.eval", str(workdir), "--quiet", "--batch-size", "2"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    summary = json.loads((workdir / "eval" / "step_6" / "summary.json").read_text())
    same = summary["metrics"]["hfagp"]["same_view"]
    assert same["count"] == len(json.loads((prepared / "split.json").read_text())["test"])
    assert np.isfinite(same["psnr"]) and 0 < same["ssim"] <= 1
    assert summary["novel_views"]["available"] is False    # a real video has no ground-truth novel views
