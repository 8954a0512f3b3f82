"""Where the shared fixtures live (../shared beside the repo), importable from any test module.

(Test modules import this instead of `conftest`: with several conftest.py files in the tree the
name `conftest` is ambiguous.)
"""

from __future__ import annotations

import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
EG3D_FIXTURES = SHARED / "fixtures" / "eg3d"
LPIPS_FIXTURES = SHARED / "fixtures" / "lpips"


def require_fixtures(path: pathlib.Path = EG3D_FIXTURES) -> pathlib.Path:
    if not path.is_dir():
        pytest.skip(f"fixtures not found at {path} (they live in ../shared beside the repo)")
    return path
