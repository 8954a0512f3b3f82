"""``python -m avatar_data.worlds.heads OUT_DIR [--seed S] [--frames T] ...``: render a talking-head world."""

from __future__ import annotations

import os
import time

from avatar_data.worlds.heads import params as P
from hfagp_common import cli, limits

NAME = "avatar_data.worlds.heads"
ERROR_PREFIX = f"{NAME}: error:"


def build_parser() -> cli.ArgumentParser:
    from avatar_data.worlds.heads import world
    from avatar_data.worlds.writer import parse_novel_views

    p = cli.ArgumentParser(NAME, description="Render a procedural talking-head video world with ground truth (depth, masks, "
                            "expression and pose parameters, novel views of the test frames).")
    p.add_argument("out_dir", type=cli.path, help="directory to create (must not exist or be empty; see --overwrite)")
    p.add_argument("--seed", type=cli.seed, default=0,
                   help=f"identity and world seed (evaluation identities: {P.EVALUATION_IDENTITY_SEEDS.start}.."
                        f"{P.EVALUATION_IDENTITY_SEEDS.stop - 1})")
    p.add_argument("--frames", type=cli.int_in(2, limits.MAX_FRAMES), default=200, help="video length T at 25 fps (at least 2)")
    p.add_argument("--test-frames", type=cli.int_in(0, limits.MAX_FRAMES), default=None, help="held-out last frames (default 10%% of T)")
    p.add_argument("--resolution", type=cli.resolution, default=128)
    p.add_argument("--novel-views", type=parse_novel_views, default=list(world.DEFAULT_NOVEL_VIEWS),
                   help="YAW:PITCH degree offsets from frontal, comma-separated (default "
                        "20:0,-20:0,35:0,-35:0,0:15,0:-15; 'none' for none; write --novel-views=-20:0 if the "
                        "list starts with a minus)")
    p.add_argument("--speech", default="synthetic",
                   help="'synthetic' (default), 'espeak' (needs the espeak-ng binary) or a .wav file")
    p.add_argument("--allow-pretrain-identity", action="store_true",
                   help=f"allow a seed >= {P.PRETRAIN_IDENTITY_SEED_START} (an identity of the pretraining set)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it is an earlier world")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _main(args) -> int:
    from avatar_data.worlds.heads import speech, world

    if args.frames < 2:
        raise ValueError(f"--frames must be at least 2, got {args.frames}")
    world.check_identity_seed(args.seed, args.allow_pretrain_identity)
    if args.speech not in ("synthetic", "espeak") and not os.path.isfile(args.speech):
        raise speech.SpeechError(f"--speech must be 'synthetic', 'espeak' or a .wav file; "
                                 f"{args.speech!r} is none of them")
    t0 = time.perf_counter()
    info = world.make_head_world(
        args.out_dir, seed=args.seed, num_frames=args.frames, num_test_frames=args.test_frames,
        resolution=args.resolution, novel_views=args.novel_views, speech=args.speech,
        allow_pretrain_identity=args.allow_pretrain_identity, overwrite=args.overwrite,
        progress=not args.quiet)
    summary = {"out_dir": os.path.abspath(args.out_dir), "num_frames": info["num_frames"],
               "num_test_frames": info["num_test_frames"], "resolution": info["resolution"],
               "novel_views": len(info["novel_views_deg"]) * info["num_test_frames"],
               "beyond_training_range": sorted(info["test_expressions"]["beyond_training_range"]),
               "wall_s": round(time.perf_counter() - t0, 2), "timing_s": info["timing_s"]}
    cli.print_json(summary)


main = cli.entry_point(NAME, build_parser, _main)


if __name__ == "__main__":
    cli.exit(main())
