"""Hard-cut (shot boundary) detection in decoded frames, streaming, numpy only.

The score of frame t is a content difference between the thumbnails of frames t - 1 and t (`content_score`):
the mean over pixels of three terms in HSV, each in [0, 1],

* the hue difference (circular) weighted by both pixels' saturation (hue is noise on grey pixels),
* the saturation difference,
* the difference of the value channel divided by its frame mean, or by `DARK` for a dark frame (a global gain
  change, a light switched on or a fade, leaves it unchanged until the frame is nearly black),

averaged. Frame t starts a new shot (`is_cut`) when its score is at least `MIN_SCORE` and at least `RATIO`
times the mean score of its `WINDOW` neighbours on each side: a cut is a lone spike, while head or camera
motion and gradual lighting changes raise the scores of a run of frames together. This is PySceneDetect's
AdaptiveDetector rule (content score, centred window of 2, ratio 3) with a gain-normalised value channel;
`CutDetector` needs `WINDOW` frames of look-ahead. A cut closer than ``min_shot_frames`` to the previous one
is not taken (a camera flash is one shot).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator, Sequence

import numpy as np

THUMB_WIDTH = 80
MIN_SCORE = 0.1
RATIO = 3.0
WINDOW = 2
MIN_SHOT_SECONDS = 0.4
# Frame means and pixel values below this are "dark": neither normalised nor given a saturation at full scale.
DARK = 0.25


def thumbnail(frame: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> float32 [h, w, 3] in [0, 1], box-averaged by the integer factor that brings W
    closest to ``width`` (at least 1)."""
    f = max(1, int(round(frame.shape[1] / float(width))))
    h, w = (frame.shape[0] // f) * f, (frame.shape[1] // f) * f
    x = np.asarray(frame[:h, :w], np.float32).reshape(h // f, f, w // f, f, 3).mean(axis=(1, 3))
    return x / 255.0


def hsv(rgb: np.ndarray) -> np.ndarray:
    """float [..., 3] RGB in [0, 1] -> [..., 3] hue (turns, [0, 1)), saturation and value in [0, 1].

    Saturation is chroma / max(value, `DARK`): the saturation of near-black pixels is quantisation noise, so
    it fades out with their brightness instead of jumping between 0 and 1 (a fade to black stays smooth).
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    c = v - rgb.min(axis=-1)
    s = c / np.maximum(v, DARK)
    safe = np.maximum(c, 1e-6)
    h = np.where(v == r, (g - b) / safe, np.where(v == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = np.where(c > 0, (h / 6.0) % 1.0, 0.0)
    return np.stack([h, s, v], axis=-1).astype(np.float32)


def content_score(a: np.ndarray, b: np.ndarray) -> float:
    """Content difference in [0, 1] of two HSV thumbnails [h, w, 3] (see the module docstring)."""
    dh = np.abs(a[..., 0] - b[..., 0])
    dh = 2.0 * np.minimum(dh, 1.0 - dh) * np.sqrt(a[..., 1] * b[..., 1])
    ds = np.abs(a[..., 1] - b[..., 1])
    va = a[..., 2] / max(float(a[..., 2].mean()), DARK)
    vb = b[..., 2] / max(float(b[..., 2].mean()), DARK)
    dv = np.minimum(0.5 * np.abs(va - vb), 1.0)
    return float((dh.mean() + ds.mean() + dv.mean()) / 3.0)


def is_cut(scores: Sequence[float], t: int, min_score: float = MIN_SCORE, ratio: float = RATIO,
           window: int = WINDOW) -> bool:
    """Whether frame t's score [T] is a lone spike: >= ``min_score`` and >= ``ratio`` x the mean of the
    (up to) ``window`` scores on each side (frame 0 has no score and is never a cut)."""
    if t <= 0 or scores[t] < min_score:
        return False
    neighbours = [scores[i] for i in range(max(1, t - window), min(len(scores), t + window + 1)) if i != t]
    if not neighbours:
        return True
    return scores[t] >= ratio * (float(np.mean(neighbours)) + 1e-3)


class CutDetector:
    """Streaming `is_cut` over frames: ``push(frame)`` returns ``(t, frame, cut)`` of the frames whose
    decision is known (``window`` frames later), in order; ``flush()`` returns the rest at the end.

    cut: frame t is the first frame of a new shot (never for frame 0). ``scores`` holds every score so far.
    """

    def __init__(self, fps: float, min_score: float = MIN_SCORE, ratio: float = RATIO, window: int = WINDOW,
                 min_shot_seconds: float = MIN_SHOT_SECONDS, thumb_width: int = THUMB_WIDTH):
        self.min_score, self.ratio, self.window, self.thumb_width = min_score, ratio, window, thumb_width
        self.min_shot_frames = max(1, int(round(min_shot_seconds * fps)))
        self.scores: list[float] = []
        self.cuts: list[int] = []
        self._pending: list = []          # (t, frame) not yet decided
        self._last = None                 # HSV thumbnail of the previous frame

    def push(self, frame: np.ndarray) -> list:
        cur = hsv(thumbnail(frame, self.thumb_width))
        self.scores.append(0.0 if self._last is None else content_score(self._last, cur))
        self._last = cur
        self._pending.append((len(self.scores) - 1, frame))
        out = []
        while self._pending and self._pending[0][0] + self.window < len(self.scores):
            out.append(self._decide())
        return out

    def flush(self) -> list:
        return [self._decide() for _ in range(len(self._pending))]

    def _decide(self):
        t, frame = self._pending.pop(0)
        last = self.cuts[-1] if self.cuts else 0
        cut = t - last >= self.min_shot_frames and is_cut(self.scores, t, self.min_score, self.ratio, self.window)
        if cut:
            self.cuts.append(t)
        return t, frame, cut


def detect_cuts(frames: Iterable[np.ndarray], fps: float, **kwargs) -> tuple[list[int], np.ndarray]:
    """Cut frames (first frames of every shot after the first) and the scores [T] of a frame sequence."""
    det = CutDetector(fps, **kwargs)
    for f in frames:
        det.push(f)
    det.flush()
    return det.cuts, np.asarray(det.scores, np.float64)


def with_cuts(frames: Iterable[np.ndarray], detector: CutDetector) -> Iterator[tuple[int, np.ndarray, bool]]:
    """``(t, frame, cut)`` for each frame of ``frames``, through ``detector`` (a look-ahead of its window)."""
    for f in frames:
        yield from detector.push(f)
    yield from detector.flush()


@dataclasses.dataclass(frozen=True)
class Shot:
    """Frames [start, stop) of the decoded video between two cuts (or the ends)."""

    index: int
    start: int
    stop: int

    @property
    def frames(self) -> int:
        return self.stop - self.start


def shots_from_cuts(cuts: Sequence[int], num_frames: int) -> list[Shot]:
    """The shots [start, stop) that the cut frames (sorted, each in 1..num_frames-1) split num_frames into."""
    edges = [0] + [int(c) for c in cuts] + [int(num_frames)]
    return [Shot(i, a, b) for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))]


def match_cuts(found: Sequence[int], truth: Sequence[int], tolerance: int = 1) -> dict:
    """Precision / recall of found cut frames against true ones (a found cut within ``tolerance`` frames of an
    unmatched true cut is a hit)."""
    free = sorted(int(t) for t in truth)
    hits = 0
    for f in sorted(int(f) for f in found):
        near = [t for t in free if abs(t - f) <= tolerance]
        if near:
            free.remove(near[0])
            hits += 1
    return {"found": len(found), "true": len(truth), "hits": hits,
            "precision": hits / len(found) if found else 1.0, "recall": hits / len(truth) if truth else 1.0}
