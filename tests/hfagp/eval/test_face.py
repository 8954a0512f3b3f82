"""What `hfagp.eval` scores of the face (`hfagp.metrics.face_scores` / `readback` on the annotations of
`hfagp.datasets.load_face_truth`) and its face crops (`hfagp.eval.face`), on a tiny head world made here, without
a trained run: the world's own frames as the render, a blurred copy, and a world without part labels."""

import numpy as np
import pytest

from hfagp import metrics
from hfagp.datasets import load_face_truth
from hfagp.eval import face
from shared_fixtures import TINY_HEAD_WORLD

RES, FRAMES = TINY_HEAD_WORLD["resolution"], TINY_HEAD_WORLD["num_frames"]


@pytest.fixture(scope="module")
def made(tiny_head_world):
    from avatar_data.formats.common import clip_arrays
    from avatar_data.formats.eg3d import read_eg3d_folder

    out = tiny_head_world
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


def test_training_frames_carry_face_points_whose_boxes_hold_the_mouth_and_eyes(made):
    """A head world's frames load with their face points (`hfagp.datasets.load_world`), and the face-weighted
    loss's boxes about them hold nearly all of the lips, mouth and eye pixels and few others."""
    from hfagp.datasets import load_world
    from hfagp.train.losses import face_weights

    out, images, truth = made
    train, test, res, keys = load_world(out)
    assert "face_points" in keys and res == RES
    for split in (train, test):
        for i in range(len(split)):
            frame = split[i]
            np.testing.assert_array_equal(frame["face_points"], truth.face_points[frame["frame_index"]])
    inside = np.asarray(face_weights(truth.face_points, RES, 1.0)) > 1.0
    features = metrics.part_mask(truth.part_labels, truth.part_names, ("lips", "mouth_interior", "eyes", "eyelids"))
    assert inside[features].mean() > 0.9
    assert inside.mean() < 0.15                                         # a small part of the frame


def test_prepared_landmarks_give_the_same_face_points_order():
    """The tracked mesh's face points: the mouth between the inner lips, the person's left eye on the image's
    right."""
    from avatar_data.prepare.alignment import FACE_POINT_MESH_IDS, face_points

    landmarks = np.zeros((1, 478, 3))
    landmarks[0, [13, 14], :2] = [[30, 40], [30, 44]]
    landmarks[0, [362, 263], :2] = [[36, 24], [44, 24]]
    landmarks[0, [33, 133], :2] = [[16, 24], [24, 24]]
    np.testing.assert_allclose(face_points(landmarks)[0], [[30, 42], [40, 24], [20, 24]])
    assert len(FACE_POINT_MESH_IDS) == 3
