"""Ctrl-C (SIGINT) at any moment of a command ends it with exactly one line, ``<command>: error: interrupted``,
exit code 130, nothing after it (no traceback of a background thread, no crash of the interpreter's shutdown) and
no checkpoint judged damaged. Interrupts land at seeded moments from the command's first output on (the phase
before, Python importing the libraries, is Python's own); the moments are printed.

Training interrupted within its steps stops at the next step boundary with a checkpoint (test_training_faults.py's
SIGTERM cases: the same handler)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from faults.harness import subprocess_env
from shared_fixtures import REPO_ROOT

SEED = int(os.environ.get("HFAGP_FAULTS_SEED", "0"))


# Starts the command with SIGINT's default disposition, as a terminal's foreground process has it (a test runner's
# worker may ignore SIGINT, and an ignored signal stays ignored across exec).
WITH_DEFAULT_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                       "os.execv(sys.executable, [sys.executable] + sys.argv[1:])")


def _interrupted_run(argv, delay: float) -> subprocess.CompletedProcess:
    """Runs `argv` (after the interpreter), sends SIGINT `delay` seconds after its first line on stderr, and waits
    for it."""
    proc = subprocess.Popen([sys.executable, "-c", WITH_DEFAULT_SIGINT, *argv], cwd=REPO_ROOT, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(argv, proc.returncode, out, first + err)


def _assert_one_interrupted_line(name: str, result: subprocess.CompletedProcess, delay: float) -> None:
    lines = [line for line in result.stderr.replace("\r", "\n").splitlines() if line.strip()]
    where = f"SIGINT {delay:.2f} s after the first output: rc {result.returncode}, stderr:\n{result.stderr[-3000:]}"
    if result.returncode == 0:  # finished before the signal arrived: nothing to check
        return
    assert result.returncode == 130, where
    assert lines[-1] == f"{name}: error: interrupted", where
    assert sum("error:" in line for line in lines) == 1 and "Traceback" not in result.stderr, where


@pytest.mark.parametrize("attempt", range(4))
def test_ctrl_c_during_an_evaluation(attempt, reference_run, tmp_path, ledger):
    delay = random.Random(SEED * 100 + attempt).uniform(0.0, 4.0)
    print(f"SIGINT {delay:.2f} s after hfagp.eval's first output")
    with ledger.fault("Ctrl-C during a command"):
        result = _interrupted_run(["-m", "hfagp.eval", str(reference_run.workdir), "--out",
                                   str(tmp_path / "eval"), "--max-frames", "4"], delay)
        _assert_one_interrupted_line("hfagp.eval", result, delay)
        assert not (reference_run.workdir / "corrupt_checkpoints").exists()


@pytest.mark.parametrize("attempt", range(2))
def test_ctrl_c_while_a_world_is_made(attempt, tmp_path, ledger):
    delay = random.Random(SEED * 100 + 50 + attempt).uniform(0.0, 3.0)
    print(f"SIGINT {delay:.2f} s after hfagp.make_world's first output")
    with ledger.fault("Ctrl-C during a command"):
        result = _interrupted_run(["-m", "hfagp.make_world", "--config=configs/rgb.py:cpu",
                                   f"--workdir={tmp_path / 'wd'}", "--config.progress_bar=false",
                                   "--config.data.synthetic.frames=400"], delay)
        _assert_one_interrupted_line("hfagp.make_world", result, delay)
