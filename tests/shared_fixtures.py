"""Where the shared fixtures live, importable from any test module.

The fixture folder is `$HFAGP_SHARED_DIR/fixtures` when that variable is set (a copy that travelled with
the checkout, e.g. `.device_bundle/shared` made by `scripts/device_bundle.py`), else `../shared/fixtures`
beside the repository. A test that needs a missing fixture skips, unless `HFAGP_REQUIRE_FIXTURES=1`:
then it fails, so a run that must check parity (the GPU device check) cannot pass by skipping.

(Test modules import this instead of `conftest`: with several conftest.py files in the tree the
name `conftest` is ambiguous.)
"""

from __future__ import annotations

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DIR_VARIABLE = "HFAGP_SHARED_DIR"
REQUIRE_VARIABLE = "HFAGP_REQUIRE_FIXTURES"
SHARED = pathlib.Path(os.environ[SHARED_DIR_VARIABLE]).expanduser().resolve() if os.environ.get(
    SHARED_DIR_VARIABLE) else REPO_ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"
EG3D_FIXTURES = FIXTURES / "eg3d"
LPIPS_FIXTURES = FIXTURES / "lpips"


def fixtures_required() -> bool:
    """True when a missing fixture must fail the test instead of skipping it (HFAGP_REQUIRE_FIXTURES=1)."""
    return os.environ.get(REQUIRE_VARIABLE, "") not in ("", "0")


def missing_fixture(what: str) -> None:
    """Skips the calling test because `what` is missing, or fails it when fixtures are required."""
    message = f"{what} (fixtures are read from {FIXTURES}; set {SHARED_DIR_VARIABLE} to the folder holding fixtures/)"
    if fixtures_required():
        pytest.fail(f"{REQUIRE_VARIABLE}=1 and {message}", pytrace=False)
    pytest.skip(message)


def require_fixtures(path: pathlib.Path = EG3D_FIXTURES) -> pathlib.Path:
    """`path` if it exists (a fixture folder or file); else skip, or fail when fixtures are required."""
    if not path.exists():
        missing_fixture(f"fixtures not found at {path}")
    return path

# The tiny head world of the face tests (tests/conftest.py's `tiny_head_world`): seed, frames (the last two held
# out), resolution, novel views.
TINY_HEAD_WORLD = {"seed": 3, "num_frames": 6, "num_test_frames": 2, "resolution": 48, "novel_views": [(20.0, 0.0)]}
