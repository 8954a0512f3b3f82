"""`ArraySource`: an in-memory random-access data source (pure numpy, no tfds/grain needed)."""

from __future__ import annotations

from typing import Mapping

import numpy as np


class ArraySource:
    """Random-access source over equal-length arrays: ``source[i] = {key: array[i]}``.

    Same interface as a tfds array_record data source (``len``, ``[i]`` -> dict of numpy arrays), so the
    grain pipeline and the eval helpers take either. ``frame_index`` defaults to 0..N-1 (time order).
    Typical keys: image uint8 [N, H, W, 3], label float32 [N, 25], expression, audio, audio_window.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        lengths = {k: v.shape[0] for k, v in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"arrays must share their first dimension, got {lengths}")
        self._n = next(iter(lengths.values()))
        arrays.setdefault("frame_index", np.arange(self._n, dtype=np.int32))
        self._arrays = arrays

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        index = int(index)
        if not -self._n <= index < self._n:
            raise IndexError(f"index {index} out of range for {self._n} records")
        return {k: v[index] for k, v in self._arrays.items()}

    @property
    def frame_index(self) -> np.ndarray:
        """int32 [N]: the frame_index column (read without touching the images)."""
        return self._arrays["frame_index"]

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in self._arrays.items())
        return f"ArraySource({shapes})"
