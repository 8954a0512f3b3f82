"""Every repository path and `python -m` module that the code, scripts and docs name exists.

A path is a word like `hfagp_common/host.py` whose first folder is a top-level folder of the repository and whose
name ends in .py, .sh, .md or .toml; it is looked up from the repository root and from the naming file's folder.
A module is what follows `python -m` and starts with one of the project's packages.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from shared_fixtures import REPO_ROOT

PATH = re.compile(r"(?<![\w./-])((?:[\w.-]+/)+[\w.-]+\.(?:py|sh|md|toml))(?![\w/-])")
MODULE = re.compile(r"python -m ([A-Za-z_]\w*(?:\.\w+)*)")
# Paths inside other projects that happen to share a top-level folder name with this one.
EXTERNAL = {"docs/models.md"}  # EG3D's model zoo page


def _tracked(*patterns: str) -> list[str]:
    result = subprocess.run(["git", "ls-files", *patterns], cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("not a git checkout: cannot list the committed files")
    return result.stdout.split()


def _mentions(pattern: re.Pattern) -> list[tuple[str, int, str]]:
    """(file, line number, match) for every match of `pattern` in the committed code, scripts and docs."""
    found = []
    for name in _tracked("*.py", "*.md", "*.sh", "*.toml", ".ci/*"):
        text = (REPO_ROOT / name).read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            found += [(name, number, m.group(1)) for m in pattern.finditer(line)]
    return found


def test_named_paths_exist():
    top = {name.split("/")[0] for name in _tracked() if "/" in name}
    missing = [f"{name}:{number}: {path}" for name, number, path in _mentions(PATH)
               if path.split("/")[0] in top and path not in EXTERNAL
               and not (REPO_ROOT / path).exists() and not (REPO_ROOT / name).parent.joinpath(path).exists()]
    assert not missing, "\n".join(missing)


def test_python_dash_m_modules_exist():
    packages = {name.split("/")[0] for name in _tracked("*/__init__.py")}
    missing = []
    for name, number, module in _mentions(MODULE):
        if module.split(".")[0] not in packages:
            continue
        base = REPO_ROOT.joinpath(*module.split("."))
        if not ((base / "__main__.py").is_file() or base.with_suffix(".py").is_file()):
            missing.append(f"{name}:{number}: python -m {module}")
    assert not missing, "\n".join(missing)
