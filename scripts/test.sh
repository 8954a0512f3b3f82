#!/usr/bin/env bash
# The test command: creates .venv if needed, then runs the whole pytest suite (slow tests included).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` (the quick tier) or
# `bash scripts/test.sh tests/eg3d_flax`. The tests run on HFAGP_TEST_WORKERS pytest-xdist workers (default 2, the
# CI machine's cores; 0: in this process), each running whole test files (`--dist loadfile`: a module fixture is made
# once; a session fixture once per worker that uses it), handed out in collection order, where tests/conftest.py puts
# the longest files first (`--no-loadscope-reorder`: xdist would otherwise order them by their number of tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
if .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "note: torch is importable in .venv; the no-torch guarantee is only proven where it is absent (CI)" >&2
fi
# glibc malloc with transparent huge pages, as train.py and the benchmarks use (hfagp_common/host.py):
# XLA:CPU's large temporaries stop page-faulting 4 KiB at a time (~25% faster steps).
if [ "${HFAGP_NO_HUGE_PAGES:-0}" = "0" ]; then  # same opt-out rule as hfagp_common/host.py
  export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1"
fi
exec .venv/bin/python -m pytest -n "${HFAGP_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
