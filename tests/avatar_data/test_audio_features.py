"""Speech features in AD-NeRF's aud.npy layout (avatar_data.audio_features)."""

import numpy as np
import pytest

from avatar_data import audio_features as af

RATE = 16000


def _tone(freq_hz, seconds, rate=RATE):
    t = np.arange(int(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * freq_hz * t)


def test_shape_dtype_and_normalisation():
    feats = af.frame_features(_tone(440, 2.0) * np.linspace(0, 1, 2 * RATE), RATE, num_frames=50)
    assert feats.shape == (50, 16, 29) and feats.dtype == np.float32
    flat = feats.reshape(-1, 29).astype(np.float64)
    np.testing.assert_allclose(flat.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(flat.std(0), 1.0, atol=1e-4)


def test_steps_are_centred_on_the_frame_time():
    times = af.step_times(3, 25.0)
    np.testing.assert_allclose(times[1], 0.04 + (np.arange(16) - 7.5) * 0.02)
    # A recording delayed by exactly one video frame gives the same features one frame later.
    x = np.random.default_rng(0).standard_normal(RATE)
    delayed = np.concatenate([np.zeros(RATE // 25), x])
    a = af.frame_features(x, RATE, 20, normalize=False)
    b = af.frame_features(delayed, RATE, 21, normalize=False)
    np.testing.assert_allclose(b[10:20], a[9:19], rtol=1e-5, atol=1e-4)


def test_a_tone_excites_the_mel_filter_around_its_frequency():
    n_fft = 512
    bank = af.mel_filterbank(RATE, n_fft)
    spectrum = np.abs(np.fft.rfft(_tone(1000, n_fft / RATE)[:n_fft] * np.hanning(n_fft))) ** 2
    peak = int(np.argmax(bank @ spectrum))
    centres = af.mel_to_hz(np.linspace(af.hz_to_mel(20), af.hz_to_mel(8000), 42))[1:-1]
    assert abs(centres[peak] - 1000) < 120
    # Different tones give different cepstra.
    low = af.frame_features(_tone(300, 1.0), RATE, 10, normalize=False)
    high = af.frame_features(_tone(3000, 1.0), RATE, 10, normalize=False)
    assert np.abs(low[5] - high[5]).mean() > 1.0


def test_dct_is_orthonormal():
    m = af.dct_matrix(40, 40)
    np.testing.assert_allclose(m @ m.T, np.eye(40), atol=1e-12)


def test_silence_and_beyond_the_recording_are_finite():
    feats = af.frame_features(np.zeros(RATE // 10), RATE, 10)
    assert np.all(np.isfinite(feats))


def test_wav_round_trip(tmp_path):
    x = _tone(220, 0.5)
    af.write_wav(tmp_path / "a.wav", x, RATE)
    y, rate = af.read_wav(tmp_path / "a.wav")
    assert rate == RATE and len(y) == len(x)
    np.testing.assert_allclose(y, x, atol=1.0 / 32767)
    assert af.wav_features(tmp_path / "a.wav").shape == (12, 16, 29)


@pytest.mark.parametrize("bad", [np.zeros((2, 10)), None])
def test_bad_input_is_refused(bad, tmp_path):
    if bad is None:
        (tmp_path / "x.wav").write_bytes(b"not a wav")
        with pytest.raises(ValueError, match="not a PCM wav"):
            af.read_wav(tmp_path / "x.wav")
    else:
        with pytest.raises(ValueError, match="mono"):
            af.frame_features(bad, RATE, 5)
