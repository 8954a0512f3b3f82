"""Where fixtures are found (HFAGP_SHARED_DIR) and what a missing one does (skip, or fail when required)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

PROBE = """
from shared_fixtures import EG3D_FIXTURES, require_fixtures

def test_needs_fixtures():
    assert require_fixtures() == EG3D_FIXTURES
    print("FOUND", EG3D_FIXTURES)
"""


def _run(tmp_path, **env):
    (tmp_path / "test_probe.py").write_text(PROBE)
    full = {k: v for k, v in os.environ.items() if k not in ("HFAGP_SHARED_DIR", "HFAGP_REQUIRE_FIXTURES")}
    full.update(env, PYTHONPATH=str(TESTS))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--rootdir",
                           str(tmp_path), str(tmp_path / "test_probe.py")], capture_output=True, text=True,
                          env=full, timeout=120)


def test_missing_fixtures_skip_or_fail_when_required(tmp_path):
    missing = tmp_path / "nowhere"
    skipped = _run(tmp_path, HFAGP_SHARED_DIR=str(missing))
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout
    failed = _run(tmp_path, HFAGP_SHARED_DIR=str(missing), HFAGP_REQUIRE_FIXTURES="1")
    assert failed.returncode == 1 and "1 failed" in failed.stdout
    assert f"HFAGP_REQUIRE_FIXTURES=1 and fixtures not found at {missing}/fixtures/eg3d" in failed.stdout


def test_the_shared_folder_comes_from_the_environment(tmp_path):
    shared = tmp_path / "bundle" / "shared"
    (shared / "fixtures" / "eg3d").mkdir(parents=True)
    found = _run(tmp_path, HFAGP_SHARED_DIR=str(shared), HFAGP_REQUIRE_FIXTURES="1")
    assert found.returncode == 0 and f"FOUND {shared}/fixtures/eg3d" in found.stdout, found.stdout
