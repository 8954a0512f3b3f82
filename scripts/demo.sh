#!/usr/bin/env bash
# The main job on the built-in default: a synthetic monocular video made by a small random EG3D
# generator, then both HFA-GP training stages on CPU. Outputs go to ${1:-runs/demo}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
workdir="${1:-runs/demo}"
shift || true
exec .venv/bin/python train.py --config=configs/rgb.py:cpu --workdir="$workdir" "$@"
