"""The fault-injection suite's helpers: the ledger of cases, the one-line-error check, the "nothing new on
disk" check, and the tiny training run every training fault uses (tests/faults/conftest.py has the fixtures
and the summary).

Every case records itself in the ledger: a bad input per entry point ("tried", and "passed" when the command
failed cleanly: exit 2, one error line naming the problem, no traceback, nothing new on disk), a fault per
kind ("injected", and "recovered" when the resumed run's metrics equal an uninterrupted run's, or a refused
start changed nothing and the right command then resumed exactly).
"""


from __future__ import annotations

import contextlib
import json
import os
import re
import string
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from shared_fixtures import REPO_ROOT

# The placeholders of the bad-input tables that name the workdirs of `bad_workdirs` (test_bad_inputs.py): made
# from the reference training run, as is {world} (the synthetic world that run trains on).
BAD_WORKDIRS = ("empty_wd", "bad_json_wd", "list_json_wd", "no_ckpt_wd", "pretrain_wd", "damaged_wd", "gen_bad_json",
                "gen_bad_weights", "eg3d_truncated_png", "eg3d_bad_json", "eg3d_bad_labels", "eg3d_nan_labels",
                "eg3d_empty")
TRAINED_PLACEHOLDERS = frozenset({"run", "gen", "world", *BAD_WORKDIRS})


def names_trained_inputs(value) -> bool:
    """Whether a bad-input case's parameter (a command line, config overrides, a workdir: strings, lists, dicts)
    names a placeholder of `TRAINED_PLACEHOLDERS`, i.e. needs the reference training run or its world."""
    if isinstance(value, str):
        return any(field in TRAINED_PLACEHOLDERS for _, field, _, _ in string.Formatter().parse(value) if field)
    if isinstance(value, dict):
        value = list(value.values())
    return isinstance(value, (list, tuple)) and any(names_trained_inputs(v) for v in value)


# Training processes of the suite: the project's tiny CPU run (the step programs of tests/hfagp/train/test_loop.py
# `_train_cmd`, so the persistent XLA cache serves both).
TRAIN_STEPS, TUNING_START, CHECKPOINT_EVERY = 12, 6, 4


class Ledger:
    """Counts of the suite's cases (see the module doc)."""

    def __init__(self):
        self.bad_inputs = defaultdict(lambda: {"tried": 0, "passed": 0})
        self.faults = defaultdict(lambda: {"injected": 0, "recovered": 0})

    @contextlib.contextmanager
    def bad_input(self, entry_point: str):
        self.bad_inputs[entry_point]["tried"] += 1
        yield
        self.bad_inputs[entry_point]["passed"] += 1

    @contextlib.contextmanager
    def fault(self, kind: str):
        self.faults[kind]["injected"] += 1
        yield
        self.faults[kind]["recovered"] += 1

    def add(self, counts: dict) -> None:
        """Adds the counts of another ledger's `as_dict()` (a pytest-xdist worker's)."""
        for table, kinds in ((self.bad_inputs, counts["bad_inputs"]), (self.faults, counts["faults"])):
            for name, c in kinds.items():
                for key, value in c.items():
                    table[name][key] += value

    def as_dict(self) -> dict:
        return {"bad_inputs": dict(sorted(self.bad_inputs.items())), "faults": dict(sorted(self.faults.items()))}


LEDGER = Ledger()


# ------------------------------------------------------------------------------------------------- checks

def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": error: " in line]


def assert_one_line_error(code, stderr: str, name: str, expect: str) -> str:
    """A clean failure: exit code 2, no traceback, exactly one `<name>: error: ...` line, the last one, matching
    `expect` (a regex, case-insensitive) and not an unexpected exception. Returns the line."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr[-3000:]
    line = lines[0]
    assert stderr.strip().splitlines()[-1] == line, stderr[-3000:]
    assert line.startswith(f"{name}: error: "), line
    assert "unexpected " not in line, line
    assert re.search(expect, line, re.IGNORECASE), f"{line!r} does not match {expect!r}"
    assert code == 2, f"exit code {code}: {line}"
    return line


def tree(root: Path) -> set:
    """Every path under `root` (relative), with file sizes: what a failed command must leave unchanged. A
    workdir's lock file is left out: every start records itself in it (`hfagp.workdir.lock`), refused or not."""
    from hfagp.workdir import LOCK_FILE

    root = Path(root)
    if not root.exists():
        return set()
    return {(str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")
            if p.name != LOCK_FILE}


def run_main(main, argv) -> int:
    """An in-process CLI call: main's return value, or the code of the SystemExit it raised (argparse)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1


def subprocess_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    return {**env, "PYTHONUNBUFFERED": "1", "HFAGP_NO_HUGE_PAGES": "1", **extra}


def run_command(argv, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def train_args(workdir, world, extra=()) -> list[str]:
    """train.py's command line of the suite's tiny run."""
    return [sys.executable, "train.py", "--config=configs/rgb.py:cpu", f"--workdir={workdir}",
            f"--config.data.synthetic.dir={world}", "--config.progress_bar=false",
            f"--config.schedule.total_steps={TRAIN_STEPS}", f"--config.schedule.generator_tuning_start={TUNING_START}",
            "--config.log_every=1", f"--config.checkpoint.every={CHECKPOINT_EVERY}", "--config.eval.max_frames=0",
            "--config.eval_every=1000", *extra]


def tiny_config(world, **overrides):
    """The same run as `train_args`, as a config for in-process calls."""
    from configs.common import make_config, override

    cfg = make_config("rgb", "cpu")
    cfg.progress_bar = False
    cfg.data.synthetic.dir = str(world)
    cfg.schedule.total_steps = TRAIN_STEPS
    cfg.schedule.generator_tuning_start = TUNING_START
    cfg.log_every = 1
    cfg.checkpoint.every = CHECKPOINT_EVERY
    cfg.eval.max_frames = 0
    cfg.eval_every = 1000
    return override(cfg, overrides)


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def reference_losses(workdir) -> dict:
    return {m["step"]: m["loss"] for m in read_jsonl(Path(workdir) / "metrics.jsonl")}
