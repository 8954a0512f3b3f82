"""Faults during training, on the suite's tiny `train.py` run: after each, the resumed run's metrics.jsonl equals
the uninterrupted run's (`reference_run`) line for line.

  * SIGTERM then SIGKILL at seeded random steps (one workdir, three processes);
  * SIGTERM and then SIGKILL while an asynchronous checkpoint save is in progress (tests/faults/inject.py pauses
    the save right before its atomic rename; one workdir, three processes);
  * a checkpoint damaged after the fact (in-process resume: falls back, says so, moves it aside);
  * a full disk during a save (in-process: one line, the previous checkpoint survives, the resume is exact);
  * a second process on the same workdir (refused at once via the workdir's lock; nothing changes);
  * resuming with a changed config (refused naming the key; nothing changes; allowed with the knob).

Seeds: HFAGP_FAULTS_SEED (default 0) picks the signal steps; the steps are printed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from faults.harness import (CHECKPOINT_EVERY, TRAIN_STEPS, assert_one_line_error, read_jsonl, reference_losses,
                            subprocess_env, tiny_config, train_args, tree)
from shared_fixtures import REPO_ROOT

pytestmark = pytest.mark.slow
SEED = int(os.environ.get("HFAGP_FAULTS_SEED", "0"))
INJECT = [sys.executable, str(Path(__file__).with_name("inject.py"))]


def _assert_same_as_reference(workdir, reference):
    """metrics.jsonl has one line per step 1..TRAIN_STEPS, with the uninterrupted run's losses."""
    got = read_jsonl(Path(workdir) / "metrics.jsonl")
    want = reference_losses(reference)
    assert [m["step"] for m in got] == list(range(1, TRAIN_STEPS + 1))
    np.testing.assert_allclose([m["loss"] for m in got], [want[m["step"]] for m in got], rtol=1e-6)
    assert sorted(int(p.name) for p in (Path(workdir) / "checkpoints").iterdir() if p.name.isdigit())[-1] == \
        TRAIN_STEPS


def _logged(workdir) -> int:
    path = Path(workdir) / "metrics.jsonl"
    return len(read_jsonl(path)) if path.is_file() else 0


class Training:
    """A `train.py` process of the suite's run (optionally through tests/faults/inject.py)."""

    def __init__(self, workdir, world, env=None, inject=False):
        argv = train_args(workdir, world)
        if inject:
            argv = INJECT + argv[1:]
        self.workdir = Path(workdir)
        self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, env={**subprocess_env(), **(env or {})},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_for(self, condition, what: str, timeout: float = 900) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if condition():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"train.py ended (rc {self.proc.returncode}) before {what}: {self.proc.stderr.read()[-3000:]}")
            time.sleep(0.05)
        pytest.fail(f"timed out waiting for {what}")

    def signal(self, sig) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 900) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


def _resume_to_the_end(workdir, world) -> str:
    run = Training(workdir, world)
    code, err = run.finish()
    assert code == 0, err[-3000:]
    return err


def test_sigterm_and_sigkill_at_random_steps(reference_run, faults_world, tmp_path, ledger):
    rng = random.Random(SEED)
    workdir = tmp_path / "run"
    with ledger.fault("SIGTERM at a random step"), ledger.fault("SIGKILL at a random step"):
        first = rng.randint(1, 5)
        run = Training(workdir, faults_world)
        run.wait_for(lambda: _logged(workdir) >= first, f"step {first}")
        run.signal(signal.SIGTERM)
        code, err = run.finish()
        assert code == 0 and "stopped by signal 15" in err, err[-3000:]
        stopped = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
        assert stopped >= first  # the step the signal arrived in is finished and checkpointed

        second = rng.randint(stopped + 1, TRAIN_STEPS - 1)
        print(f"seed {SEED}: SIGTERM after step {first} (checkpoint {stopped}), SIGKILL after step {second}")
        run = Training(workdir, faults_world)
        run.wait_for(lambda: _logged(workdir) >= second, f"step {second}")
        run.signal(signal.SIGKILL)
        run.finish()
        assert _logged(workdir) < TRAIN_STEPS

        err = _resume_to_the_end(workdir, faults_world)
        assert "resumed from" in err
        _assert_same_as_reference(workdir, reference_run.workdir)


def test_sigterm_and_sigkill_during_an_async_checkpoint_save(reference_run, faults_world, tmp_path, ledger):
    workdir, marker = tmp_path / "run", tmp_path / "saving"
    with ledger.fault("SIGTERM during an async checkpoint save"), \
            ledger.fault("SIGKILL during an async checkpoint save"):
        # The save of step 4 takes 5 s before its rename; SIGTERM arrives in the middle, while steps go on.
        run = Training(workdir, faults_world, inject=True, env={
            "HFAGP_FAULT_SLOW_SAVE": str(CHECKPOINT_EVERY), "HFAGP_FAULT_MARKER": str(marker),
            "HFAGP_FAULT_SECONDS": "5"})
        run.wait_for(marker.exists, "the save of step 4")
        run.signal(signal.SIGTERM)
        code, err = run.finish()
        assert code == 0 and "stopped by signal 15" in err, err[-3000:]
        steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
        assert steps[0] == CHECKPOINT_EVERY and len(steps) == 2  # the slow save completed, then the stop's own
        marker.unlink()

        # The save of step 8 never reaches its rename; the process is killed while it waits.
        run = Training(workdir, faults_world, inject=True, env={
            "HFAGP_FAULT_SLOW_SAVE": str(2 * CHECKPOINT_EVERY), "HFAGP_FAULT_MARKER": str(marker)})
        run.wait_for(marker.exists, "the save of step 8")
        assert any(".orbax-checkpoint-tmp" in p.name for p in (workdir / "checkpoints").iterdir())
        run.signal(signal.SIGKILL)
        run.finish()
        assert not (workdir / "checkpoints" / str(2 * CHECKPOINT_EVERY)).exists()

        _resume_to_the_end(workdir, faults_world)
        assert not [p for p in (workdir / "checkpoints").iterdir() if ".orbax-checkpoint-tmp" in p.name]
        _assert_same_as_reference(workdir, reference_run.workdir)


def _copy_run(reference, dst: Path, keep_steps) -> Path:
    """A copy of the reference workdir as a run stopped after the checkpoints `keep_steps`."""
    shutil.copytree(reference, dst, ignore=shutil.ignore_patterns(".lock"))
    for p in (dst / "checkpoints").iterdir():
        if p.name.isdigit() and int(p.name) not in keep_steps:
            shutil.rmtree(p)
    (dst / "final_metrics.json").unlink()
    return dst


def _train_in_process(workdir, world, **overrides):
    from hfagp.train.loop import train_and_evaluate

    return train_and_evaluate(tiny_config(world, **overrides), str(workdir))


def test_damaged_checkpoint_falls_back_and_resumes_exactly(reference_run, faults_world, tmp_path, capsys, ledger):
    with ledger.fault("checkpoint truncated after the fact (training run)"):
        workdir = _copy_run(reference_run.workdir, tmp_path / "run", keep_steps=(4, 8))
        victim = max((p for p in (workdir / "checkpoints" / "8").rglob("*") if p.is_file()),
                     key=lambda p: p.stat().st_size)
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
        _train_in_process(workdir, faults_world)
        err = capsys.readouterr().err
        assert "checkpoint 8" in err and "is damaged" in err and "falling back to step 4" in err, err
        assert (workdir / "corrupt_checkpoints" / "8").is_dir()
        _assert_same_as_reference(workdir, reference_run.workdir)


def test_full_disk_during_a_save_keeps_the_previous_checkpoint_and_resumes_exactly(
        reference_run, faults_world, tmp_path, monkeypatch, ledger):
    import errno

    from orbax.checkpoint._src.path import atomicity

    from hfagp.runtime.checkpointing import CheckpointSaveError
    from hfagp_common.cli import error_line

    with ledger.fault("disk full during a save (training run)"):
        workdir = _copy_run(reference_run.workdir, tmp_path / "run", keep_steps=(4,))
        original = atomicity.AtomicRenameTemporaryPath.finalize

        async def finalize(self):
            if Path(str(self.get_final())).name == "8":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return await original(self)

        monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", finalize)
        with pytest.raises(CheckpointSaveError) as failure:
            _train_in_process(workdir, faults_world)
        line = error_line("train.py", failure.value)
        assert "cannot write checkpoint 8" in line and "No space left on device" in line and \
            "the last complete checkpoint is step 4" in line, line
        assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["4"]
        monkeypatch.undo()
        _train_in_process(workdir, faults_world)
        _assert_same_as_reference(workdir, reference_run.workdir)


def test_a_second_process_on_the_same_workdir_is_refused(reference_run, ledger):
    with ledger.fault("a second train.py on the same workdir"):
        second = reference_run.second
        assert_one_line_error(second.returncode, second.stderr, "train.py",
                              rf"is in use by another process \(pid {reference_run.first_pid}")
        assert reference_run.after_second == reference_run.before_second  # it wrote nothing
        _assert_same_as_reference(reference_run.workdir, reference_run.workdir)  # the first ran undisturbed


def test_resuming_with_a_changed_config_is_refused_unless_allowed(reference_run, faults_world, tmp_path, capsys,
                                                                  ledger):
    from hfagp_common import cli

    with ledger.fault("resume with a changed config"):
        workdir = _copy_run(reference_run.workdir, tmp_path / "run", keep_steps=(4, 8))
        before = tree(workdir)
        code = cli.run("train.py", lambda: _train_in_process(workdir, faults_world, **{"optim.learning_rate": 0.01}))
        assert_one_line_error(code, capsys.readouterr().err, "train.py",
                              r"changed optim\.learning_rate \(0\.001 -> 0\.01\).*resume_allow_changes")
        assert tree(workdir) == before
        _train_in_process(workdir, faults_world, **{"eval_every": 500, "log_every": 1})  # safe changes
        _assert_same_as_reference(workdir, reference_run.workdir)
        _train_in_process(workdir, faults_world, **{"optim.learning_rate": 0.01,
                                                    "checkpoint.resume_allow_changes": "optim.learning_rate"})
