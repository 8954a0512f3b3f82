"""``python -m hfagp.eval WORKDIR [--split test] [--baseline pti] [--lpips-weights W.npz] ...``

Same-view (and, on a world with ground truth, novel-view) PSNR/SSIM/LPIPS of a trained run, optionally
beside the PTI baseline; outputs in WORKDIR/eval/step_<N>/ (see `hfagp.eval.evaluate`). Prints a JSON
summary on stdout; a user error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from hfagp.precision import PRECISIONS
from hfagp_common import cli, limits

NAME = "hfagp.eval"


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(NAME, description="Same-view (and, on a world with ground truth, novel-view) "
                                             "PSNR/SSIM/LPIPS of a trained run, optionally beside a PTI baseline.")
    p.add_argument("workdir", type=cli.path, help="a training workdir (config.json + checkpoints/)")
    p.add_argument("--split", default="test", choices=("test", "train"))
    p.add_argument("--step", type=cli.step, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--out", default=None, type=cli.path, help="output directory (default WORKDIR/eval/step_<N>)")
    p.add_argument("--batch-size", type=cli.batch_size, default=4)
    p.add_argument("--max-frames", type=cli.frame_count, default=None, help="only the first N frames of the split")
    p.add_argument("--lpips-weights", default=None, type=cli.path, help="LPIPS npz (python -m convert_weights.lpips); "
                                                         "without it LPIPS is not reported")
    p.add_argument("--lpips-net", default="alex", choices=("alex", "vgg"))
    p.add_argument("--baseline", default=None, choices=("pti",), help="also run this baseline on the same frames")
    p.add_argument("--pti-config", default="official", choices=("official", "cpu_test"),
                   help="PTI hyperparameters: the official PTI values, or a few steps for smoke runs on a CPU")
    p.add_argument("--pti-w-steps", type=cli.step, default=None, help="PTI latent-inversion steps per frame")
    p.add_argument("--pti-g-steps", type=cli.step, default=None, help="PTI generator-tuning steps per frame")
    p.add_argument("--pti-lpips-weight", type=cli.non_negative_float, default=None,
                   help="weight of PTI's LPIPS loss (needs --lpips-weights; 0: L2 only)")
    p.add_argument("--pti-latent-space", default=None, choices=("w", "w+"),
                   help="PTI inverts in W (official: one code repeated over the layers) or W+")
    p.add_argument("--pti-start", default=None, choices=("mapped_mean", "w_avg"),
                   help="PTI's start code: the mean of mapped samples (official) or the w_avg buffer")
    p.add_argument("--pti-invert-distance", default=None, choices=("lpips_vgg", "l2_lpips"),
                   help="PTI's inversion distance: LPIPS-VGG at 256 (the official VGG16 feature distance's "
                        "stand-in; needs --pti-vgg-weights or --lpips-net vgg) or the tuning loss")
    p.add_argument("--pti-vgg-weights", default=None, type=cli.path,
                   help="LPIPS-VGG npz for PTI's inversion distance (python -m convert_weights.lpips --net vgg)")
    p.add_argument("--generator", default=None, type=cli.path,
                   help="the converted generator's path, if it moved since training")
    p.add_argument("--num-images", type=cli.int_in(0, limits.MAX_FRAMES), default=4, help="how many side-by-side PNGs to write")
    p.add_argument("--readback", default="split", choices=("split", "all"),
                   help="frames over which the face readback r^2 is measured (head worlds with part labels): the "
                        "evaluated ones, or every frame of the video (train and test, each at its own view)")
    p.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="float32 matmul/conv precision (default: the run's; see hfagp/precision.py)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _main(args) -> int:
    """Evaluates under the run's float32 precision (or --precision), printed first on stderr."""
    from hfagp import precision as precision_lib
    from hfagp import workdir as workdir_lib

    name = args.precision or precision_lib.of_config(workdir_lib.load_config(args.workdir))
    print(precision_lib.describe(name), file=sys.stderr)
    with precision_lib.matmul_precision(name):
        return _evaluate(args)


def _evaluate(args) -> int:
    from hfagp import workdir as workdir_lib
    from hfagp.eval.evaluate import evaluate
    from hfagp.inference import load_split, load_trained, load_video

    pti_config = None
    if args.baseline == "pti":
        from hfagp.eval.pti import PTIConfig

        overrides = {k: v for k, v in (("w_steps", args.pti_w_steps), ("g_steps", args.pti_g_steps),
                                       ("lpips_weight", args.pti_lpips_weight),
                                       ("latent_space", args.pti_latent_space), ("start", args.pti_start),
                                       ("invert_distance", args.pti_invert_distance)) if v is not None}
        pti_config = dataclasses.replace(PTIConfig.cpu_test() if args.pti_config == "cpu_test" else PTIConfig(),
                                         **overrides)
    t0 = time.perf_counter()
    workdir_lib.use_compilation_cache(workdir_lib.load_config(args.workdir))
    avatar = load_trained(args.workdir, step=args.step, generator_path=args.generator)
    frames = load_split(avatar, args.split, args.max_frames)
    readback_frames = load_video(avatar) if args.readback == "all" else None
    load_s = time.perf_counter() - t0
    out = Path(args.out) if args.out else Path(args.workdir) / workdir_lib.EVAL_DIR / f"step_{avatar.step}"
    summary = evaluate(avatar, frames, out, split=args.split, batch_size=args.batch_size,
                       lpips_weights=args.lpips_weights, lpips_net=args.lpips_net, baseline=args.baseline,
                       pti_config=pti_config, pti_vgg_weights=args.pti_vgg_weights, num_images=args.num_images,
                       readback_frames=readback_frames, progress=not args.quiet)
    print(json.dumps({"out": str(out.absolute()), "step": summary["step"], "split": args.split,
                      "num_frames": summary["num_frames"], "load_s": round(load_s, 3),
                      "metrics": summary["metrics"], "subspace_mean_deg": summary["subspace"].get("mean_deg"),
                      "timing": summary["timing"]}, indent=2))
    return 0


main = cli.entry_point(NAME, build_parser, _main)


if __name__ == "__main__":
    from hfagp_common.host import reexec_with_huge_pages

    reexec_with_huge_pages()
    cli.exit(main())
