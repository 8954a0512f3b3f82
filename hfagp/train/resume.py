"""Starting or resuming a run in a workdir: the claim one training process holds, and what a resume may change.

`claim(config, workdir)` wraps a whole run (`hfagp.train.loop.train_and_evaluate`):
  1. the config is validated first, so a config that cannot work leaves no trace;
  2. the workdir is created and its lock taken for the run's lifetime (`hfagp.workdir.lock`): a second
     `train.py` on the same workdir stops at once, with one line naming the first;
  3. a workdir of another kind (a `hfagp.pretrain` run) is refused, and so is resuming (there is a checkpoint)
     with a config that differs from the run's config.json, naming the changed keys, unless every change is
     in `RESUMABLE_KEYS` or in the config's `checkpoint.resume_allow_changes`;
  4. if the run fails before it has trained anything (no checkpoint, no metrics.jsonl), what this start
     added to the workdir is removed again (the workdir too, if this start made it).

Resuming never needs a changed config; these changes are always allowed, as they do not touch the trained
values or the data order (`RESUMABLE_KEYS`): the run length (`schedule.total_steps`, as long as the freeze
schedule keeps the same stages), how often it logs, evaluates and checkpoints, the in-training evaluation,
progress output, the compilation cache and the multi-process addresses. Keys the run's config.json does not
have (knobs added to the code since) are allowed and named. Anything else (learning rate, model, data,
losses, precision, ...) changes what the checkpoint's state means: allow it explicitly with
``--config.checkpoint.resume_allow_changes=optim.learning_rate`` (comma-separated keys or sections; '*' any).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import ml_collections

from hfagp import workdir as workdir_lib
from hfagp.runtime.config_keys import covered, flatten
from hfagp.train import validate
from hfagp.train.optim import FreezeSchedule
from hfagp_common import atomic
from hfagp_common.cli import ConfigError

# Config keys (or whole sections) a resumed run may change without being asked to (see the module doc).
RESUMABLE_KEYS = (
    "schedule.total_steps",   # extend (or shorten) a run; refused if it changes the freeze schedule's stages
    "log_every", "eval_every", "progress_bar", "compilation_cache_dir",
    "eval",                   # the in-training evaluation reads the parameters, never changes them
    "checkpoint",             # how often, how many kept, resume_allow_changes itself
    "distributed",            # coordinator address and process ids differ between restarts
    "debug",                  # fault injection of the tests
)
ALLOW_KEY = "checkpoint.resume_allow_changes"
_SHOWN = 8  # changed keys named in the refusal


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def config_changes(saved: dict, config) -> tuple[list[str], list[str]]:
    """(changed or removed keys that need permission, keys new since the run's config.json) of resuming the
    run saved as `saved` (config.json values) with `config`."""
    new_values = json.loads(config.to_json_best_effort())
    old, new = flatten(saved), flatten(new_values)
    allowed = [p.strip() for p in str(config.checkpoint.get("resume_allow_changes", "")).split(",") if p.strip()]
    added = sorted(k for k in new if k not in old)
    changed = sorted(k for k in old if new.get(k, object()) != old[k])
    refused = []
    for key in changed:
        if covered(key, allowed):
            continue
        if covered(key, RESUMABLE_KEYS) and key in new:
            if key == "schedule.total_steps" and not _same_stages(saved, config):
                refused.append(key)
            continue
        refused.append(key)
    return refused, added


def _same_stages(saved: dict, config) -> bool:
    """Whether the freeze schedule (the start step of every parameter group) is the same under both configs."""
    try:
        before = FreezeSchedule.from_config(ml_collections.ConfigDict(saved)).starts
    except (KeyError, AttributeError, TypeError, ValueError):
        return False
    return before == FreezeSchedule.from_config(config).starts


def check_resume(workdir: Path, config) -> None:
    """Raises ConfigError if `workdir` is not a run `config` may start or resume in (see the module doc)."""
    try:
        saved = workdir_lib.read_config_values(workdir)
    except workdir_lib.RunNotFoundError as e:
        saved, unreadable = None, e
    else:
        unreadable = None
    if saved is not None and workdir_lib.workdir_kind(saved) == "pretrain":
        raise ConfigError(f"{workdir} is a hfagp.pretrain workdir; train in another workdir")
    if not workdir_lib.checkpoint_steps(workdir):
        return  # nothing to resume: a fresh start
    allowed = str(config.checkpoint.get("resume_allow_changes", "")).split(",")
    if saved is None and "*" not in allowed:
        reason = unreadable or f"{workdir / workdir_lib.CONFIG_FILE} is missing"
        raise ConfigError(f"{workdir} has checkpoints but its config cannot be compared ({reason}); restore "
                          f"config.json, or resume anyway with --config.{ALLOW_KEY}='*'")
    if saved is None:
        return
    refused, added = config_changes(saved, config)
    if refused:
        old, new = flatten(saved), flatten(json.loads(config.to_json_best_effort()))
        shown = ", ".join(f"{k} ({_show(old.get(k))} -> {_show(new[k]) if k in new else 'removed'})"
                          for k in refused[:_SHOWN])
        more = f" and {len(refused) - _SHOWN} more" if len(refused) > _SHOWN else ""
        raise ConfigError(f"{workdir} holds a run of another config: changed {shown}{more}; resume with the run's "
                          f"config, use a new workdir, or allow the change with --config.{ALLOW_KEY}="
                          f"{','.join(refused[:_SHOWN])}")
    if added:
        print(f"resuming with config keys the run's config.json does not have: {', '.join(added[:_SHOWN])}"
              + (f" and {len(added) - _SHOWN} more" if len(added) > _SHOWN else ""), file=sys.stderr)


def _is_main(config) -> bool:
    """Process 0 of the run (known before jax.distributed starts: from the config)."""
    return not config.distributed.enabled or int(config.distributed.process_id) == 0


def _trained_anything(workdir: Path) -> bool:
    return bool(workdir_lib.checkpoint_steps(workdir)) or (workdir / workdir_lib.METRICS_FILE).exists()


@contextlib.contextmanager
def claim(config, workdir, command: Optional[str] = None) -> Iterator[Path]:
    """Validates `config`, creates and locks `workdir` and checks that the run may start or resume there, for
    the duration of the block (see the module doc). Yields the workdir as an absolute path."""
    validate.check_config(config)
    workdir = Path(workdir).absolute()
    workdir_lib.check_output_dir(workdir, "train", workdir_lib.TRAINING_LAYOUT)
    if not _is_main(config):
        yield workdir
        return
    created = not workdir.exists()
    workdir.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in workdir.iterdir()}
    try:
        with workdir_lib.lock(workdir, command or " ".join(sys.argv)):
            try:
                check_resume(workdir, config)
                yield workdir
            except BaseException:
                if not _trained_anything(workdir):  # holding the lock: nobody else added anything
                    for path in workdir.iterdir():
                        if path.name not in before:
                            atomic.remove(path)
                raise
    except BaseException:
        if created and workdir.is_dir() and not any(workdir.iterdir()):
            workdir.rmdir()
        raise


__all__ = ["ALLOW_KEY", "RESUMABLE_KEYS", "check_resume", "claim", "config_changes"]
