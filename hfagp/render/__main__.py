"""Render a trained avatar: ``python -m hfagp.render <command> WORKDIR ...`` (``--help`` on each command).

  reconstruct  a dataset split re-rendered, side by side with the input frames (official `--cat_video`)
  orbit        one frame seen from a closed yaw/pitch camera loop
  reenact      driven by a file of 3DMM expressions [N, E] or audio features (`aud.npy`, [N, 16, 29]),
               with the dataset's cameras, a fixed frontal camera or an orbit; a wav is muxed in with --wav
  basis        grid PNG of every basis vector at a few scales (rows: vectors, columns: scales)
  depth        depth maps of a dataset split (normalized per video)
  mesh         density grid from the tri-planes + marching cubes -> .ply / .obj

Only `reconstruct`, `depth`, `reenact --camera dataset` and `orbit`/`mesh` of a dataset frame read the
dataset; driving from coefficient/audio files and `--latent-from FILE` need just the workdir and its
generator. Videos are H.264 mp4 (the ffmpeg of the `imageio-ffmpeg` wheel) or, with `--format png`, a
folder of frames. Outputs go to WORKDIR/renders/ unless --out is given; a user error is one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from pathlib import Path
from typing import Optional, Union

from avatar_data.cameras import EG3D_FOV_DEG
from hfagp import precision as precision_lib
from hfagp import workdir as workdir_lib
from hfagp.inference import TrainedAvatar, load_trained
from hfagp.render.frames import (export_mesh, latents_from_file, frame_latents, load_driving_signal,
                                 reenactment_cameras, render_basis_grid, render_depth, render_orbit,
                                 render_reconstruction, render_reenactment, save_video)
from hfagp_common import cli, limits
from hfagp_common.images import save_png

NAME = "hfagp.render"


def _out_path(args, name: str, ext: str) -> Path:
    if args.out:
        return Path(args.out)
    return Path(args.workdir) / workdir_lib.RENDERS_DIR / f"{name}_step{args.loaded_step}{ext}"


def _video_path(args, name: str) -> Path:
    return _out_path(args, name, ".mp4" if args.format == "mp4" else "")


def _run_latents(avatar: TrainedAvatar, latent_from, split: str, frame: int):
    if latent_from:
        return latents_from_file(avatar, latent_from)
    return frame_latents(avatar, split, frame)


def load_avatar(workdir, step: Optional[int] = None, generator_path: Optional[str] = None) -> TrainedAvatar:
    """`load_trained`, remembered within the process for repeated commands on the same run (tests,
    notebooks); a new checkpoint or an edited config.json loads afresh."""
    workdir = Path(workdir).resolve()
    steps = workdir_lib.checkpoint_steps(workdir)
    config = workdir / workdir_lib.CONFIG_FILE
    stamp = (steps[-1] if steps else None, config.stat().st_mtime_ns if config.is_file() else None)
    return _load_avatar_cached(str(workdir), step, generator_path or None, stamp)


@functools.lru_cache(maxsize=2)
def _load_avatar_cached(workdir: str, step: Optional[int], generator_path: Optional[str], stamp) -> TrainedAvatar:
    return load_trained(workdir, step=step, generator_path=generator_path)


def _common(parser: cli.ArgumentParser, video: bool = True) -> None:
    parser.add_argument("workdir", type=cli.path, help="training workdir (config.json + checkpoints/)")
    parser.add_argument("--out", type=cli.optional_path, default="", help="output path (default: WORKDIR/renders/<command>_step<N>...)")
    parser.add_argument("--step", type=cli.step, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument("--generator", type=cli.optional_path, default="", help="converted generator directory, if it moved since training")
    parser.add_argument("--batch-size", type=cli.batch_size, default=4, help="frames per rendering batch")
    parser.add_argument("--neural-rendering-resolution", type=cli.resolution, default=None,
                        help="volume rendering resolution (default: the generator's)")
    parser.add_argument("--fps", type=cli.float_in(0, 240, lo_open=True), default=25.0, help="video frame rate")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--precision", default=None, choices=precision_lib.PRECISIONS,
                        help="float32 matmul/conv precision (default: the run's; see hfagp/precision.py)")
    if video:
        parser.add_argument("--format", choices=("mp4", "png"), default="mp4",
                            help="an mp4 video or a folder of png frames")


def _camera_options(parser: cli.ArgumentParser, default_frames: Optional[int]) -> None:
    if default_frames is not None:
        parser.add_argument("--frames", type=cli.frame_count, default=default_frames, help="number of orbit frames")
    parser.add_argument("--yaw-range", type=cli.finite_float, default=20.0, help="orbit yaw amplitude, degrees")
    parser.add_argument("--pitch-range", type=cli.finite_float, default=10.0, help="orbit pitch amplitude, degrees")
    parser.add_argument("--fov", type=field_of_view, default=EG3D_FOV_DEG,
                        help="field of view of the synthetic cameras, degrees (0 < FOV < 180)")


def _frame_options(parser: cli.ArgumentParser) -> None:
    parser.add_argument("--split", choices=("test", "train"), default="test", help="dataset split of --frame")
    parser.add_argument("--frame", type=cli.frame_index, default=0, help="frame index (time order) in the split")
    parser.add_argument("--latent-from", type=cli.optional_path, default="",
                        help=".npy with W+ latents [num_ws, w_dim] or k prior coefficients (no dataset needed)")


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(NAME, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("reconstruct", help="re-render a dataset split beside its input frames")
    _common(p)
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--max-frames", type=cli.frame_count, default=None)
    p.add_argument("--depth", action="store_true", help="add a depth column")
    p.add_argument("--render-only", action="store_true", help="only the rendering, no input column")

    p = sub.add_parser("orbit", help="one frame seen from a closed yaw/pitch camera loop")
    _common(p)
    _frame_options(p)
    _camera_options(p, default_frames=60)
    p.add_argument("--loops", type=cli.float_in(0, 1000, lo_open=True), default=1.0, help="loops around the path")
    p.add_argument("--depth", action="store_true", help="add a depth column")

    p = sub.add_parser("reenact", help="drive the avatar from expression coefficients or DeepSpeech features")
    _common(p)
    signal = p.add_mutually_exclusive_group(required=True)
    signal.add_argument("--expression", type=cli.optional_path, default="", help=".npy of 3DMM expression coefficients [N, 76]")
    signal.add_argument("--audio", type=cli.optional_path, default="", help="AD-NeRF aud.npy, DeepSpeech features [N, 16, 29]")
    p.add_argument("--camera", choices=("dataset", "frontal", "orbit"), default="frontal",
                   help="dataset: the split's cameras in order (back and forth when the signal is longer; "
                        "reads the dataset); frontal: fixed; orbit: a closed yaw/pitch loop")
    p.add_argument("--split", choices=("test", "train"), default="test", help="cameras of --camera dataset")
    p.add_argument("--orbit-frames", type=cli.frame_count, default=None, help="frames per orbit loop (default: the video)")
    _camera_options(p, default_frames=None)
    p.add_argument("--max-frames", type=cli.frame_count, default=None, help="only the first frames of the signal")
    p.add_argument("--wav", type=cli.optional_path, default="", help="audio to mux into the mp4")
    p.add_argument("--depth", action="store_true", help="add a depth column")

    p = sub.add_parser("basis", help="grid PNG of each basis vector at -scale .. +scale")
    _common(p, video=False)
    p.add_argument("--scale", type=cli.finite_float, default=None,
                   help="largest coefficient (default: the run's eval.basis_scale)")
    p.add_argument("--steps", type=cli.int_in(1, 64), default=3, help="scales per vector (columns)")
    p.add_argument("--max-vectors", type=cli.int_in(1, 10_000), default=None, help="only the first basis vectors (rows)")
    p.add_argument("--fov", type=field_of_view, default=EG3D_FOV_DEG, help="field of view, degrees (0 < FOV < 180)")

    p = sub.add_parser("depth", help="depth maps of a dataset split (normalized per video)")
    _common(p)
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--max-frames", type=cli.frame_count, default=None)

    p = sub.add_parser("mesh", help="marching-cubes mesh of one frame's avatar")
    _common(p, video=False)
    _frame_options(p)
    p.add_argument("--resolution", type=cli.grid_resolution, default=128, help="density grid resolution per axis")
    p.add_argument("--threshold", type=density_threshold, default=10.0,
                   help="density iso-level (EG3D: 10), or 'auto': the --percentile of the grid's densities")
    p.add_argument("--percentile", type=cli.float_in(0, 100), default=95.0, help="percentile used by --threshold auto")
    p.add_argument("--border", type=cli.int_in(0, limits.MAX_GRID_RESOLUTION // 2), default=None,
                   help="voxels trimmed at each face (default: EG3D's 30/256)")
    p.add_argument("--mesh-format", choices=("ply", "obj"), default=None,
                   help="file format (default: from --out's extension, else ply)")
    return parser


def field_of_view(text: str) -> float:
    """argparse type: a field of view in degrees, 0 < FOV < 180."""
    value = cli.finite_float(text)
    if not 0.0 < value < 180.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 180 degrees, got {text}")
    return value


field_of_view.bad_values = ("0", "180", "-5", "nan", "x")


def density_threshold(value: str) -> Union[float, str]:
    """argparse type: a finite density, or 'auto' (a percentile of the grid's densities)."""
    if value == "auto":
        return value
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or 'auto', got {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be a finite number or 'auto', got {value!r}")
    return number


density_threshold.bad_values = ("x", "nan", "inf", "")


def _check_out(args) -> None:
    """Refuses an --out the command cannot write, before anything is rendered."""
    if not args.out:
        return
    out = Path(args.out)
    video = getattr(args, "format", None) == "mp4" and args.command in ("reconstruct", "orbit", "reenact", "depth")
    if (video or args.command in ("basis", "mesh")) and out.is_dir():
        raise ValueError(f"--out {out} is a directory; give a file path"
                         + (" (or --format png for a folder of frames)" if video else ""))
    if not out.parent.is_dir() and out.parent.exists():
        raise ValueError(f"--out {out}: {out.parent} is not a directory")


def _main(args) -> int:
    """Renders under the run's float32 precision (or --precision), printed first on stderr."""
    _check_out(args)
    name = args.precision or precision_lib.of_config(workdir_lib.load_config(args.workdir))
    print(precision_lib.describe(name), file=sys.stderr)
    with precision_lib.matmul_precision(name):
        return _render(args)


def _render(args) -> int:
    avatar = load_avatar(args.workdir, step=args.step, generator_path=args.generator or None)
    args.loaded_step = avatar.step
    render_kwargs = dict(batch_size=args.batch_size, resolution=args.neural_rendering_resolution,
                         progress=not args.no_progress)
    log = functools.partial(print, file=sys.stderr)

    if args.command == "reconstruct":
        frames, rendered = render_reconstruction(avatar, args.split, args.max_frames, depth=args.depth,
                                                 side_by_side=not args.render_only, desc="reconstruct",
                                                 **render_kwargs)
        out = save_video(frames, _video_path(args, f"reconstruct_{args.split}"), args.fps, args.format)
    elif args.command == "orbit":
        ws = _run_latents(avatar, args.latent_from, args.split, args.frame)
        frames, rendered = render_orbit(avatar, ws, args.frames, args.yaw_range, args.pitch_range, args.loops,
                                        args.fov, depth=args.depth, desc="orbit", **render_kwargs)
        name = "orbit_latent" if args.latent_from else f"orbit_{args.split}{args.frame}"
        out = save_video(frames, _video_path(args, name), args.fps, args.format)
    elif args.command == "reenact":
        kind, path = ("expression", args.expression) if args.expression else ("audio", args.audio)
        if args.wav and args.format != "mp4":
            raise ValueError("--wav needs --format mp4")
        if args.wav and not Path(args.wav).is_file():
            raise FileNotFoundError(f"--wav {args.wav} does not exist")
        signal = load_driving_signal(avatar, path, kind)[:args.max_frames]
        cams = reenactment_cameras(avatar, len(signal), args.camera, args.split, args.yaw_range, args.pitch_range,
                                   args.orbit_frames, args.fov)
        frames, rendered = render_reenactment(avatar, signal, cams, depth=args.depth, desc="reenact",
                                              **render_kwargs)
        out = save_video(frames, _video_path(args, f"reenact_{kind}_{args.camera}"), args.fps, args.format,
                         audio=args.wav or None)
    elif args.command == "basis":
        scale = float(avatar.config.eval.basis_scale) if args.scale is None else args.scale
        grid, rendered = render_basis_grid(avatar, scale, args.steps, args.max_vectors, args.fov, desc="basis",
                                           **render_kwargs)
        out = _out_path(args, "basis", ".png")
        save_png(out, grid)
    elif args.command == "depth":
        frames, rendered = render_depth(avatar, args.split, args.max_frames, desc="depth", **render_kwargs)
        out = save_video(frames, _video_path(args, f"depth_{args.split}"), args.fps, args.format)
    elif args.command == "mesh":
        fmt = args.mesh_format or (Path(args.out).suffix.lstrip(".").lower() if args.out else "") or "ply"
        if fmt not in ("ply", "obj"):
            raise ValueError(f"--out {args.out}: the mesh format must be ply or obj")
        name = "mesh_latent" if args.latent_from else f"mesh_{args.split}{args.frame}"
        out = _out_path(args, name, "." + fmt)
        if args.out and out.suffix.lower() != "." + fmt:
            out = out.with_suffix("." + fmt)
        ws = _run_latents(avatar, args.latent_from, args.split, args.frame)
        start = time.perf_counter()
        vertices, faces, used = export_mesh(avatar, ws, out, args.resolution, args.threshold,
                                            args.percentile, args.border, progress=not args.no_progress)
        log(f"{len(vertices)} vertices, {len(faces)} faces at density {used:g} ({args.resolution}^3 grid, "
            f"{time.perf_counter() - start:.1f} s)")
        print(out)
        return 0
    log(rendered.summary())
    print(out)
    return 0


main = cli.entry_point(NAME, build_parser, _main)


if __name__ == "__main__":
    from hfagp_common.host import reexec_with_huge_pages

    reexec_with_huge_pages()
    cli.exit(main())
