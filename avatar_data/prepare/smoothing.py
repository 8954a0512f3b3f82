"""Temporal smoothing of tracked landmarks: Savitzky-Golay filtering over runs of consecutive frames.

Savitzky-Golay (a moving least-squares polynomial fit) rather than a One-Euro filter: the whole video is
known in advance, so a centred, zero-lag filter can be used; a local quadratic follows fast but smooth
motion (head turns, mouth opening) with less flattening of its peaks than a low-pass of the same noise
reduction, and it has two fixed parameters instead of One-Euro's speed-adaptive cutoff (tuned for
interactive latency). Near the ends of a run the polynomial fitted to the first / last full window is
evaluated (scipy's ``mode='interp'``), so the ends are not pulled towards zero or mirrored.
"""

from __future__ import annotations

import numpy as np


def savgol_matrix(window: int, order: int) -> np.ndarray:
    """[window, window] projection onto polynomials of degree ``order``: row j smooths sample j of a window."""
    if window % 2 != 1 or window <= order:
        raise ValueError(f"window must be odd and > order, got window={window}, order={order}")
    x = np.arange(window, dtype=np.float64) - window // 2
    vander = x[:, None] ** np.arange(order + 1)[None]
    return vander @ np.linalg.pinv(vander)


def savgol(values: np.ndarray, window: int, order: int) -> np.ndarray:
    """Savitzky-Golay smoothing along axis 0 of ``values`` [T, ...] (float64 result, same shape).

    A run shorter than ``window`` uses the longest odd window that fits (and order below it); 1-2 samples
    are returned unchanged.
    """
    v = np.asarray(values, np.float64)
    t = v.shape[0]
    if t < window:
        window = t if t % 2 == 1 else t - 1
        order = min(order, window - 1)
    if window < 3:
        return v.copy()
    proj = savgol_matrix(window, order)
    half = window // 2
    flat = v.reshape(t, -1)
    out = np.empty_like(flat)
    windows = np.lib.stride_tricks.sliding_window_view(flat, window, axis=0)   # [T - w + 1, D, w]
    out[half:t - half] = np.einsum("tdw,w->td", windows, proj[half])
    out[:half] = proj[:half] @ flat[:window]
    out[t - half:] = proj[half + 1:] @ flat[t - window:]
    return out.reshape(v.shape)


def runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges of the consecutive True stretches of a boolean [T] array."""
    v = np.concatenate([[False], np.asarray(valid, bool), [False]])
    edges = np.flatnonzero(np.diff(v.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2])]


def smooth_tracks(values: np.ndarray, valid: np.ndarray, window: int, order: int) -> np.ndarray:
    """`savgol` of each run of valid frames separately; invalid frames are copied unchanged."""
    out = np.array(values, np.float64, copy=True)
    for a, b in runs(valid):
        out[a:b] = savgol(out[a:b], window, order)
    return out


def window_frames(seconds: float, fps: float, minimum: int = 3) -> int:
    """The odd window length closest to ``seconds`` at ``fps`` (at least ``minimum``)."""
    n = max(minimum, int(round(seconds * fps)))
    return n if n % 2 == 1 else n + 1


class StreamingSavgol:
    """`smooth_tracks` one frame at a time, for a single pass over a video.

    ``push(key, value, payload)`` adds the next frame of the current run of valid frames and returns the
    frames whose smoothed value is now known, as ``(key, smoothed, payload)`` in order; ``end_run()`` closes
    the run (at an invalid frame or the end of the video) and returns the rest. The values are those of
    `smooth_tracks` (the same windows and end polynomials); at most ``window`` frames are held.
    """

    def __init__(self, window: int, order: int):
        self.window, self.order = window, order
        self.half = window // 2
        self.proj = savgol_matrix(window, order)
        self._run: list = []      # (key, value, payload) of the current run's last `window` frames
        self._count = 0           # frames in the current run
        self._emitted = 0         # frames of the current run already returned

    def _emit(self, positions, smoothed) -> list:
        base = self._count - len(self._run)
        out = []
        for p, s in zip(positions, smoothed):
            key, _, payload = self._run[p - base]
            out.append((key, s, payload))
            self._run[p - base] = (key, self._run[p - base][1], None)
        self._emitted += len(out)
        return out

    def push(self, key, value, payload=None) -> list:
        self._run.append((key, np.asarray(value, np.float64), payload))
        self._count += 1
        if len(self._run) > self.window:
            self._run.pop(0)
        if self._count < self.window:
            return []
        values = np.stack([v for _, v, _ in self._run]).reshape(self.window, -1)
        shape = self._run[0][1].shape
        if self._count == self.window:
            smoothed = (self.proj[:self.half + 1] @ values).reshape((self.half + 1,) + shape)
            return self._emit(range(self.half + 1), smoothed)
        smoothed = (self.proj[self.half] @ values).reshape(shape)
        return self._emit([self._count - 1 - self.half], [smoothed])

    def end_run(self) -> list:
        if not self._run:
            return []
        shape = self._run[0][1].shape
        if self._count < self.window:
            smoothed = savgol(np.stack([v for _, v, _ in self._run]), self.window, self.order)
            out = self._emit(range(self._count), smoothed)
        else:
            values = np.stack([v for _, v, _ in self._run]).reshape(self.window, -1)
            rest = self._count - self._emitted
            smoothed = (self.proj[self.window - rest:] @ values).reshape((rest,) + shape)
            out = self._emit(range(self._emitted, self._count), smoothed)
        self._run, self._count, self._emitted = [], 0, 0
        return out
