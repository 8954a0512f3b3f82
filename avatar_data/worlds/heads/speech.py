"""Speech for the talking-head world (numpy): a synthetic syllable track, espeak-ng, or a wav file, and the
per-video-frame mouth signals derived from the waveform.

`synthetic_speech` makes an actual waveform: phrases of words of one to four syllables (about 4.5 syllables
per second while speaking) separated by short gaps and longer pauses. Each syllable is a voiced buzz (harmonics
of a gliding pitch) shaped by three formant-like resonance peaks at its vowel's F1/F2/F3, preceded by a short
noise burst (a consonant), under a raised-cosine amplitude envelope.

`mouth_signals` reads any waveform the same way, so the mouth moves with whatever is said: the frame's RMS
loudness (normalised by a high percentile of the clip, smoothed over about two frames and lagged by
`LAG_SECONDS`) and the spectral centroid of voiced frames (low = rounded vowels such as /u/ -> pucker, high =
spread vowels such as /i/ -> smile).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np

from avatar_data import audio_features

SAMPLE_RATE = 16000
LAG_SECONDS = 0.04
ESPEAK_BINARY = "espeak-ng"

# (F1, F2, F3) in Hz, openness in [0, 1] and roundness in [-1, 1] (-1 spread, 1 rounded) of a few vowels.
_VOWELS = (
    ((730.0, 1090.0, 2440.0), 1.0, 0.0),    # a
    ((530.0, 1840.0, 2480.0), 0.65, -0.6),  # e
    ((270.0, 2290.0, 3010.0), 0.25, -1.0),  # i
    ((570.0, 840.0, 2410.0), 0.7, 0.8),     # o
    ((300.0, 870.0, 2240.0), 0.3, 1.0),     # u
    ((640.0, 1190.0, 2390.0), 0.8, 0.1),    # schwa-like open
)

_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you have a moment to talk.",
    "We walked along the river until the sun went down.",
    "Reading a good book on a rainy day is a simple pleasure.",
    "Could you pass the salt and the pepper, please?",
    "Tomorrow morning we will visit the old museum in town.",
    "She sells sea shells by the sea shore every summer.",
    "How much wood would a woodchuck chuck if it could?",
)


class SpeechError(ValueError):
    """A speech source that cannot be used (missing binary, unreadable file)."""


def synthetic_speech(seed_rng: np.random.Generator, duration_s: float,
                     sample_rate: int = SAMPLE_RATE) -> dict:
    """A deterministic syllable track of `duration_s` seconds.

    Returns {'waveform': float64 [N] in [-1, 1], 'sample_rate': int, 'syllables': [(start_s, end_s, vowel
    index)], 'f0': float (mean pitch, Hz)}.
    """
    n = round(duration_s * sample_rate)
    gen = seed_rng
    f0 = gen.uniform(100.0, 210.0)
    syllables, t = [], gen.uniform(0.1, 0.4)
    while t < duration_s:
        for _ in range(int(gen.integers(2, 7))):           # words in a phrase
            for _ in range(int(gen.integers(1, 5))):       # syllables in a word
                length = gen.uniform(0.14, 0.24)
                syllables.append((t, t + length, int(gen.integers(len(_VOWELS))), gen.uniform(0.55, 1.0)))
                t += length + gen.uniform(0.0, 0.03)
            t += gen.uniform(0.04, 0.12)
        t += gen.uniform(0.3, 0.8)                          # pause between phrases

    time = np.arange(n) / sample_rate
    envelope = np.zeros(n)
    formants = np.zeros((n, 3))
    weight = np.full(n, 1e-6)
    burst = np.zeros(n)
    for start, end, vowel, peak in syllables:
        i0, i1 = int(start * sample_rate), min(int(end * sample_rate), n)
        if i0 >= n:
            break
        u = (np.arange(i0, i1) - i0) / max(int((end - start) * sample_rate), 1)
        shape = peak * np.sin(np.pi * np.clip(u, 0, 1)) ** 0.7
        envelope[i0:i1] = np.maximum(envelope[i0:i1], shape)
        formants[i0:i1] += np.asarray(_VOWELS[vowel][0]) * (shape[:, None] + 1e-3)
        weight[i0:i1] += shape + 1e-3
        b1 = min(i0 + int(0.025 * sample_rate), n)
        burst[i0:b1] = peak * 0.35 * np.hanning(b1 - i0 + 2)[1:-1]
    formants = np.where(weight[:, None] > 1e-3, formants / weight[:, None], np.array(_VOWELS[5][0]))

    # Voiced source: harmonics of a slowly gliding pitch, weighted by resonance peaks at the formants.
    pitch = f0 * (1.0 + 0.08 * np.sin(2 * np.pi * 0.7 * time + gen.uniform(0, 6.3))
                  + 0.04 * np.sin(2 * np.pi * 2.3 * time + gen.uniform(0, 6.3)))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voiced = np.zeros(n)
    bandwidths = (90.0, 110.0, 160.0)
    for h in range(1, int(4000.0 / f0) + 1):
        freq = h * pitch
        gain = sum(1.0 / (1.0 + ((freq - formants[:, k]) / bandwidths[k]) ** 2) * (0.8 ** k) for k in range(3))
        voiced += gain * np.sin(h * phase) / np.sqrt(h)
    noise = gen.standard_normal(n)
    noise = np.concatenate([noise[:1], np.diff(noise)])     # a crude high-pass: hiss, not rumble
    wave = envelope * voiced + burst * noise
    wave *= 0.8 / max(np.abs(wave).max(), 1e-9)
    return {"waveform": wave, "sample_rate": sample_rate,
            "syllables": [(float(a), float(b), int(v)) for a, b, v, _ in syllables if a < duration_s],
            "f0": float(f0)}


def resample(waveform: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling by FFT (float64 [N] -> [round(N * new_rate / rate)])."""
    x = np.asarray(waveform, np.float64)
    if rate == new_rate or len(x) == 0:
        return x.copy()
    m = round(len(x) * new_rate / rate)
    spec = np.fft.rfft(x)
    keep = min(len(spec), m // 2 + 1)
    out_spec = np.zeros(m // 2 + 1, complex)
    out_spec[:keep] = spec[:keep]
    return np.fft.irfft(out_spec, n=m) * (m / len(x))


def fit_length(waveform: np.ndarray, num_samples: int) -> np.ndarray:
    """Truncate, or pad with silence, to exactly num_samples."""
    x = np.asarray(waveform, np.float64)[:num_samples]
    return np.concatenate([x, np.zeros(num_samples - len(x))])


def espeak_speech(gen: np.random.Generator, duration_s: float, sample_rate: int = SAMPLE_RATE) -> dict:
    """Sentences spoken by the espeak-ng binary until `duration_s` is filled (SpeechError if it is missing)."""
    binary = shutil.which(ESPEAK_BINARY)
    if binary is None:
        raise SpeechError(f"--speech espeak needs the {ESPEAK_BINARY} binary, which is not installed "
                          "(use --speech synthetic or a .wav file)")
    words_needed = duration_s * 2.6 + 4
    order = gen.permutation(len(_SENTENCES))
    text, words = [], 0
    while words < words_needed:
        for i in order:
            text.append(_SENTENCES[i])
            words += len(_SENTENCES[i].split())
            if words >= words_needed:
                break
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "speech.wav")
        result = subprocess.run([binary, "-s", "150", "-w", path, " ".join(text)], capture_output=True, text=True,
                                check=False)
        if result.returncode != 0 or not os.path.isfile(path):
            raise SpeechError(f"{ESPEAK_BINARY} failed: {result.stderr.strip() or result.returncode}")
        wave, rate = audio_features.read_wav(path)
    wave = resample(wave, rate, sample_rate)
    return {"waveform": fit_length(wave, round(duration_s * sample_rate)), "sample_rate": sample_rate,
            "text": " ".join(text)}


def wav_speech(path: str, duration_s: float, sample_rate: int = SAMPLE_RATE) -> dict:
    """A wav file, mono, resampled to `sample_rate`, truncated or padded with silence to `duration_s`."""
    try:
        wave, rate = audio_features.read_wav(path)
    except OSError as e:
        raise SpeechError(f"cannot read speech file {path}: {e}") from None
    wave = resample(wave, rate, sample_rate)
    return {"waveform": fit_length(wave, round(duration_s * sample_rate)), "sample_rate": sample_rate,
            "source_rate": int(rate), "source_seconds": len(wave) / sample_rate}


def mouth_signals(waveform: np.ndarray, sample_rate: int, num_frames: int, fps: float) -> dict:
    """Per-frame speech descriptors [T] float64: 'loudness' in [0, 1] (smoothed, lagged RMS over the clip's
    98th percentile) and 'roundness' in [-1, 1] (spectral centroid of voiced frames mapped so that low
    centroids -> +1, rounded lips; high -> -1, spread lips; 0 in silence)."""
    x = np.asarray(waveform, np.float64)
    win = round(0.04 * sample_rate)
    centres = np.round((np.arange(num_frames) / fps - LAG_SECONDS) * sample_rate).astype(np.int64)
    idx = centres[:, None] + np.arange(-win // 2, win - win // 2)[None]
    padded = np.concatenate([x, np.zeros(1)])
    frames = padded[np.where((idx >= 0) & (idx < len(x)), idx, len(x))]
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    ref = np.percentile(rms, 98) if np.any(rms > 0) else 1.0
    loud = np.clip(rms / max(ref, 1e-9), 0.0, 1.0)
    kernel = np.array([0.25, 0.5, 0.25])
    loud = np.convolve(np.pad(loud, 1, mode="edge"), kernel, mode="valid")

    spec = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1])[None], axis=1))
    freqs = np.fft.rfftfreq(frames.shape[1], 1.0 / sample_rate)
    band = (freqs > 150) & (freqs < 4000)
    centroid = (spec[:, band] * freqs[band]).sum(1) / np.maximum(spec[:, band].sum(1), 1e-12)
    voiced = loud > 0.15
    if voiced.any():
        lo, hi = np.percentile(centroid[voiced], [10, 90])
        round_ = np.clip(1.0 - 2.0 * (centroid - lo) / max(hi - lo, 1e-6), -1.0, 1.0)
    else:
        round_ = np.zeros(num_frames)
    round_ = np.where(voiced, round_, 0.0)
    round_ = np.convolve(np.pad(round_, 1, mode="edge"), kernel, mode="valid")
    return {"loudness": loud, "roundness": round_}
