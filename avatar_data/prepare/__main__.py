"""``python -m avatar_data.prepare VIDEO OUT_DIR``: prepare a talking-head video as an HFA-GP dataset.

Exit status 0 on success (a JSON summary on stdout), 2 with one line
``avatar_data.prepare: error: <message>`` on stderr for bad input or options (nothing is written then).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from avatar_data.prepare.core import PrepareOptions, prepare_video
from hfagp_common import cli

PROG = "avatar_data.prepare"


def segment_numbers(text: str) -> tuple[int, ...]:
    """argparse type of --segment: 'I[,J...]', distinct segment numbers >= 0, in any order -> sorted tuple."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise argparse.ArgumentTypeError(f"expected segment numbers like 0 or 0,2,3, got {text!r}")
    numbers = []
    for p in parts:
        if not p.lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(f"expected segment numbers like 0 or 0,2,3, got {text!r}")
        if int(p) < 0:
            raise argparse.ArgumentTypeError(f"segment numbers must be >= 0, got {p}")
        numbers.append(int(p))
    if len(set(numbers)) != len(numbers):
        raise argparse.ArgumentTypeError(f"a segment is named twice in {text!r}")
    return tuple(sorted(numbers))


segment_numbers.bad_values = ("", "x", "-1", "1,,2", "2,2")

def build_parser() -> argparse.ArgumentParser:
    d = PrepareOptions()
    p = cli.ArgumentParser(PROG, description="Track, crop (EG3D FFHQ recipe) and label a talking-head video "
                                             "for HFA-GP training.")
    p.add_argument("video", type=cli.path, help="input video file (anything ffmpeg reads)")
    p.add_argument("out_dir", type=cli.path,
                   help="dataset directory to create (must be absent or empty; see --overwrite)")
    p.add_argument("--fps", type=cli.float_in(0, 240, lo_open=True), default=d.fps, help="output frame rate (default %(default)g)")
    p.add_argument("--resolution", type=cli.resolution, default=d.resolution, help="crop size in pixels (default %(default)d)")
    p.add_argument("--test-fraction", type=cli.fraction, default=d.test_fraction,
                   help="held-out last fraction of the frames (default %(default)g)")
    p.add_argument("--background", choices=("keep", "white"), default=d.background,
                   help="'white' replaces the background using MediaPipe's selfie segmentation (default keep)")
    p.add_argument("--masks", action="store_true", help="save segmentation masks (implied by --background white)")
    p.add_argument("--jobs", type=cli.jobs, default=d.jobs, help="threads for cropping / PNG writing (default 1)")
    p.add_argument("--expression-dim", type=cli.int_in(1, 1024), default=d.expression_dim, help="expression vector length")
    p.add_argument("--smooth-seconds", type=cli.float_in(0, 60), default=d.smooth_seconds,
                   help="Savitzky-Golay window in seconds (default %(default)g)")
    p.add_argument("--max-lost-fraction", type=cli.fraction, default=d.max_lost_fraction,
                   help="fail if more frames than this fraction have no face (default %(default)g)")
    p.add_argument("--first-face-seconds", type=cli.positive_float, default=d.first_face_seconds,
                   help="fail if no face is found within this many seconds (default %(default)g)")
    p.add_argument("--min-seconds", type=cli.non_negative_float, default=d.min_seconds,
                   help="fail for videos shorter than this (default %(default)g)")
    p.add_argument("--png-level", type=int, default=d.png_compress_level, choices=range(10), metavar="0-9",
                   help="zlib level of the frame PNGs (default 0: stored, as EG3D's; 1: ~2.7x smaller, slower)")
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--person", type=cli.int_in(0, 1000), default=None, metavar="N",
                        help="keep the segments of person N (persons numbered by their frame count; default 0, "
                             "the person with the most frames)")
    choice.add_argument("--segment", type=segment_numbers, default=None, metavar="I[,J...]",
                        help="keep exactly these segments (shots between cuts, numbered from 0 in time order; "
                             "see report/report.md)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it is an earlier prepared video")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--native-logs", action="store_true",
                   help="keep MediaPipe / TFLite's own log lines on stderr (hidden by default)")
    return p


@contextlib.contextmanager
def _native_stderr_silenced():
    """Point file descriptor 2 at /dev/null for C++ libraries (MediaPipe, TFLite print a few start-up lines
    there) while Python's sys.stderr (progress bar, errors) keeps writing to the real stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    python_stderr = sys.stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1)
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        sys.stderr.close()
        sys.stderr = python_stderr
        os.close(saved)
        os.close(devnull)


def _main(args) -> int:
    options = PrepareOptions(
        fps=args.fps, resolution=args.resolution, test_fraction=args.test_fraction, background=args.background,
        masks=args.masks, jobs=args.jobs, expression_dim=args.expression_dim, smooth_seconds=args.smooth_seconds,
        max_lost_fraction=args.max_lost_fraction, first_face_seconds=args.first_face_seconds,
        min_seconds=args.min_seconds, overwrite=args.overwrite, png_compress_level=args.png_level,
        person=args.person, segments=args.segment)
    with contextlib.nullcontext() if args.native_logs else _native_stderr_silenced():
        meta = prepare_video(args.video, args.out_dir, options, quiet=args.quiet)
    summary = {"out_dir": args.out_dir, "counts": meta["counts"], "cuts": meta["shots"]["cuts"],
               "segments": [{k: sg[k] for k in ("index", "start_frame", "end_frame", "person", "kept")}
                            for sg in meta["segments"]],
               "warnings": meta["warnings"],
               "frames_per_second": round(meta["frames_per_second"], 2), "timings_s": meta["timings_s"]}
    print(json.dumps(summary, indent=1))
    return 0


def main(argv=None) -> int:
    """The command; returns its exit status (0, or 2 with one error line; 130 when interrupted)."""
    parser = build_parser()
    # ImportError: mediapipe or OpenCV missing (the message says what to install).
    return cli.run(PROG, lambda: _main(parser.parse_args(argv)), expected=cli.EXPECTED_ERRORS + (ImportError,))


if __name__ == "__main__":
    cli.exit(main())
