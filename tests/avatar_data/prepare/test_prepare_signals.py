"""Smoothing, expression codes and video/audio I/O of avatar_data.prepare (no MediaPipe)."""

import os

import numpy as np
import pytest

from avatar_data.prepare import canonical_face, expression, smoothing, video

from prepare_fixtures import face_picture, write_video


# ---------------------------------------------------------------------------------------------------
# Savitzky-Golay.


def test_savgol_keeps_polynomials_up_to_its_order_and_reduces_noise():
    t = np.arange(40, dtype=np.float64)
    quad = 0.02 * t ** 2 - t + 3.0
    np.testing.assert_allclose(smoothing.savgol(quad, 7, 2), quad, atol=1e-9)   # ends included
    noise = np.random.default_rng(0).standard_normal(4000)
    assert smoothing.savgol(noise, 7, 2).std() < 0.75 * noise.std()
    assert not np.allclose(smoothing.savgol(t ** 3, 7, 2), t ** 3)


def test_smoothing_runs_separately_and_short_runs():
    values = np.arange(12, dtype=np.float64) ** 2
    valid = np.array([1, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1], bool)
    out = smoothing.smooth_tracks(values, valid, 7, 2)
    np.testing.assert_allclose(out, values, atol=1e-9)    # each run is a quadratic: unchanged
    assert smoothing.runs(valid) == [(0, 5), (6, 8), (9, 12)]
    assert smoothing.window_frames(0.28, 25) == 7 and smoothing.window_frames(0.28, 30) == 9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_savgol_equals_the_batch_filter(seed):
    rng = np.random.default_rng(seed)
    n = 60
    values = rng.standard_normal((n, 5, 3))
    valid = rng.random(n) > 0.15
    valid[20:23] = True
    expected = smoothing.smooth_tracks(values, valid, 7, 2)
    stream = smoothing.StreamingSavgol(7, 2)
    got, order = {}, []
    for t in range(n):
        ready = stream.push(t, values[t], payload=t) if valid[t] else stream.end_run()
        for key, v, payload in ready:
            assert payload == key
            got[key] = v
            order.append(key)
    for key, v, _ in stream.end_run():
        got[key] = v
        order.append(key)
    assert order == sorted(order) == list(np.flatnonzero(valid))
    np.testing.assert_allclose(np.stack([got[t] for t in order]), expected[valid], atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# Expressions.


def _random_similarity(rng):
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return rng.uniform(5, 20), q, rng.uniform(-100, 100, 3)


def test_normalise_pose_removes_a_similarity():
    rng = np.random.default_rng(0)
    shapes = []
    for _ in range(4):
        s, r, t = _random_similarity(rng)
        shapes.append(s * canonical_face.VERTICES @ r.T + t)
    out = expression.normalise_pose(np.stack(shapes))
    np.testing.assert_allclose(out, np.broadcast_to(canonical_face.VERTICES, out.shape), atol=1e-9)


def test_pca_codes_recover_a_low_dimensional_expression():
    rng = np.random.default_rng(1)
    directions = np.linalg.qr(rng.standard_normal((468 * 3, 3)))[0].T.reshape(3, 468, 3)
    codes = rng.standard_normal((80, 3)) * np.array([2.0, 1.0, 0.5])
    shapes = canonical_face.VERTICES + np.einsum("tk,kpd->tpd", codes, directions)
    pca = expression.fit_pca(shapes[:60], 76)
    assert pca.basis.shape[0] == 3 and pca.explained_variance_ratio.sum() == pytest.approx(1.0)
    out = expression.project(shapes, pca)
    assert out.shape == (80, 76) and out.dtype == np.float32 and np.all(out[:, 3:] == 0)
    # The three codes span the same space as the truth (up to rotation and the training mean).
    fit, *_ = np.linalg.lstsq(np.c_[codes, np.ones(80)], out[:, :3], rcond=None)
    np.testing.assert_allclose(np.c_[codes, np.ones(80)] @ fit, out[:, :3], atol=1e-4)
    again = expression.fit_pca(shapes[:60], 76)
    np.testing.assert_array_equal(again.basis, pca.basis)   # deterministic signs


def test_pca_with_fewer_frames_than_dims_pads_with_zeros():
    shapes = canonical_face.VERTICES + np.random.default_rng(2).normal(0, 0.1, (5, 468, 3))
    pca = expression.fit_pca(shapes, 76)
    assert pca.basis.shape[0] == 4           # 5 centred frames span 4 directions
    assert np.all(expression.project(shapes, pca)[:, 4:] == 0)


# ---------------------------------------------------------------------------------------------------
# ffmpeg.


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("io") / "small.mp4")
    frames = [np.roll(face_picture(), 3 * i, axis=1) for i in range(30)]
    return write_video(path, frames, fps=30.0, audio_seconds=1.2)


def test_probe_decode_and_audio(small_video, tmp_path):
    info = video.probe(small_video)
    assert info.size == (320, 240) and info.fps == pytest.approx(30.0) and info.audio_codec == "aac"
    assert info.duration == pytest.approx(1.0, abs=0.1)
    frames = list(video.decode_frames(small_video, 30.0, info.size))
    assert len(frames) == 30 and frames[0].shape == (240, 320, 3) and frames[0].dtype == np.uint8
    assert len(list(video.decode_frames(small_video, 15.0, info.size))) == 15
    wav = str(tmp_path / "a.wav")
    video.extract_audio(small_video, wav)
    from avatar_data.audio_features import read_wav

    samples, rate = read_wav(wav)
    assert rate == 16000 and len(samples) / rate == pytest.approx(1.0, abs=0.1)


def test_is_video_file(small_video, tmp_path):
    from PIL import Image

    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    still = tmp_path / "still.png"
    Image.fromarray(face_picture()).save(still)
    assert video.is_video_file(small_video)
    assert not video.is_video_file(text) and not video.is_video_file(still)
    assert not video.is_video_file(tmp_path / "missing.mp4") and not video.is_video_file(tmp_path)
    with pytest.raises(video.VideoError, match="not a video"):
        video.probe(str(text))
    assert os.path.exists(small_video)
