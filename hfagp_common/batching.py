"""One function applied over fixed-size batches (the last one padded), so a jitted function compiles once."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np


def pad_batch(arrays: Sequence[np.ndarray], batch_size: int) -> tuple[list[np.ndarray], int]:
    """Pads every array to `batch_size` rows by repeating its last row; returns (padded, pad count)."""
    arrays = [np.asarray(a) for a in arrays]
    pad = batch_size - len(arrays[0])
    if pad < 0:
        raise ValueError(f"{len(arrays[0])} rows do not fit in a batch of {batch_size}")
    if pad:
        arrays = [np.concatenate([a, np.repeat(a[-1:], pad, 0)]) for a in arrays]
    return arrays, pad


def batched(fn: Callable[..., Any], arrays: Sequence[Any], batch_size: int, desc: Optional[str] = None,
            progress: bool = True) -> Any:
    """Apply `fn(*batch_arrays) -> array | dict of arrays` over leading-axis batches of `batch_size`.

    The last batch is padded by repeating its last row (fixed shapes: one compilation) and the padding is
    dropped from the outputs. The next batch is dispatched before the previous result is copied to the host
    (JAX runs asynchronously, so copying never stalls the device). Returns the concatenated numpy outputs
    (an array, or a dict of arrays). A progress bar is shown when `desc` is given and `progress` is set.
    """
    from tqdm.auto import tqdm

    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"batched: arrays of different lengths {[len(a) for a in arrays]}")
    if n == 0:
        raise ValueError("batched: no rows to process")
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")

    def to_host(out, keep):
        if isinstance(out, dict):
            return {k: np.asarray(v)[:keep] for k, v in out.items()}
        return np.asarray(out)[:keep]

    outs, pending = [], None
    with tqdm(total=n, desc=desc, unit="img", disable=not progress or desc is None, leave=False) as bar:
        for start in range(0, n, batch_size):
            chunk, pad = pad_batch([a[start:start + batch_size] for a in arrays], batch_size)
            result = (fn(*chunk), batch_size - pad)
            if pending is not None:
                outs.append(to_host(*pending))
                bar.update(pending[1])
            pending = result
        outs.append(to_host(*pending))
        bar.update(pending[1])
    if isinstance(outs[0], dict):
        return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
    return np.concatenate(outs)


__all__ = ["batched", "pad_batch"]
