"""Orbax checkpoints of the train state plus the data-iterator position, and the metrics log.

Layout (`hfagp.workdir`): <workdir>/checkpoints/<step>/{state, data}. Saves are asynchronous; orbax writes
each into a temporary directory and renames it when complete, so a process killed mid-save leaves the
previous checkpoint as the latest complete one (the half-written directory is ignored, and removed when the
next run opens the checkpoints).

What survives what:
  * a checkpoint damaged after the fact (files truncated, deleted or overwritten): `restore_latest` finds it
    unreadable, or the digest of its arrays differs from the one stored at save time (in the 'data' item), or
    it holds non-finite values (which a save never writes: the loop's finiteness guard runs first); it moves
    the checkpoint to <workdir>/corrupt_checkpoints/ (never deletes it), says so on stderr and falls back to
    the newest intact one;
  * a save that fails (a full disk, a lost mount): `CheckpointSaveError`, one line naming the step, the error
    and the last complete checkpoint; the half-written directory is removed, earlier checkpoints stay;
  * the logs: restoring step N rewinds metrics.jsonl and eval_metrics.jsonl to the lines of steps <= N (and a
    fresh start empties them), so a resumed run's logs read as an uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from hfagp import workdir as workdir_lib
from hfagp_common import atomic
from hfagp_common.cli import UserError, first_line, interrupted

TMP_MARKER = ".orbax-checkpoint-tmp"  # orbax's suffix of a step directory being written


class CheckpointSaveError(UserError, OSError):
    """A checkpoint could not be written; earlier checkpoints are intact."""


def _host_array(leaf) -> np.ndarray:
    """This process's copy of a (replicated or single-device) array as numpy."""
    if isinstance(leaf, jax.Array):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        return np.asarray(leaf.addressable_data(0))
    return np.asarray(leaf)


def state_digest(state: Any) -> str:
    """A content hash of every array of `state` (path, dtype, shape and bytes, in tree order)."""
    h = hashlib.blake2b(digest_size=16)
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        a = np.ascontiguousarray(_host_array(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _non_finite(state: Any) -> Optional[str]:
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        a = _host_array(leaf)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            return jax.tree_util.keystr(path)
    return None


def _error_summary(e: BaseException, limit: int = 160) -> str:
    """The error in a line: the operating system's reason first where the message carries one (tensorstore
    reports a full disk as "... [os_error_code='28']"), then the start of the message."""
    code = e.errno if isinstance(e, OSError) and e.errno else None
    found = re.search(r"os_error_code='?(\d+)", str(e))
    if code is None and found:
        code = int(found.group(1))
    reason = f"{os.strerror(code)} [errno {code}]: " if code else ""
    return f"{reason}{type(e).__name__}: {first_line(e, limit)}"


class _OrbaxErrorFilter(logging.Filter):
    """Orbax logs a failed background save, with its traceback, at ERROR from every thread involved; the
    Checkpointer reports the failure itself, in one line, so those records are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and f"{os.sep}orbax{os.sep}" in record.pathname)


def _quiet_orbax_errors() -> None:
    logger = logging.getLogger("absl")
    if not any(isinstance(f, _OrbaxErrorFilter) for f in logger.filters):
        logger.addFilter(_OrbaxErrorFilter())


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rewind_jsonl(path: Path, step: int) -> int:
    """Keeps the lines of a JSON-lines log whose 'step' is <= `step` (and drops unparseable ones, e.g. a
    line cut short by a kill); rewrites the file atomically if that changes it. Returns the lines dropped."""
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines()
    kept = []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("step"), (int, float)) and entry["step"] <= step:
            kept.append(line)
    if len(kept) != len(lines):
        atomic.write_text(path, "".join(line + "\n" for line in kept))
    return len(lines) - len(kept)


class Checkpointer:
    """Saves and restores `TrainState`s and the input position of one workdir (process 0 logs metrics)."""

    def __init__(self, workdir: Path, keep: int = 3, log: Callable[[str], None] = _log):
        self.workdir = Path(workdir).absolute()
        self.directory = workdir_lib.checkpoint_dir(workdir)
        self._log = log if jax.process_index() == 0 else (lambda message: None)
        _quiet_orbax_errors()
        # The workdir's lock (hfagp.workdir.lock) makes this the only writer, so orbax may remove what a killed
        # save left behind.
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=True,
                                               cleanup_tmp_directories=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=workdir_lib.CHECKPOINT_ITEMS)
        self._metrics_path = self.workdir / workdir_lib.METRICS_FILE
        self._pending: Optional[int] = None  # the step of the save that may still be running
        self._failed = False

    def latest_step(self) -> Optional[int]:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, data_state: Optional[str]) -> None:
        """Starts saving `step` (asynchronously); raises CheckpointSaveError if this or the previous save failed."""
        if step in self._manager.all_steps():
            return
        item = {"iterator": data_state, "state_digest": state_digest(state)}
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(item))
        try:
            self._manager.check_for_errors()
        except Exception as e:
            self._fail(self._pending, e)
        try:
            self._manager.save(step, args=args, force=True)
        except Exception as e:  # the previous save's error may surface here too: name the step that failed
            previous_failed = self._pending is not None and self._pending not in self._manager.all_steps()
            self._fail(self._pending if previous_failed else step, e)
        self._pending = step

    def check(self) -> None:
        """Raises CheckpointSaveError if the running save has failed (cheap: call it every step, so a failed
        save stops the run at once rather than at the next checkpoint)."""
        if self._pending is None or self._failed:
            return
        try:
            self._manager.check_for_errors()
        except Exception as e:
            self._fail(self._pending, e)

    def wait(self) -> None:
        """Waits for the running save; raises CheckpointSaveError (once) if it failed."""
        try:
            self._manager.wait_until_finished()
            self._manager.check_for_errors()
        except Exception as e:
            if not self._failed:
                self._fail(self._pending, e)
        self._pending = None

    def _fail(self, step: Optional[int], error: BaseException) -> None:
        self._failed = True
        for leftover in self.directory.glob(f"*{TMP_MARKER}*"):  # the only writer: every one is ours, unfinished
            atomic.remove(leftover)
        self._manager.reload()
        complete = self._manager.latest_step()
        raise CheckpointSaveError(
            f"cannot write checkpoint {step} to {self.directory}: {_error_summary(error)}; the last complete "
            f"checkpoint is {'step ' + str(complete) if complete is not None else 'none'}; fix the cause (free "
            f"space?) and rerun the same command to resume") from error

    def restore_latest(self, state_template: Any, sharding) -> Optional[tuple[Any, Optional[str]]]:
        """(state, iterator position) of the newest intact checkpoint, placed with `sharding`; or None.

        Damaged checkpoints on the way are moved aside (see the module doc). The logs are rewound to the
        restored step (to 0 when nothing is restored)."""
        abstract = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state_template)
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                restored = self._manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
            except MemoryError:
                raise
            except Exception as e:
                if interrupted():  # Ctrl-C during the read: the checkpoint is not to blame, never move it aside
                    raise KeyboardInterrupt from e
                problem = self._unreadable(step)
                if problem is None:  # intact, but not this run's train state
                    raise workdir_lib.CheckpointError(
                        f"checkpoint {step} in {self.directory} does not fit this run's train state "
                        f"({_error_summary(e)}); was the model or optimizer config changed?") from e
            else:
                data = restored["data"] if isinstance(restored["data"], dict) else {}
                problem = self._damaged(restored["state"], data)
                if problem is None:
                    self.rewind_logs(step)
                    return restored["state"], data.get("iterator")
            moved = self._quarantine(step)
            older = [s for s in self._manager.all_steps() if s < step]
            self._log(f"checkpoint {step} in {self.directory} is damaged ({problem}); moved it to {moved}; "
                      + (f"falling back to step {max(older)}" if older else "no older checkpoint: starting afresh"))
        self.rewind_logs(0)
        return None

    def _unreadable(self, step: int) -> Optional[str]:
        """Why checkpoint `step` cannot be read at all (no template needed), or None if it reads."""
        try:
            self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                                data=ocp.args.JsonRestore()))
        except MemoryError:
            raise
        except Exception as e:
            if interrupted():
                raise KeyboardInterrupt from e
            return _error_summary(e)
        return None

    @staticmethod
    def _damaged(state: Any, data: dict) -> Optional[str]:
        expected = data.get("state_digest")
        if expected is not None and state_digest(state) != expected:
            return "its arrays differ from the digest stored when it was saved"
        where = _non_finite(state)
        return None if where is None else f"non-finite values in {where}"

    def _quarantine(self, step: int) -> Optional[Path]:
        """Moves checkpoint `step` to <workdir>/corrupt_checkpoints/<step>[.n] (process 0)."""
        target = None
        if jax.process_index() == 0:
            root = self.workdir / workdir_lib.CORRUPT_CHECKPOINTS_DIR
            root.mkdir(exist_ok=True)
            target, n = root / str(step), 1
            while target.exists():
                target, n = root / f"{step}.{n}", n + 1
            (self.directory / str(step)).rename(target)
        self._manager.reload()
        return target

    def rewind_logs(self, step: int) -> None:
        """metrics.jsonl and eval_metrics.jsonl keep only the lines of steps <= `step` (process 0)."""
        if jax.process_index() != 0:
            return
        for name in (workdir_lib.METRICS_FILE, workdir_lib.EVAL_METRICS_FILE):
            rewind_jsonl(self.workdir / name, step)

    def log_metrics(self, step: int, values: dict) -> None:
        """Append one JSON line per logged step (process 0 only) to <workdir>/metrics.jsonl."""
        if jax.process_index() != 0:
            return
        with open(self._metrics_path, "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")


__all__ = ["CheckpointSaveError", "Checkpointer", "rewind_jsonl", "state_digest"]
