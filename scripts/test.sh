#!/usr/bin/env bash
# The test command: creates .venv if needed, then runs the whole pytest suite (slow tests included).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow" tests/eg3d_flax`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
if .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "note: torch is importable in .venv; the no-torch guarantee is only proven where it is absent (CI)" >&2
fi
exec .venv/bin/python -m pytest "$@"
