"""Pictures of the head world: ``python -m avatar_data.worlds.heads.sheet OUT.png [--strip STRIP.png]``.

The contact sheet has one row per evaluation identity and the columns `SHEET_COLUMNS`: neutral, jaw open,
smile, blink + brows up, pucker + gaze to the side, camera yaw +35 deg, camera yaw -60 deg, and a view from
above, all at the neutral head pose. The strip shows `STRIP_FRAMES` frames of a talking video
(`avatar_data.worlds.heads.world.video_parameters`), every `STRIP_STEP`-th frame, two rows of eight.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from avatar_data import cameras
from avatar_data.worlds.heads import params as P
from hfagp_common import cli

SHEET_COLUMNS = (
    ("neutral", {}, (0.0, 0.0)),
    ("jaw open", {"jaw_open": 1.0}, (0.0, 0.0)),
    ("smile", {"smile": 1.0}, (0.0, 0.0)),
    ("blink + brows", {"blink_l": 1.0, "blink_r": 1.0, "brow_raise": 1.0}, (0.0, 0.0)),
    ("pucker + gaze", {"pucker": 1.0, "gaze_x": 1.0}, (0.0, 0.0)),
    ("yaw +35", {}, (35.0, 0.0)),
    ("yaw -60", {}, (-60.0, 0.0)),
    ("from above", {}, (0.0, -25.0)),
)
STRIP_FRAMES = 16
STRIP_STEP = 3


def sheet_images(seeds, resolution: int = 128, supersample: int = 2) -> np.ndarray:
    """uint8 [len(seeds), len(SHEET_COLUMNS), R, R, 3]."""
    from avatar_data.worlds.heads import render

    idents, exprs, labels = [], [], []
    for seed in seeds:
        ident = P.sample_identity(seed)
        for _, values, (yaw, pitch) in SHEET_COLUMNS:
            idents.append(ident.vector)
            exprs.append(P.expression(**values))
            labels.append(cameras.yaw_pitch_cameras(np.radians(yaw), np.radians(pitch)))
    n = len(labels)
    out = render.render(np.stack(idents), np.stack(exprs), np.zeros((n, P.POSE_DIM), np.float32),
                        np.stack(labels), resolution=resolution, supersample=supersample)
    return out["rgb"].reshape(len(seeds), len(SHEET_COLUMNS), resolution, resolution, 3)


def strip_images(seed: int, resolution: int = 128, supersample: int = 2) -> np.ndarray:
    """uint8 [STRIP_FRAMES, R, R, 3]: frames 0, STRIP_STEP, ... of the talking video of `seed`."""
    from avatar_data.worlds.heads import render, world

    num_frames = STRIP_FRAMES * STRIP_STEP
    video = world.video_parameters(seed, num_frames, num_test_frames=0, speech="synthetic")
    take = np.arange(0, num_frames, STRIP_STEP)
    ident = P.sample_identity(seed).vector
    out = render.render(ident, video["expression"][take], video["pose"][take],
                        np.repeat(cameras.frontal_camera()[None], len(take), axis=0),
                        resolution=resolution, supersample=supersample)
    return out["rgb"]


def tile(images: np.ndarray) -> np.ndarray:
    """uint8 [rows, cols, R, R, 3] -> [rows * R, cols * R, 3]."""
    rows, cols, r, _, _ = images.shape
    return images.transpose(0, 2, 1, 3, 4).reshape(rows * r, cols * r, 3)


def save_png(path: str, image: np.ndarray, bits: int = 8) -> None:
    """uint8 [H, W, 3] -> PNG; bits < 8 clears the lowest 8 - bits bits of every value (smaller files; 7 bits
    are at most 1/255 off, which no eye sees on these renders)."""
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
    Image.fromarray(np.asarray(image, np.uint8) & mask).save(path, optimize=True)


# Identities on one contact sheet (rows).
MAX_SHEET_SEEDS = 256


def parse_seeds(text: str) -> list[int]:
    """'0-7' -> [0, ..., 7]; '3,5,9' -> [3, 5, 9]; seeds in [0, MAX_IDENTITY_SEED], at most MAX_SHEET_SEEDS."""
    try:
        if "-" in text.strip("-"):
            a, b = (int(x) for x in text.split("-", 1))
            if b - a >= MAX_SHEET_SEEDS:
                raise argparse.ArgumentTypeError(f"at most {MAX_SHEET_SEEDS} seeds on a sheet, got {text!r}")
            seeds = list(range(a, b + 1))
        else:
            seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad seeds {text!r}: expected A-B or a comma-separated list") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"no seeds in {text!r}")
    if len(seeds) > MAX_SHEET_SEEDS or not all(0 <= s <= P.MAX_IDENTITY_SEED for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds must be in [0, {P.MAX_IDENTITY_SEED}], at most {MAX_SHEET_SEEDS} of "
                                         f"them, got {text!r}")
    return seeds


parse_seeds.bad_values = ("", "x", "5-2", "-3", "0-100000", "0,1,-1", "3000000000")


NAME = "avatar_data.worlds.heads.sheet"


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(NAME, description="Contact sheet (identities x expressions and views) of the head world.")
    p.add_argument("out", type=cli.path, help="PNG to write")
    p.add_argument("--seeds", type=parse_seeds, default=list(range(8)),
                   help="evaluation identity seeds, 'A-B' or comma-separated (default 0-7)")
    p.add_argument("--resolution", type=cli.resolution, default=128)
    p.add_argument("--strip", default=None, type=cli.path,
                   help="also write a 16-frame talking-video strip of the first seed")
    p.add_argument("--bits", type=cli.int_in(1, 8), default=8, help="bits per channel stored in the PNGs (7 makes smaller files)")
    return p


def _main(args) -> int:
    seeds = args.seeds
    for path in filter(None, (args.out, args.strip)):
        if not Path(path).absolute().parent.is_dir():
            raise FileNotFoundError(f"{path}: its folder {Path(path).absolute().parent} does not exist")
    t0 = time.perf_counter()
    save_png(args.out, tile(sheet_images(seeds, args.resolution)), args.bits)
    print(f"{args.out}: {len(seeds)} x {len(SHEET_COLUMNS)} images in {time.perf_counter() - t0:.1f} s")
    if args.strip:
        t0 = time.perf_counter()
        frames = strip_images(seeds[0], args.resolution)
        save_png(args.strip, tile(frames.reshape(2, STRIP_FRAMES // 2, *frames.shape[1:])), args.bits)
        print(f"{args.strip}: {STRIP_FRAMES} frames in {time.perf_counter() - t0:.1f} s")
    return 0


main = cli.entry_point(NAME, build_parser, _main)


if __name__ == "__main__":
    cli.exit(main())
