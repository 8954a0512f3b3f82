"""Orbax checkpoints of the train state plus the data-iterator position, and the metrics log.

Layout (`hfagp.workdir`): <workdir>/checkpoints/<step>/{state, data}. Saves are asynchronous; orbax writes
each into a temporary directory and renames it when complete, so a process killed mid-save leaves the
previous checkpoint as the latest complete one (the half-written directory is ignored on restore).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

from hfagp import workdir as workdir_lib


class Checkpointer:
    """Saves and restores `TrainState`s and the input position of one workdir (process 0 logs metrics)."""

    def __init__(self, workdir: Path, keep: int = 3):
        self.directory = workdir_lib.checkpoint_dir(workdir)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=workdir_lib.CHECKPOINT_ITEMS)
        self._metrics_path = Path(workdir).absolute() / workdir_lib.METRICS_FILE

    def latest_step(self) -> Optional[int]:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, data_state: Optional[str]) -> None:
        if step in self._manager.all_steps():
            return
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave({"iterator": data_state}))
        self._manager.save(step, args=args, force=True)

    def restore_latest(self, state_template: Any, sharding) -> Optional[tuple[Any, Optional[str]]]:
        """(state, iterator position) of the latest complete checkpoint, placed with `sharding`; or None."""
        step = self._manager.latest_step()
        if step is None:
            return None
        abstract = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state_template)
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
        return restored["state"], (restored["data"] or {}).get("iterator")

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def log_metrics(self, step: int, values: dict) -> None:
        """Append one JSON line per logged step (process 0 only) to <workdir>/metrics.jsonl."""
        if jax.process_index() != 0:
            return
        with open(self._metrics_path, "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
