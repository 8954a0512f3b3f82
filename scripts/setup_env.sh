#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv. Used by the demo and test commands.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml scripts/setup_env.sh | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[data,render,prepare,test]"
  # MediaPipe 0.10.14 (the last release whose wheel ships the face models) pins protobuf<5, which would
  # downgrade grain/tensorflow-metadata; it runs with the newer protobuf through avatar_data/prepare/tracking.py.
  .venv/bin/python -m pip install --quiet --no-deps "mediapipe==0.10.14"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
