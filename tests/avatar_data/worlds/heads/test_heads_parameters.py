"""Parameters and speech of the head world (numpy only, no rendering)."""

import numpy as np
import pytest

from avatar_data.worlds.heads import params as P
from avatar_data.worlds.heads import speech, world


def test_identities_are_deterministic_and_varied():
    a, b = P.sample_identity(7), P.sample_identity(7)
    np.testing.assert_array_equal(a.vector, b.vector)
    assert a.vector.shape == (P.IDENTITY_DIM,) and a.vector.dtype == np.float32
    assert not np.array_equal(a.vector, P.sample_identity(8).vector)
    people = [P.sample_identity(s) for s in range(60)]
    assert {p.hair_style for p in people} == set(P.HAIR_STYLES)
    for p in people:
        for name in P.SHAPE_NAMES:
            lo, hi = P.SHAPE_RANGES[name]
            assert lo <= p[name][0] <= hi
        for name in ("skin_rgb", "hair_rgb", "iris_rgb", "shirt_rgb", "background_rgb"):
            assert np.all((p[name] >= 0) & (p[name] <= 1))
    skin = np.array([p["skin_rgb"].mean() for p in people])
    assert skin.max() - skin.min() > 0.4  # light and dark skin tones


def test_expression_helpers():
    e = P.expression(jaw_open=0.5, gaze_x=-1.0)
    assert e[P.EXPRESSION_INDEX["jaw_open"]] == 0.5 and e.sum() == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="unknown expression parameters"):
        P.expression(grin=1.0)
    for name, (lo, hi) in P.EXPRESSION_RANGES.items():
        assert lo <= 0.0 <= hi, name  # neutral is inside every range
    random = P.random_expressions(np.random.default_rng(0), 500)
    np.testing.assert_array_equal(P.clip_expression(random), random)
    assert (random == 0).mean() > 0.2 and (random != 0).mean() > 0.4


def test_rotation_signs():
    forward = np.array([0.0, 0.0, 1.0])
    assert (P.rotation_matrix(0.3, 0, 0) @ forward)[0] > 0     # yaw: face towards +x
    assert (P.rotation_matrix(0, 0.3, 0) @ forward)[1] < 0     # pitch: nod down
    up = np.array([0.0, 1.0, 0.0])
    assert (P.rotation_matrix(0, 0, 0.3) @ up)[0] < 0          # roll: top towards -x
    r = P.rotation_matrix(0.2, -0.1, 0.05)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def test_synthetic_speech_is_deterministic_and_syllabic():
    a = speech.synthetic_speech(P.rng(3, "speech"), 8.0)
    b = speech.synthetic_speech(P.rng(3, "speech"), 8.0)
    np.testing.assert_array_equal(a["waveform"], b["waveform"])
    assert len(a["waveform"]) == 8 * speech.SAMPLE_RATE and np.abs(a["waveform"]).max() <= 0.8 + 1e-9
    syl = a["syllables"]
    speaking = sum(e - s for s, e, _ in syl)
    assert 4.0 <= len(syl) / speaking <= 6.5          # ~4-5 syllables per second of speech
    assert 0.1 < 1.0 - speaking / 8.0 < 0.6           # with pauses
    c = speech.synthetic_speech(P.rng(4, "speech"), 8.0)
    assert not np.array_equal(a["waveform"], c["waveform"])


def test_mouth_follows_the_speech_envelope():
    sp = speech.synthetic_speech(P.rng(5, "speech"), 8.0)
    frames = 200
    loud = speech.mouth_signals(sp["waveform"], sp["sample_rate"], frames, 25.0)["loudness"]
    inside = np.zeros(frames, bool)
    for s, e, _ in sp["syllables"]:
        inside[int(np.ceil((s + 0.06) * 25)):int(np.floor((e - 0.02) * 25)) + 1] = True
    silent = np.ones(frames, bool)
    for s, e, _ in sp["syllables"]:
        silent[max(int(s * 25) - 2, 0):int(e * 25) + 3] = False
    assert inside.sum() > 20 and silent.sum() > 10
    assert loud[inside].mean() > 0.4 and loud[silent].max() < 0.1
    video = world.video_parameters(5, frames, 0)
    jaw = video["expression"][:, P.EXPRESSION_INDEX["jaw_open"]]
    assert np.corrcoef(jaw, loud)[0, 1] > 0.9 and jaw.max() <= world.JAW_TRAIN_MAX + 1e-6


def test_video_motion_ranges():
    video = world.video_parameters(2, 400, 40)
    pose = video["pose"]
    assert 8.0 <= np.degrees(np.abs(pose[:, 0]).max()) <= 15.0
    assert 3.0 <= np.degrees(np.abs(pose[:, 1]).max()) <= 8.0
    blink = video["expression"][:, P.EXPRESSION_INDEX["blink_l"]]
    closed = np.flatnonzero((blink[1:] > 0.5) & (blink[:-1] <= 0.5))
    assert 3 <= len(closed) <= 8 and np.diff(closed).min() >= 2.4 * 25  # every ~3-5 s over 16 s
    assert np.abs(np.diff(pose, axis=0)).max() < 0.02  # smooth


def test_resample_keeps_a_tone():
    rate, tone = 22050, 440.0
    t = np.arange(rate) / rate
    out = speech.resample(np.sin(2 * np.pi * tone * t), rate, 16000)
    assert len(out) == 16000
    np.testing.assert_allclose(out, np.sin(2 * np.pi * tone * np.arange(16000) / 16000), atol=1e-6)
