"""What `hfagp.eval` scores of the face (`hfagp.metrics.face_scores` / `readback` on the annotations of
`hfagp.datasets.load_face_truth`) and its face crops (`hfagp.eval.face`), on a tiny head world made here, without
a trained run: the world's own frames as the render, a blurred copy, and a world without part labels."""

import numpy as np
import pytest

from avatar_data.worlds.heads import world as heads_world
from hfagp import metrics
from hfagp.datasets import load_face_truth
from hfagp.eval import face

RES, FRAMES = 48, 6


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    from avatar_data.formats.common import clip_arrays
    from avatar_data.formats.eg3d import read_eg3d_folder

    out = tmp_path_factory.mktemp("faces") / "w"
    heads_world.make_head_world(str(out), seed=3, num_frames=FRAMES, num_test_frames=2, resolution=RES,
                                novel_views=[(20.0, 0.0)], progress=False)
    images = clip_arrays(read_eg3d_folder(out / "frames"))["image"] / 127.5 - 1.0
    truth, reason = load_face_truth(out)
    assert reason is None
    return out, images, truth


def test_the_truth_scores_as_itself(made):
    _, images, truth = made
    s = metrics.face_scores(images, images, truth.part_labels, truth.face_points, truth.part_names)
    assert set(s) == set(metrics.FACE_METRICS) and all(v.shape == (FRAMES,) for v in s.values())
    assert np.all(np.isinf(s["face_psnr"])) and np.allclose(s["face_ssim"], 1.0) and np.allclose(s["detail_ratio"], 1)
    r = metrics.readback(images, images, truth.face_points, truth.truth)
    assert r["frames"] == FRAMES and r["jaw_open_r2"] == r["jaw_open_r2_ceiling"]
    parts, points = truth.novel(np.array([FRAMES - 2, FRAMES - 1]), 0)
    assert parts.shape == (2, RES, RES) and points.shape == (2, 3, 2)


def test_blur_lowers_the_detail_ratio(made):
    _, images, truth = made
    blurred = 0.25 * (images + np.roll(images, 1, 1) + np.roll(images, 1, 2) + np.roll(images, (1, 1), (1, 2)))
    s = metrics.face_scores(blurred, images, truth.part_labels, truth.face_points, truth.part_names)
    assert np.all(s["detail_ratio"] < 0.8) and np.all(np.isfinite(s["face_psnr"]))


def test_face_crops(made, tmp_path):
    from PIL import Image

    _, images, truth = made
    face.save_face_crops(tmp_path / face.CROPS_FILE, images, [images], truth.face_points, truth.truth["jaw_open"])
    with Image.open(tmp_path / face.CROPS_FILE) as im:
        assert im.size == (FRAMES * face.CROP_SIZE, 2 * face.CROP_SIZE)


def test_worlds_without_labels_say_why(tmp_path):
    assert load_face_truth(None) == (None, "not a world with ground truth: no part labels")
    (tmp_path / "world.json").write_text('{"format": "hfagp-synthetic-world", "version": 1}')
    truth, reason = load_face_truth(tmp_path)
    assert truth is None and "only head worlds" in reason
