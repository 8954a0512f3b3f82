"""Input-pipeline throughput: frames/s delivered by `avatar_data.pipeline.make_train_iterator` at 512x512.

Builds a synthetic EG3D-layout video (default 200 frames of 512x512 PNG) in a temporary folder, prepares
it with the tfds builder (array_record), then times the grain iterator (float32 NHWC batches in [-1, 1])
for each worker count and prints one JSON line.

The training step is the consumer to beat. Assumption stated in the output: HFA-GP trains with batch 2;
an EG3D 512 generator step with LPIPS on one H100 runs at roughly 10 steps/s at best, so it needs about
20 frames/s. The loader must exceed that with margin on the training host.

    python benchmarks/loader_throughput.py [--frames 200] [--resolution 512] [--batch-size 2] [--out loader.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfagp_common import cli, limits  # noqa: E402  (no JAX import)

NAME = "loader_throughput.py"

from avatar_data import cameras, pipeline  # noqa: E402
from avatar_data.formats.eg3d import write_eg3d_folder  # noqa: E402
from avatar_data.tfds_builder import AvatarVideoConfig, open_split, prepare_dataset  # noqa: E402

ASSUMED_STEPS_PER_S = 10.0


def synthetic_video(num_frames: int, resolution: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Photo-like frames (smooth gradients + noise, so PNGs have realistic size) and look-at labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:resolution, 0:resolution].astype(np.float32) / resolution
    frames = np.empty((num_frames, resolution, resolution, 3), np.uint8)
    for t in range(num_frames):
        phase = 2 * math.pi * t / num_frames
        base = np.stack([xx, yy, 0.5 + 0.5 * np.sin(6 * xx + phase) * np.cos(4 * yy)], -1) * 200
        frames[t] = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    t = np.arange(num_frames)
    labels = cameras.eg3d_label(
        cameras.lookat_cam2world(math.pi / 2 + 0.3 * np.sin(0.1 * t), math.pi / 2 + 0.1 * np.cos(0.07 * t)),
        cameras.FFHQ_INTRINSICS)
    return frames, labels


def measure(source, batch_size: int, workers: int, warmup: int, batches: int) -> float:
    """Frames per second over ``batches`` batches after ``warmup`` batches (startup excluded)."""
    it = pipeline.make_train_iterator(source, batch_size, seed=0, shard_index=0, shard_count=1, worker_count=workers)
    for _ in range(warmup):
        batch = next(it)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
        assert batch["image"].dtype == np.float32
    elapsed = time.perf_counter() - start
    del batch
    it.close()
    gc.collect()
    return batches * batch_size / elapsed


def main(argv=None) -> None:
    parser = cli.ArgumentParser(NAME, prog="python benchmarks/loader_throughput.py",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=cli.frame_count, default=200)
    parser.add_argument("--resolution", type=cli.resolution, default=512)
    parser.add_argument("--batch-size", type=cli.batch_size, default=2)
    parser.add_argument("--batches", type=cli.int_in(1, 100_000), default=200, help="timed batches per worker setting")
    parser.add_argument("--warmup", type=cli.int_in(0, 100_000), default=10)
    parser.add_argument("--workers", type=cli.int_in(0, limits.MAX_JOBS), nargs="+", default=[0, 2])
    parser.add_argument("--out", default=None, help="also write the JSON line here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        frames, labels = synthetic_video(args.frames, args.resolution)
        src = os.path.join(tmp, "video")
        write_eg3d_folder(src, frames, labels)
        del frames
        start = time.perf_counter()
        config = AvatarVideoConfig(name="bench", source_dir=src, source_format="eg3d",
                                   resolution=args.resolution, test_fraction=0.05)
        builder = prepare_dataset(config, os.path.join(tmp, "tfds"))
        build_s = time.perf_counter() - start
        train = open_split(builder.data_dir, "train")
        fps = {f"frames_per_s_workers{w}": round(measure(train, args.batch_size, w, args.warmup, args.batches), 1)
               for w in args.workers}
        train_frames = len(train)
        del train, builder

    required = args.batch_size * ASSUMED_STEPS_PER_S
    result = {
        "benchmark": "loader_throughput",
        "resolution": args.resolution,
        "batch_size": args.batch_size,
        "train_frames": train_frames,
        "cpu_count": os.cpu_count(),
        "prepare_s": round(build_s, 2),
        "prepare_frames_per_s": round(args.frames / build_s, 1),
        **fps,
        "assumed_train_steps_per_s": ASSUMED_STEPS_PER_S,
        "required_frames_per_s": required,
        "exceeds_requirement": all(v > required for v in fps.values()),
    }
    print(json.dumps(result))
    if args.out:
        with open(args.out, "w") as f:
            f.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(cli.run(NAME, main))  # an error in the measurement: one line, exit 2
