"""The closing summary of the fault-injection suite (a plugin: tests/conftest.py loads it).

The session ends with a table of the ledger's counts (`faults.harness.LEDGER`): bad inputs tried and passed per
entry point, faults injected and recovered per kind; with $HFAGP_FAULTS_SUMMARY set, also as JSON in that file
(docs/reliability.md keeps the counts). Under pytest-xdist each worker sends its ledger to the controller, which
adds them up.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from faults.harness import LEDGER

SUMMARY_VARIABLE = "HFAGP_FAULTS_SUMMARY"
WORKER_OUTPUT_KEY = "faults_ledger"


def pytest_sessionfinish(session):
    worker_output = getattr(session.config, "workeroutput", None)  # set on pytest-xdist workers only
    if worker_output is not None:
        worker_output[WORKER_OUTPUT_KEY] = LEDGER.as_dict()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist, on the controller: a worker finished; add its ledger."""
    counts = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
    if counts:
        LEDGER.add(counts)


def pytest_terminal_summary(terminalreporter):
    counts = LEDGER.as_dict()
    if not counts["bad_inputs"] and not counts["faults"]:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault injection")
    if counts["bad_inputs"]:
        write(f"{'entry point':<34} {'bad inputs tried':>16} {'passed':>8}")
        for name, c in counts["bad_inputs"].items():
            write(f"{name:<34} {c['tried']:>16} {c['passed']:>8}")
        tried = sum(c["tried"] for c in counts["bad_inputs"].values())
        passed = sum(c["passed"] for c in counts["bad_inputs"].values())
        write(f"{'all':<34} {tried:>16} {passed:>8}")
    if counts["faults"]:
        write(f"{'fault':<58} {'injected':>8} {'recovered':>10}")
        for name, c in counts["faults"].items():
            write(f"{name:<58} {c['injected']:>8} {c['recovered']:>10}")
    path = os.environ.get(SUMMARY_VARIABLE)
    if path:
        Path(path).write_text(json.dumps(counts, indent=2) + "\n")
