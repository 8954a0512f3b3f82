#!/usr/bin/env bash
# The main job on the built-in default: a head-world video of an identity the shipped prior never saw,
# HFA-GP trained on it (both stages) from the shipped prior (pretrained/heads128), then the held-out frames
# evaluated at their own and at ground-truth novel cameras (face scores and face crops included), and an orbit video
# rendered. CPU, about 6 minutes.
# Outputs go to ${1:-runs/demo}; extra arguments go to hfagp.make_world and train.py (e.g.
# --config.schedule.total_steps=100).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
workdir="${1:-runs/demo}"
shift || true
.venv/bin/python -m hfagp.make_world --config=configs/rgb.py:demo --workdir="$workdir" "$@"
.venv/bin/python train.py --config=configs/rgb.py:demo --workdir="$workdir" "$@"
.venv/bin/python -m hfagp.eval "$workdir" --quiet --num-images 15 --readback all --out "$workdir/eval"
.venv/bin/python -m hfagp.render orbit "$workdir" --frame 0 --frames 60 --yaw-range 35 --pitch-range 10 \
    --no-progress --out "$workdir/orbit.mp4"
echo "demo: $workdir/eval/summary.json (held-out same-view and novel-view PSNR/SSIM, face scores and the mouth and" \
     "eye readback over the whole video), $workdir/eval/comparisons/ (rows: the frame, then its novel views;" \
     "columns: ground truth | HFA-GP), $workdir/eval/face_crops.png (face crops by jaw_open: truth over avatar)," \
     "$workdir/orbit.mp4" >&2
