"""The README's demo figure: held-out frames of the demo, ground truth beside the avatar trained from the shipped
prior and the same run started from a random generator.

  python scripts/demo_figure.py runs/demo runs/demo_random --frames 140,147 --out docs/images/demo/demo.png

Each run's `eval/comparisons/frame_<i>.png` (written by `hfagp.eval --out RUN/eval`) is a column pair
(ground truth | render) with one row per view (the frame's own camera, then its ground-truth novel views). The
figure keeps, per frame, the rows `--views` (default: the own view and three novel ones), and puts the columns
ground truth | prior | random generator side by side; frames follow each other left to right. Below, the prior
run's face strip (`eval/face_crops.png` of `hfagp.eval` on a head world with part labels: face crops of the
held-out frames sorted by the true jaw_open, ground truth above the avatar), scaled to the figure's width, so that
a reader sees at a glance whether the avatar's mouth and eyes move with the truth's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def comparison(run: Path, frame: int) -> np.ndarray:
    path = run / "eval" / "comparisons" / f"frame_{frame:05d}.png"
    if not path.is_file():
        raise SystemExit(f"demo_figure: {path} is missing: run python -m hfagp.eval {run} --out {run / 'eval'}")
    return np.asarray(Image.open(path).convert("RGB"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("prior_run")
    p.add_argument("random_run")
    p.add_argument("--frames", default="140,147", help="held-out frame indices, comma-separated")
    p.add_argument("--views", default="0,1,4,5", help="rows of the comparison images to keep (0: the own view; the demo's "
                   "novel views 0-5 are rows 1-6: yaw +20, -20, +35, -35, pitch +15, -15)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    frames = [int(f) for f in args.frames.split(",")]
    views = [int(v) for v in args.views.split(",")]
    blocks = []
    for frame in frames:
        a, b = comparison(Path(args.prior_run), frame), comparison(Path(args.random_run), frame)
        size = a.shape[1] // 2
        rows = []
        for v in views:
            row = slice(v * size, (v + 1) * size)
            rows.append(np.concatenate([a[row, :size], a[row, size:], b[row, size:]], axis=1))
        blocks.append(np.concatenate(rows, axis=0))
    gap = np.full((blocks[0].shape[0], 8, 3), 255, np.uint8)
    figure = np.concatenate([x for block in blocks for x in (block, gap)][:-1], axis=1)
    strip_path = Path(args.prior_run) / "eval" / "face_crops.png"
    if strip_path.is_file():
        strip = Image.open(strip_path).convert("RGB")
        height = round(strip.height * figure.shape[1] / strip.width)
        strip = np.asarray(strip.resize((figure.shape[1], height), Image.LANCZOS))
        figure = np.concatenate([figure, np.full((8, figure.shape[1], 3), 255, np.uint8), strip], axis=0)
    else:
        print(f"demo_figure: no face strip ({strip_path} is missing: the world has no part labels)", file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(figure).save(args.out, optimize=True)
    print(f"{args.out}: {figure.shape[1]}x{figure.shape[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
