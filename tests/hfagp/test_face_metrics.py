"""Face-fidelity metrics (`hfagp.metrics`) on a tiny head world rendered here: six frames at 64x64 with the jaw
opening from 0 to 1 and blinks, checked on constructed cases (the truth against itself, blurred, the mean frame,
mouths swapped between frames) relative to the truth's own numbers, never against absolute levels."""

import math

import numpy as np
import pytest

from avatar_data import cameras
from avatar_data.worlds.heads import model
from avatar_data.worlds.heads import params as P
from avatar_data.worlds.heads import render, world
from hfagp import metrics

RES, SEED = 64, 4
JAW = np.array([0.6, 0.2, 0.0, 1.0, 0.8, 0.4])  # unrelated to itself shifted by one frame
BLINK = np.array([0.0, 1.0, 0.3, 0.0, 0.8, 0.0])


@pytest.fixture(scope="module")
def scene():
    ident = P.sample_identity(SEED).vector
    expr = np.stack([P.expression(jaw_open=j, blink_l=b, blink_r=b) for j, b in zip(JAW, BLINK)])
    pose = np.stack([P.pose(yaw=0.05 * np.sin(i), pitch=0.02 * np.cos(i)) for i in range(len(JAW))])
    labels = np.repeat(cameras.frontal_camera()[None], len(JAW), axis=0)
    out = render.render(ident, expr, pose, labels, resolution=RES)
    images = out["rgb"].astype(np.float64) / 127.5 - 1.0
    points = world.face_points_px(ident, expr, pose, labels, RES)
    return images, out["part"], points


def _blur(images):
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    return sum(padded[:, i:i + RES, j:j + RES] for i in range(3) for j in range(3)) / 9.0


def test_part_labels_hold_every_face_part(scene):
    _, parts, points = scene
    present = set(np.unique(parts).tolist())
    for name in ("background", "skin", "eyes", "eyelids", "brows", "lips", "nose", "hair", "neck", "shirt"):
        assert model.PART_NAMES.index(name) in present, name
    # The open mouths show their interior, the closed one none; the eye points lie on the eyes or lids.
    interior = (parts == model.PART["mouth_interior"]).sum(axis=(1, 2))
    assert interior[JAW == 1.0][0] > interior[JAW == 0.0][0]
    for eye in (1, 2):
        col, row = np.round(points[:, eye]).astype(int).T
        hit = parts[np.arange(len(JAW)), row, col]
        assert np.all(np.isin(hit, [model.PART["eyes"], model.PART["eyelids"]])), hit


def test_regions_nest(scene):
    _, parts, _ = scene
    regions = metrics.face_regions(parts, model.PART_NAMES)
    assert all(r.shape == parts.shape for r in regions.values())
    assert np.all(regions["face"] >= regions["eyes"]) and np.all(regions["face"] >= regions["mouth"])
    assert not np.any(regions["face"] & (parts == model.PART["background"]) &
                      ~metrics.dilate(parts != model.PART["background"], metrics.REGION_DILATION))


def test_the_truth_against_itself(scene):
    images, parts, points = scene
    face = metrics.face_regions(parts, model.PART_NAMES)["face"]
    assert np.all(np.isinf(metrics.masked_psnr(images, images, face)))
    np.testing.assert_allclose(metrics.masked_ssim(images, images, face), 1.0, atol=1e-6)
    np.testing.assert_allclose(metrics.detail_ratio(images, images, face), 1.0)
    score = metrics.mouth_opening_score(images, points)
    assert metrics.r_squared(score, JAW) == metrics.r_squared(metrics.mouth_opening_score(images, points), JAW)


def test_a_blurred_face_loses_detail_and_psnr(scene):
    images, parts, _ = scene
    face = metrics.face_regions(parts, model.PART_NAMES)["face"]
    blurred = _blur(images)
    assert np.all(metrics.detail_ratio(blurred, images, face) < 0.6)
    assert np.all(np.isfinite(metrics.masked_psnr(blurred, images, face)))
    # The face loses more than the whole frame does: the metric sees what whole-frame PSNR dilutes.
    whole = np.ones(parts.shape, bool)
    assert np.all(metrics.masked_psnr(blurred, images, face) < metrics.masked_psnr(blurred, images, whole))


def test_the_mean_frame_reads_back_nothing(scene):
    images, _, points = scene
    mean = np.repeat(images.mean(axis=0, keepdims=True), len(images), axis=0)
    assert metrics.r_squared(metrics.mouth_opening_score(mean, points[:1].repeat(len(images), 0)), JAW) == 0.0
    assert metrics.r_squared(metrics.eye_opening_score(mean, points[:1].repeat(len(images), 0)), BLINK) == 0.0


def test_swapped_mouths_read_back_less_than_the_truth(scene):
    images, _, points = scene
    ceiling = metrics.r_squared(metrics.mouth_opening_score(images, points), JAW)
    # Each frame gets the mouth box of the next frame (the jaw values are unrelated after the shift).
    d = np.linalg.norm(points[:, 1] - points[:, 2], axis=-1)
    box = metrics.box_mask(images.shape[:3], points[:, 0], d, metrics.MOUTH_BOX)
    union = box.any(axis=0)
    swapped = images.copy()
    swapped[:, union] = np.roll(images, -1, axis=0)[:, union]
    assert metrics.r_squared(metrics.mouth_opening_score(swapped, points), JAW) < ceiling - 0.2
    eyes = metrics.eye_opening_score(images, points)
    assert metrics.r_squared(eyes, BLINK) > metrics.r_squared(np.roll(eyes, -1), BLINK)


def test_r_squared_edge_cases():
    assert metrics.r_squared([1.0, 2.0, 3.0], [2.0, 4.0, 6.5]) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 6.5])[0, 1] ** 2)
    assert metrics.r_squared([1.0, 1.0], [0.0, 1.0]) == 0.0
    assert math.isnan(metrics.r_squared([1.0, 2.0], [1.0, 1.0]))
    assert math.isnan(metrics.masked_psnr(np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4), bool))[0])
