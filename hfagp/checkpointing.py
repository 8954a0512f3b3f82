"""Orbax checkpoints of the train state plus the data-iterator position, and a metrics log.

Layout: <workdir>/checkpoints/<step>/{state, data}. Saves are asynchronous; orbax writes each into a
temporary directory and renames it when complete, so a process killed mid-save leaves the previous
checkpoint as the latest complete one (the half-written directory is ignored on restore).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    def __init__(self, directory: Path, keep: int = 3):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "data"))
        self._metrics_path = self.directory.parent / "metrics.jsonl"

    def latest_step(self) -> Optional[int]:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, data_state: Optional[str]) -> None:
        if step in self._manager.all_steps():
            return
        args = {"state": ocp.args.StandardSave(state)}
        args["data"] = ocp.args.JsonSave({"iterator": data_state})
        self._manager.save(step, args=ocp.args.Composite(**args), force=True)

    def restore_latest(self, state_template: Any, sharding) -> Optional[tuple[Any, Optional[str]]]:
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
        """Append one JSON line per step (process 0 only) to <workdir>/metrics.jsonl."""
        if jax.process_index() != 0:
            return
        with open(self._metrics_path, "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")


def restore_params_only(directory: Path) -> Optional[dict]:
    """Params of the latest checkpoint in `directory` (no template needed), or None."""
    directory = Path(directory).absolute()
    if not directory.is_dir():
        return None
    manager = ocp.CheckpointManager(directory, item_names=("state", "data"))
    step = manager.latest_step()
    if step is None:
        return None
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    state = restored["state"]
    return state["params"] if isinstance(state, dict) else state.params
