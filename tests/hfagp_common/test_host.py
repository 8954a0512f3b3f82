"""hfagp_common.host: when the entry points restart with the huge-page malloc tunable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hfagp_common import host


def test_tunable_added_only_where_it_changes_something():
    env = host.huge_page_environment({"PATH": "/bin"}, "madvise", libc="glibc")
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    kept = host.huge_page_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "madvise", libc="glibc")
    assert kept["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert host.huge_pages_requested(kept)
    for environ, mode, libc in [
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "madvise", "glibc"),  # the user's own choice stands
        ({host.OPT_OUT_VARIABLE: "1"}, "madvise", "glibc"),
        ({}, "always", "glibc"),  # already huge pages
        ({}, "never", "glibc"),  # no effect
        ({}, None, "glibc"),  # no THP information (not Linux)
        ({}, "madvise", ""),  # musl and others: not a glibc tunable
    ]:
        assert host.huge_page_environment(environ, mode, libc=libc) is None, (environ, mode, libc)


def test_thp_mode_parsing(tmp_path):
    f = tmp_path / "enabled"
    f.write_text("always [madvise] never\n")
    assert host.transparent_huge_page_mode(f) == "madvise"
    assert host.transparent_huge_page_mode(tmp_path / "missing") is None


def test_reexec_restarts_once_with_the_same_command_line(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "print('start', os.environ.get('GLIBC_TUNABLES', ''), sys.argv[1:], flush=True)\n"
        "from hfagp_common import host\n"
        "host.THP_SETTING = host.Path(sys.argv[1])\n"
        "host.reexec_with_huge_pages()\n"
        "print('main', host.huge_pages_requested())\n")
    thp = tmp_path / "enabled"
    thp.write_text("always [madvise] never\n")
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", host.OPT_OUT_VARIABLE)}
    out = subprocess.run([sys.executable, str(script), str(thp), "--x=1"], env=env, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    if host.platform.libc_ver()[0] != "glibc":
        assert out == ["start  ['" + str(thp) + "', '--x=1']", "main False"]
        return
    assert out == [f"start  ['{thp}', '--x=1']", f"start glibc.malloc.hugetlb=1 ['{thp}', '--x=1']", "main True"]
