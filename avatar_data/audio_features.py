"""Speech features per video frame without any model download: MFCC windows in AD-NeRF's `aud.npy` layout.

AD-NeRF (and HFA-GP's audio encoder) read DeepSpeech features [T, 16, 29]: for video frame t, 16
consecutive 20 ms feature steps (50 Hz) centred on the frame's time, 29 values per step. DeepSpeech
needs a TensorFlow-1 model that no longer installs, so this module computes a drop-in of the same
shape from the waveform with plain numpy:

* step j of frame t is centred at ``t / fps + (j - 7.5) * 0.02`` seconds (``STEP_SECONDS``), so the 16
  steps cover the 320 ms around the frame, as DeepSpeech's windows do;
* each step is a 25 ms Hann window of the pre-emphasised (0.97) signal, zero outside the recording,
  its power spectrum on ``n_fft = next power of two >= the window`` bins, 40 HTK-mel filters from 20 Hz
  to min(8 kHz, Nyquist), ``log(mel + 1e-10)``, and the orthonormal DCT-II's first 29 coefficients;
* with ``normalize=True`` (the default) each coefficient is standardised over the clip (cepstral mean
  and variance normalisation), which removes the recording's channel and loudness.

These are MFCCs, not DeepSpeech character logits: an encoder trained on one kind of feature does not
accept the other. Everything is deterministic (no randomness, float64 arithmetic, float32 output).

librosa (0.11) is not used. Its `feature.mfcc` cannot give these features: it frames on a regular hop from
t = 0 (the steps here are centred on frame times), with a periodic Hann window and a dB log (0.037 max abs
difference in the cepstra at shared centres). Its `filters.mel(htk=True, norm=None, dtype=float64)` is
bit-identical to `mel_filterbank` but 3.8x slower (185 vs 49 us at 16 kHz / 512 bins), costs 2.2 s of import
and brings 12 packages (numba, scikit-learn, soundfile, ...) into a module that needs only numpy.
"""

from __future__ import annotations

import wave
from typing import Optional

import numpy as np

NUM_STEPS = 16
NUM_COEFFICIENTS = 29
FEATURE_SHAPE = (NUM_STEPS, NUM_COEFFICIENTS)
STEP_SECONDS = 0.02          # 50 Hz feature steps, as DeepSpeech's
WINDOW_SECONDS = 0.025
NUM_MEL_FILTERS = 40
MEL_LOW_HZ = 20.0
MEL_HIGH_HZ = 8000.0
PRE_EMPHASIS = 0.97
LOG_FLOOR = 1e-10


def hz_to_mel(hz):
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, num_filters: int = NUM_MEL_FILTERS,
                   low_hz: float = MEL_LOW_HZ, high_hz: float = MEL_HIGH_HZ) -> np.ndarray:
    """Triangular HTK-mel filters [num_filters, n_fft // 2 + 1] (float64), peaks of height 1."""
    high_hz = min(high_hz, sample_rate / 2.0)
    if not 0 <= low_hz < high_hz:
        raise ValueError(f"mel filterbank needs 0 <= low < high, got {low_hz} and {high_hz} Hz")
    edges = mel_to_hz(np.linspace(hz_to_mel(low_hz), hz_to_mel(high_hz), num_filters + 2))
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None] - lower) / np.maximum(centre - lower, 1e-12)
    falling = (upper - freqs[None]) / np.maximum(upper - centre, 1e-12)
    return np.clip(np.minimum(rising, falling), 0.0, None)


def dct_matrix(num_coefficients: int, num_inputs: int) -> np.ndarray:
    """Orthonormal DCT-II rows [num_coefficients, num_inputs] (scipy's dct(type=2, norm='ortho'))."""
    n = np.arange(num_inputs)
    k = np.arange(num_coefficients)[:, None]
    m = np.cos(np.pi * k * (2 * n[None] + 1) / (2 * num_inputs)) * np.sqrt(2.0 / num_inputs)
    m[0] /= np.sqrt(2.0)
    return m


def step_times(num_frames: int, fps: float) -> np.ndarray:
    """Centres in seconds [num_frames, 16] of each frame's feature steps."""
    if num_frames < 0 or not fps > 0:
        raise ValueError(f"need num_frames >= 0 and fps > 0, got {num_frames} and {fps}")
    offsets = (np.arange(NUM_STEPS) - (NUM_STEPS - 1) / 2.0) * STEP_SECONDS
    return np.arange(num_frames)[:, None] / float(fps) + offsets[None]


def mfcc_at(waveform: np.ndarray, sample_rate: int, times: np.ndarray) -> np.ndarray:
    """MFCCs [..., 29] (float64) of 25 ms windows centred at `times` [...] seconds (zeros beyond the ends)."""
    x = np.asarray(waveform, np.float64)
    if x.ndim != 1:
        raise ValueError(f"waveform must be mono [N], got shape {x.shape}")
    if sample_rate < 8000:
        raise ValueError(f"sample rate {sample_rate} Hz is too low for speech features (need >= 8000)")
    x = np.concatenate([x[:1], x[1:] - PRE_EMPHASIS * x[:-1]]) if len(x) else x
    win = int(round(WINDOW_SECONDS * sample_rate))
    n_fft = 1 << (win - 1).bit_length()
    times = np.asarray(times, np.float64)
    starts = np.round(times.reshape(-1) * sample_rate).astype(np.int64) - win // 2
    idx = starts[:, None] + np.arange(win)[None]
    padded = np.concatenate([x, np.zeros(1)])          # index len(x) reads a zero
    frames = padded[np.where((idx >= 0) & (idx < len(x)), idx, len(x))]
    frames = frames * np.hanning(win + 2)[1:-1][None]  # periodic-free Hann without zero end points
    power = np.abs(np.fft.rfft(frames, n=n_fft, axis=-1)) ** 2 / n_fft
    mel = power @ mel_filterbank(sample_rate, n_fft).T
    coeffs = np.log(mel + LOG_FLOOR) @ dct_matrix(NUM_COEFFICIENTS, NUM_MEL_FILTERS).T
    return coeffs.reshape(times.shape + (NUM_COEFFICIENTS,))


def frame_features(waveform: np.ndarray, sample_rate: int, num_frames: int, fps: float = 25.0,
                   normalize: bool = True) -> np.ndarray:
    """Speech features per video frame: float32 [num_frames, 16, 29] (AD-NeRF's `aud.npy` layout).

    waveform: mono samples [N] (any scale; float or int), time 0 = the first video frame.
    normalize: standardise each coefficient over the clip (zero mean, unit variance).
    """
    if num_frames < 1:
        raise ValueError(f"need at least one video frame, got {num_frames}")
    feats = mfcc_at(waveform, sample_rate, step_times(num_frames, fps))
    if normalize:
        flat = feats.reshape(-1, NUM_COEFFICIENTS)
        std = flat.std(axis=0)
        feats = (feats - flat.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)
    return feats.astype(np.float32)


def read_wav(path) -> tuple[np.ndarray, int]:
    """A PCM .wav file (8/16/32-bit integer, any channel count) -> (mono float64 [N] in [-1, 1], rate)."""
    try:
        with wave.open(str(path), "rb") as f:
            channels, width, rate, n = f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()
            raw = f.readframes(n)
    except (wave.Error, EOFError) as e:
        raise ValueError(f"{path}: not a PCM wav file ({e})") from None
    dtypes = {1: np.uint8, 2: np.int16, 4: np.int32}
    if width not in dtypes:
        raise ValueError(f"{path}: {8 * width}-bit samples are not supported (8, 16 or 32-bit PCM)")
    data = np.frombuffer(raw, dtypes[width]).astype(np.float64)
    if width == 1:
        data = data - 128.0
    data = data / float(2 ** (8 * width - 1))
    return data.reshape(-1, channels).mean(axis=1), rate


def write_wav(path, waveform: np.ndarray, sample_rate: int) -> None:
    """Mono float samples in [-1, 1] -> 16-bit PCM .wav (clipped)."""
    pcm = np.round(np.clip(np.asarray(waveform, np.float64), -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(sample_rate))
        f.writeframes(pcm.tobytes())


def wav_features(path, num_frames: Optional[int] = None, fps: float = 25.0, normalize: bool = True) -> np.ndarray:
    """`frame_features` of a wav file; num_frames defaults to the recording's length at `fps`."""
    waveform, rate = read_wav(path)
    if num_frames is None:
        num_frames = max(1, int(np.floor(len(waveform) / rate * fps)))
    return frame_features(waveform, rate, num_frames, fps, normalize)


__all__ = ["FEATURE_SHAPE", "frame_features", "mel_filterbank", "mfcc_at", "read_wav", "step_times",
           "wav_features", "write_wav"]
