"""Host-process settings that the entry points apply before JAX starts.

Transparent huge pages for host memory: XLA:CPU (and PyTorch) allocate their large temporaries
with glibc `malloc`, which maps every block of 32 MB or more freshly from the kernel and returns
it afterwards, so each training step page-faults its working set in again, 4 KiB at a time. Where
the kernel gives huge pages only on request (`/sys/kernel/mm/transparent_hugepage/enabled` says
`[madvise]`, the common default), the glibc tunable `glibc.malloc.hugetlb=1` (glibc >= 2.35) makes
malloc request them. Measured on the 2-core CPU of docs/benchmarks.md: tiny128 training step
1.02 -> 0.93 s (stage 1) and 1.40 -> 1.07 s (stage 2); the PyTorch baseline gains as much, so
the benchmark gives both sides the same setting.

glibc reads tunables only at process start, so `reexec_with_huge_pages()` restarts the process
(same interpreter and command line) with the tunable added. Set HFAGP_NO_HUGE_PAGES=1 to opt out.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Mapping, Optional

HUGE_PAGE_TUNABLE = "glibc.malloc.hugetlb=1"
OPT_OUT_VARIABLE = "HFAGP_NO_HUGE_PAGES"
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def transparent_huge_page_mode(setting: Optional[Path] = None) -> Optional[str]:
    """The kernel's THP mode ('always' | 'madvise' | 'never'), or None where it cannot be read."""
    try:
        text = (setting or THP_SETTING).read_text()
    except OSError:
        return None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return None


def huge_page_environment(environ: Mapping[str, str], thp_mode: Optional[str],
                          libc: Optional[str] = None) -> Optional[dict]:
    """The environment to restart with so malloc asks for huge pages, or None when that would
    change nothing (opted out, not glibc, THP 'always'/'never'/unknown, tunable already set).
    `libc` defaults to this interpreter's (`platform.libc_ver`, read only when needed)."""
    if environ.get(OPT_OUT_VARIABLE, "") not in ("", "0") or thp_mode != "madvise":
        return None
    if (libc if libc is not None else platform.libc_ver()[0]) != "glibc":
        return None
    tunables = environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in tunables:
        return None
    env = dict(environ)
    env["GLIBC_TUNABLES"] = f"{tunables}:{HUGE_PAGE_TUNABLE}" if tunables else HUGE_PAGE_TUNABLE
    return env


def huge_pages_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process started with the huge-page malloc tunable."""
    return HUGE_PAGE_TUNABLE in environ.get("GLIBC_TUNABLES", "").split(":")


def reexec_with_huge_pages() -> None:
    """Restarts this process with `glibc.malloc.hugetlb=1` when that helps (see module doc).

    Call first thing in a script's `__main__` block, before JAX or torch is imported. Returns
    normally (doing nothing) when there is nothing to change; otherwise does not return.
    """
    env = huge_page_environment(os.environ, transparent_huge_page_mode())
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(sys.orig_argv), env)
