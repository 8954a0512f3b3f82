"""grain input pipelines over a random-access source (a prepared tfds split or an `ArraySource`).

Training: `make_train_iterator` -> an iterator of dicts of numpy arrays, ready for ``jax.device_put``:

* ``image``: float32 [B, R, R, 3] in [-1, 1] (NHWC; converted from uint8 on the worker side)
* ``label``: float32 [B, 25] (EG3D convention), ``frame_index``: int32 [B]
* ``expression`` float32 [B, E], ``audio`` float32 [B, 16, 29], ``audio_window`` float32 [B, W, 16, 29]
  when the source has them.

The record order is one seeded shuffle of the whole source, reshuffled every epoch and repeated (forever
by default), cut into batches of ``batch_size`` (per process); process ``shard_index`` of ``shard_count``
(by default ``jax.process_index()`` of ``jax.process_count()``) takes batches ``shard_index::shard_count``.
So global batch g (the per-process batches of step g concatenated in process order) is exactly batch g of
a single process reading with ``shard_count * batch_size``: any number of processes trains on the same
sequence of global batches, and the iterator position (a count of batches) is the same in every process. Records are read by ``read_threads`` threads and,
with ``worker_count > 0``, batches are made in that many worker processes. The iterator's position is
checkpointable: ``it.get_state()`` / ``it.set_state(state)`` (a JSON-able dict; see `iterator_state`), or
with orbax through ``grain.checkpoint.CheckpointSave(it)`` / ``CheckpointRestore(it)``.

Evaluation: `load_eval_frames` / `iterate_eval_batches` give a split in time order (by ``frame_index``).
"""

from __future__ import annotations

import json
from typing import Iterator, Optional, Sequence, Union

import grain
import numpy as np

from avatar_data.array_source import ArraySource

__all__ = [
    "ArraySource",
    "to_model_inputs",
    "make_train_iterator",
    "iterator_state",
    "restore_iterator_state",
    "time_order",
    "load_eval_frames",
    "iterate_eval_batches",
]


def to_model_inputs(example: dict) -> dict:
    """One record -> model inputs: image uint8 -> float32 in [-1, 1]; floats -> float32; frame_index -> int32."""
    out = {}
    for key, value in example.items():
        value = np.asarray(value)
        if key == "image":
            if value.dtype != np.uint8:
                raise TypeError(f"image must be uint8, got {value.dtype}")
            out[key] = value.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
        elif key == "frame_index":
            out[key] = value.astype(np.int32)
        elif np.issubdtype(value.dtype, np.floating):
            out[key] = value.astype(np.float32)
        else:
            out[key] = value
    return out


def _ensure_absl_flags_parsed() -> None:
    """grain's worker processes read absl flags; outside ``absl.app.run`` nothing has parsed them."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _default_shard(shard_index: Optional[int], shard_count: Optional[int]) -> tuple[int, int]:
    if shard_index is None or shard_count is None:
        import jax

        shard_index = jax.process_index() if shard_index is None else shard_index
        shard_count = jax.process_count() if shard_count is None else shard_count
    if not (shard_count >= 1 and 0 <= shard_index < shard_count):
        raise ValueError(f"bad shard {shard_index} of {shard_count}")
    return shard_index, shard_count


def make_train_iterator(
    data_source,
    batch_size: int,
    *,
    seed: int = 0,
    shard_index: Optional[int] = None,
    shard_count: Optional[int] = None,
    worker_count: int = 0,
    num_epochs: Optional[int] = None,
    read_threads: int = 4,
    prefetch_batches: int = 8,
    worker_buffer_size: int = 2,
) -> grain.DatasetIterator:
    """Shuffled, repeated, sharded, batched (drop remainder) iterator of model-input dicts.

    data_source: ``len`` + ``[i]`` -> dict of numpy arrays (tfds data source, `ArraySource`).
    num_epochs: None repeats forever. read_threads / prefetch_batches: thread prefetch of batches in each
    process. worker_count: 0 batches in this process; N > 0 uses N worker processes (absl flags are
    marked parsed if nothing parsed them). The same seed and shard give the same batches for any
    worker_count. Call ``close()`` on the iterator when done with it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    shard_index, shard_count = _default_shard(shard_index, shard_count)
    if len(data_source) < batch_size * shard_count:
        raise ValueError(f"a {len(data_source)}-record source cannot fill one global batch of "
                         f"{shard_count} x {batch_size} records")
    ds = grain.MapDataset.source(data_source).shuffle(seed=seed).repeat(num_epochs)
    ds = ds.map(to_model_inputs).batch(batch_size, drop_remainder=True)
    ds = ds[shard_index::shard_count]
    it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch_batches))
    if worker_count > 0:
        _ensure_absl_flags_parsed()
        it_ds = it_ds.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=worker_count, per_worker_buffer_size=worker_buffer_size))
    return iter(it_ds)


def iterator_state(iterator: grain.DatasetIterator) -> str:
    """The iterator's position as a JSON string (what grain's own orbax handler stores)."""
    return json.dumps(iterator.get_state())


def restore_iterator_state(iterator: grain.DatasetIterator, state: Union[str, dict]) -> None:
    """Move a freshly made iterator (same source and arguments) to a position saved by `iterator_state`."""
    iterator.set_state(json.loads(state) if isinstance(state, str) else state)


def time_order(data_source) -> np.ndarray:
    """Record indices sorted by ``frame_index`` (reads every record unless the source has a frame_index column)."""
    if isinstance(getattr(data_source, "frame_index", None), np.ndarray):
        frame_index = data_source.frame_index
    else:
        frame_index = np.array([int(data_source[i]["frame_index"]) for i in range(len(data_source))])
    return np.argsort(frame_index, kind="stable")


def _stack(records: Sequence[dict], image_dtype) -> dict[str, np.ndarray]:
    batch = {k: np.stack([np.asarray(r[k]) for r in records]) for k in records[0]}
    if np.dtype(image_dtype) == np.float32:
        batch = to_model_inputs(batch)
    elif np.dtype(image_dtype) != np.uint8:
        raise ValueError(f"image_dtype must be float32 ([-1, 1]) or uint8, got {image_dtype}")
    return batch


def load_eval_frames(
    data_source,
    *,
    image_dtype=np.float32,
    max_frames: Optional[int] = None,
) -> dict[str, np.ndarray]:
    """A whole split (or its first ``max_frames`` in time) as stacked arrays in time order.

    image_dtype: float32 gives images in [-1, 1] (and float32 signals), uint8 keeps the stored values.
    """
    order = time_order(data_source)
    if max_frames is not None:
        order = order[:max_frames]
    return _stack([data_source[int(i)] for i in order], image_dtype)


def iterate_eval_batches(
    data_source,
    batch_size: int,
    *,
    image_dtype=np.float32,
) -> Iterator[dict[str, np.ndarray]]:
    """Batches of a split in time order; the last batch is padded to ``batch_size`` by repeating its last
    frame, and ``mask`` (bool [B]) is False on the padding."""
    order = time_order(data_source)
    for start in range(0, len(order), batch_size):
        idx = list(order[start:start + batch_size])
        n_real = len(idx)
        idx += [idx[-1]] * (batch_size - n_real)
        batch = _stack([data_source[int(i)] for i in idx], image_dtype)
        batch["mask"] = np.arange(batch_size) < n_real
        yield batch
