"""Render a trained avatar: reconstructions, novel-view orbits, reenactment, basis grids, depth, meshes.

CLI (`python -m hfagp.render <command> WORKDIR ...`; `--help` on each command):

  reconstruct  a dataset split re-rendered, side by side with the input frames (official `--cat_video`)
  orbit        one frame seen from a closed yaw/pitch camera loop
  reenact      driven by a file of 3DMM expressions [N, 76] or DeepSpeech features (`aud.npy`, [N, 16, 29]),
               with the dataset's cameras, a fixed frontal camera or an orbit; a wav is muxed in with --wav
  basis        grid PNG of every basis vector at a few scales (rows: vectors, columns: scales)
  depth        depth maps of a dataset split (normalized per video)
  mesh         density grid from the tri-planes + marching cubes -> .ply / .obj

Only `reconstruct`, `depth`, `reenact --camera dataset` and `orbit`/`mesh` of a dataset frame read the
dataset; driving from coefficient/audio files and `--latent-from FILE` need just the workdir and its
generator. Videos are H.264 mp4 (the ffmpeg of the `imageio-ffmpeg` wheel) or, with `--format png`, a
folder of frames. Rendering is batched with fixed shapes (one compilation per command).

Library use:

    avatar = load_trained("runs/rgb")
    frames = render_orbit(avatar, frame_latents(avatar, "test", 0), num_frames=60)   # uint8 [60, R, R, 3]
    save_video(frames, "orbit.mp4", fps=25)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from hfagp.inference import TrainedAvatar, batched, checkpoint_steps, load_split, load_trained

PathLike = Union[str, Path]

EG3D_FOV_DEG = 18.837
DEEPSPEECH_SHAPE = (16, 29)


# ----------------------------------------------------------------------------------------------- cameras

def orbit_path(num_frames: int, yaw_range_deg: float = 20.0, pitch_range_deg: float = 10.0, loops: float = 1.0,
               fov_deg: float = EG3D_FOV_DEG, radius: float = 2.7, pivot=(0.0, 0.0, 0.2)) -> np.ndarray:
    """[num_frames, 25] EG3D labels on a closed loop around the frontal view (EG3D's video path).

    Frame t has yaw ``yaw_range * sin(2 pi loops t / n)`` and pitch ``pitch_range * cos(2 pi loops t / n)``
    (degrees from frontal; positive pitch looks from above); the last frame leads back to the first.
    pitch_range 0 gives a pure yaw sweep; both 0 a fixed frontal camera.
    """
    from avatar_data import cameras

    if num_frames < 1:
        raise ValueError(f"an orbit needs at least one frame, got {num_frames}")
    phase = 2.0 * math.pi * loops * np.arange(num_frames) / num_frames
    yaw = math.pi / 2 + np.deg2rad(yaw_range_deg) * np.sin(phase)
    pitch = math.pi / 2 - np.deg2rad(pitch_range_deg) * np.cos(phase)
    cam2world = cameras.lookat_cam2world(yaw, pitch, radius=radius, pivot=pivot)
    return cameras.eg3d_label(cam2world, cameras.fov_to_intrinsics(fov_deg)).astype(np.float32)


def frontal_cameras(num_frames: int, fov_deg: float = EG3D_FOV_DEG, radius: float = 2.7,
                    pivot=(0.0, 0.0, 0.2)) -> np.ndarray:
    """[num_frames, 25] copies of the frontal camera."""
    return orbit_path(num_frames, 0.0, 0.0, fov_deg=fov_deg, radius=radius, pivot=pivot)


def generator_orbit(avatar: TrainedAvatar, num_frames: int, **kwargs) -> np.ndarray:
    """`orbit_path` around the generator's average camera (its radius and pivot)."""
    cfg = avatar.generator.config
    return orbit_path(num_frames, radius=float(cfg.avg_camera_radius), pivot=tuple(cfg.avg_camera_pivot), **kwargs)


def bounce(labels: np.ndarray, num_frames: int) -> np.ndarray:
    """`num_frames` rows of `labels` [M, ...]: in order, then back and forth when M < num_frames."""
    m = len(labels)
    if m == 0:
        raise ValueError("no cameras to take")
    if m == 1:
        return np.repeat(labels, num_frames, 0)
    t = np.arange(num_frames) % (2 * m - 2)
    return labels[np.where(t < m, t, 2 * m - 2 - t)]


# ----------------------------------------------------------------------------------------------- rendering

@dataclasses.dataclass
class Rendered:
    """Rendered frames: images uint8 [N, R, R, 3], depth float32 [N, h, h] (world units), seconds taken."""

    images: np.ndarray
    depth: np.ndarray
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return len(self.images) / max(self.seconds, 1e-9)

    def summary(self) -> str:
        return f"{len(self.images)} frames in {self.seconds:.1f} s ({self.frames_per_second:.2f} frames/s)"


@jax.jit
def _to_output(out: dict) -> dict:
    image = jnp.clip(jnp.round((out["image"] + 1.0) * 127.5), 0, 255).astype(jnp.uint8)
    return {"image": image, "depth": out["image_depth"][..., 0]}


def render_frames(avatar: TrainedAvatar, cameras: np.ndarray, *, inputs: Optional[np.ndarray] = None,
                  ws: Optional[np.ndarray] = None, batch_size: int = 4, resolution: Optional[int] = None,
                  desc: Optional[str] = "render", progress: bool = True) -> Rendered:
    """Render N frames from encoder `inputs` [N, ...] or W+ latents `ws` ([N | 1, num_ws, w_dim]) and
    `cameras` [N, 25], in fixed-size batches (the last one padded: one compilation).

    resolution: the neural rendering resolution (default: the generator's).
    """
    cameras = np.asarray(cameras, np.float32)
    if cameras.ndim != 2 or cameras.shape[1] != 25:
        raise ValueError(f"cameras must be [N, 25] EG3D labels, got {cameras.shape}")
    if (inputs is None) == (ws is None):
        raise ValueError("pass exactly one of inputs (encoder inputs) or ws (latents)")
    n = len(cameras)
    if n == 0:
        raise ValueError("no frames to render (0 cameras)")
    if ws is not None:
        ws = np.asarray(ws, np.float32)
        if ws.ndim != 3:
            raise ValueError(f"ws must be [N, num_ws, w_dim], got {ws.shape}")
        if len(ws) == 1 and n > 1:
            ws = np.broadcast_to(ws, (n,) + ws.shape[1:])
        source = ws
        fn = lambda w, c: _to_output(avatar.synthesis(w, c, neural_rendering_resolution=resolution))
    else:
        source = np.asarray(inputs, np.float32)
        fn = lambda x, c: _to_output(avatar.render(x, c, neural_rendering_resolution=resolution))
    if len(source) != n:
        raise ValueError(f"{len(source)} inputs/latents but {n} cameras")
    batch_size = max(1, min(int(batch_size), n))
    start = time.perf_counter()
    out = batched(fn, [source, cameras], batch_size, desc=desc, progress=progress)
    return Rendered(out["image"], out["depth"].astype(np.float32), time.perf_counter() - start)


def resize_frames(frames: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """uint8 [N, H, W, C] -> [N, size, size, C] (unchanged when already that size)."""
    from PIL import Image

    if frames.shape[1:3] == (size, size):
        return frames
    mode = Image.NEAREST if nearest else Image.BILINEAR
    out = [np.asarray(Image.fromarray(f.squeeze(-1) if f.shape[-1] == 1 else f).resize((size, size), mode))
           for f in frames]
    return np.stack(out).reshape(len(frames), size, size, frames.shape[-1])


def depth_frames(depth: np.ndarray, size: Optional[int] = None, bounds: Optional[tuple] = None) -> np.ndarray:
    """Depth [N, h, h] -> uint8 grey frames [N, size, size, 3], normalized over the whole video:
    nearest (min over all frames, or bounds[0]) white, farthest (bounds[1]) black."""
    depth = np.asarray(depth, np.float32)
    lo, hi = (float(depth.min()), float(depth.max())) if bounds is None else bounds
    grey = np.clip((hi - depth) / max(hi - lo, 1e-8), 0.0, 1.0)
    frames = np.round(grey * 255.0).astype(np.uint8)[..., None]
    if size is not None:
        frames = resize_frames(frames, size)
    return np.repeat(frames, 3, axis=-1)


def with_depth(rendered: Rendered) -> np.ndarray:
    """Images with their normalized depth maps beside them: uint8 [N, R, 2R, 3]."""
    size = rendered.images.shape[1]
    return np.concatenate([rendered.images, depth_frames(rendered.depth, size)], axis=2)


# ----------------------------------------------------------------------------------------------- latents

def frame_latents(avatar: TrainedAvatar, split: str = "test", frame: int = 0) -> np.ndarray:
    """W+ [1, num_ws, w_dim] of frame `frame` (time order) of a dataset split, through the encoder."""
    data = load_split(avatar, split, max_frames=None)
    inputs = data[avatar.input_key]
    if not 0 <= frame < len(inputs):
        raise IndexError(f"frame {frame} is out of range: the {split} split has {len(inputs)} frames")
    return np.asarray(avatar.latents(inputs[frame:frame + 1]))


def _load_npy(path: Path, what: str) -> np.ndarray:
    """An array from a .npy file (pickles refused); errors name `what`."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{path}: not a .npy array file ({e})") from e


def latents_from_file(avatar: TrainedAvatar, path: PathLike) -> np.ndarray:
    """W+ [1, num_ws, w_dim] from a .npy holding W+ latents ([num_ws, w_dim] or [1, num_ws, w_dim]) or
    prior coefficients ([k] or [1, k])."""
    path = Path(path)
    value = np.asarray(_load_npy(path, f"latent file {path}"), np.float32)
    num_ws, w_dim, k = avatar.generator.config.num_ws, avatar.generator.config.w_dim, avatar.k
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{path}: non-finite values (NaN/inf)")
    if value.shape in ((num_ws, w_dim), (1, num_ws, w_dim)):
        return value.reshape(1, num_ws, w_dim)
    if value.shape in ((k,), (1, k)):
        return np.asarray(avatar.latents_from_coefficients(value.reshape(1, k)))
    raise ValueError(f"{path}: shape {value.shape} is neither W+ latents [{num_ws}, {w_dim}] (or [1, {num_ws}, "
                     f"{w_dim}]) nor the run's {k} prior coefficients [{k}]")


def _run_latents(avatar: TrainedAvatar, latent_from: Optional[PathLike], split: str, frame: int) -> np.ndarray:
    if latent_from:
        return latents_from_file(avatar, latent_from)
    return frame_latents(avatar, split, frame)


# ----------------------------------------------------------------------------------------------- driving signals

def load_driving_signal(avatar: TrainedAvatar, path: PathLike, kind: str) -> np.ndarray:
    """A checked driving signal from a .npy file: 'expression' [N, E] or 'audio' [N, 16, 29] float32.

    Raises ValueError naming the file when the run's encoder reads another signal, the shape is wrong
    or values are not finite.
    """
    if kind not in ("expression", "audio"):
        raise ValueError(f"driving signal kind must be 'expression' or 'audio', got {kind!r}")
    flag = "--expression" if kind == "expression" else "--audio"
    if avatar.encoder_kind != kind:
        raise ValueError(f"{flag} {path}: this run ({avatar.workdir}) was trained with the "
                         f"{avatar.encoder_kind!r} encoder; a {kind} file needs a run trained with the "
                         f"{kind!r} encoder")
    path = Path(path)
    signal = _load_npy(path, f"{flag}: {path}")
    if not np.issubdtype(signal.dtype, np.number):
        raise ValueError(f"{path}: expected numbers, got dtype {signal.dtype}")
    signal = np.asarray(signal, np.float32)
    if kind == "expression":
        dim = int(dict(avatar.config.model.encoder_kwargs).get("in_dim", 76))
        if signal.ndim != 2 or signal.shape[1] != dim:
            raise ValueError(f"{path}: expression coefficients must be [N, {dim}], got {signal.shape}")
    elif signal.ndim != 3 or signal.shape[1:] != DEEPSPEECH_SHAPE:
        raise ValueError(f"{path}: DeepSpeech features must be [N, 16, 29] (AD-NeRF's aud.npy), "
                         f"got {signal.shape}")
    if len(signal) == 0:
        raise ValueError(f"{path}: no frames")
    bad = np.nonzero(~np.all(np.isfinite(signal.reshape(len(signal), -1)), axis=1))[0]
    if len(bad):
        raise ValueError(f"{path}: non-finite values (NaN/inf) in frames {bad[:10].tolist()}")
    return signal


def driving_inputs(avatar: TrainedAvatar, signal: np.ndarray) -> np.ndarray:
    """Encoder inputs from a driving signal in time order: the signal itself, or for an audio run with
    temporal smoothing the [N, W, 16, 29] windows of neighbouring frames (zero beyond the ends)."""
    if avatar.input_key == "audio_window":
        from avatar_data.readers import audio_windows

        window = int(dict(avatar.config.model.encoder_kwargs).get("smoothing_window", 8))
        return audio_windows(np.asarray(signal, np.float32), window).astype(np.float32)
    return np.asarray(signal, np.float32)


# ----------------------------------------------------------------------------------------------- products

def render_reconstruction(avatar: TrainedAvatar, split: str = "test", max_frames: Optional[int] = None,
                          depth: bool = False, side_by_side: bool = True,
                          **render_kwargs) -> tuple[np.ndarray, Rendered]:
    """Re-render a dataset split with its cameras: frames uint8 [N, R, (2|3)R, 3] = input | render (| depth)."""
    data = load_split(avatar, split, max_frames=max_frames)
    if len(data["label"]) == 0:
        raise ValueError(f"the {split} split of {avatar.workdir} has no frames")
    rendered = render_frames(avatar, data["label"], inputs=data[avatar.input_key], **render_kwargs)
    columns = []
    size = rendered.images.shape[1]
    if side_by_side:
        from hfagp.summaries import to_uint8

        columns.append(resize_frames(to_uint8(data["image"]), size))
    columns.append(rendered.images)
    if depth:
        columns.append(depth_frames(rendered.depth, size))
    return np.concatenate(columns, axis=2), rendered


def render_orbit(avatar: TrainedAvatar, ws: np.ndarray, num_frames: int = 60, yaw_range_deg: float = 20.0,
                 pitch_range_deg: float = 10.0, loops: float = 1.0, fov_deg: float = EG3D_FOV_DEG,
                 depth: bool = False, **render_kwargs) -> tuple[np.ndarray, Rendered]:
    """One avatar (ws [1, num_ws, w_dim]) on a closed camera loop: frames uint8 [n, R, R | 2R, 3]."""
    cams = generator_orbit(avatar, num_frames, yaw_range_deg=yaw_range_deg, pitch_range_deg=pitch_range_deg,
                           loops=loops, fov_deg=fov_deg)
    rendered = render_frames(avatar, cams, ws=np.asarray(ws, np.float32).reshape(1, *np.shape(ws)[-2:]),
                             **render_kwargs)
    return (with_depth(rendered) if depth else rendered.images), rendered


def reenactment_cameras(avatar: TrainedAvatar, num_frames: int, camera: str = "frontal", split: str = "test",
                        yaw_range_deg: float = 20.0, pitch_range_deg: float = 10.0, orbit_frames: Optional[int] = None,
                        fov_deg: float = EG3D_FOV_DEG) -> np.ndarray:
    """[num_frames, 25]: 'dataset' (the split's cameras in order, back and forth if the signal is longer),
    'frontal', or 'orbit' (one loop per `orbit_frames`, default one loop over the whole video)."""
    if camera == "dataset":
        return bounce(load_split(avatar, split)["label"].astype(np.float32), num_frames)
    if camera == "frontal":
        return generator_orbit(avatar, num_frames, yaw_range_deg=0.0, pitch_range_deg=0.0, fov_deg=fov_deg)
    if camera == "orbit":
        period = orbit_frames or num_frames
        return generator_orbit(avatar, num_frames, yaw_range_deg=yaw_range_deg, pitch_range_deg=pitch_range_deg,
                               loops=num_frames / period, fov_deg=fov_deg)
    raise ValueError(f"camera must be 'dataset', 'frontal' or 'orbit', got {camera!r}")


def render_reenactment(avatar: TrainedAvatar, signal: np.ndarray, cameras: np.ndarray, depth: bool = False,
                       **render_kwargs) -> tuple[np.ndarray, Rendered]:
    """Drive the avatar with a signal in time order (expression [N, E] or audio [N, 16, 29]) seen by
    `cameras` [N, 25]: frames uint8 [N, R, R | 2R, 3]."""
    rendered = render_frames(avatar, cameras, inputs=driving_inputs(avatar, signal), **render_kwargs)
    return (with_depth(rendered) if depth else rendered.images), rendered


def basis_scales(scale: float, steps: int = 3) -> np.ndarray:
    """`steps` evenly spaced scales in [-scale, scale] (odd steps include 0, the offset)."""
    if steps < 2:
        raise ValueError(f"a basis grid needs at least 2 scales, got {steps}")
    return np.linspace(-scale, scale, steps).astype(np.float32)


def render_basis_grid(avatar: TrainedAvatar, scale: float, steps: int = 3, max_vectors: Optional[int] = None,
                      fov_deg: float = EG3D_FOV_DEG, **render_kwargs) -> tuple[np.ndarray, Rendered]:
    """Grid uint8 [k R, steps R, 3] of offset + s * basis_i, frontal camera: row i = basis vector i,
    columns = `basis_scales(scale, steps)`."""
    from hfagp.summaries import image_grid

    scales = basis_scales(scale, steps)
    per_scale = np.stack([np.asarray(avatar.basis_ws(float(s))) for s in scales], axis=1)  # [k, S, num_ws, w_dim]
    if max_vectors is not None:
        per_scale = per_scale[:max_vectors]
    k = per_scale.shape[0]
    ws = per_scale.reshape(k * len(scales), *per_scale.shape[2:])
    cams = generator_orbit(avatar, len(ws), yaw_range_deg=0.0, pitch_range_deg=0.0, fov_deg=fov_deg)
    rendered = render_frames(avatar, cams, ws=ws, **render_kwargs)
    return image_grid(rendered.images, columns=len(scales)), rendered


def render_depth(avatar: TrainedAvatar, split: str = "test", max_frames: Optional[int] = None,
                 full_size: bool = True, **render_kwargs) -> tuple[np.ndarray, Rendered]:
    """Depth maps of a dataset split with its cameras: uint8 [N, s, s, 3], normalized over the video;
    s = the image resolution (full_size) or the neural rendering resolution."""
    data = load_split(avatar, split, max_frames=max_frames)
    rendered = render_frames(avatar, data["label"], inputs=data[avatar.input_key], **render_kwargs)
    size = rendered.images.shape[1] if full_size else None
    return depth_frames(rendered.depth, size), rendered


def export_mesh(avatar: TrainedAvatar, ws: np.ndarray, path: PathLike, resolution: int = 128,
                threshold: Union[float, str] = 10.0, percentile: float = 95.0, border: Optional[int] = None,
                progress: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """Write the mesh of one avatar (ws [1, num_ws, w_dim]) to a .ply/.obj: (vertices, faces, threshold)."""
    from hfagp import mesh

    vertices, faces, used = mesh.avatar_mesh(avatar.generator, ws, resolution, threshold, percentile, border,
                                             progress=progress)
    mesh.write_mesh(path, vertices, faces)
    return vertices, faces, used


# ----------------------------------------------------------------------------------------------- output

def save_video(frames: np.ndarray, out: PathLike, fps: float = 25.0, fmt: str = "mp4",
               audio: Optional[PathLike] = None) -> Path:
    """uint8 [N, H, W, 3] -> an mp4 (fmt 'mp4', with `audio` muxed in) or a folder of pngs (fmt 'png')."""
    from hfagp import video

    if fmt == "png":
        if audio is not None:
            raise ValueError("a wav can only be muxed into an mp4 (--format mp4)")
        return video.write_frames(out, frames)
    if fmt != "mp4":
        raise ValueError(f"format must be 'mp4' or 'png', got {fmt!r}")
    return video.write_video(out, frames, fps=fps, audio=audio)


def _out_path(args, name: str, ext: str) -> Path:
    if args.out:
        return Path(args.out)
    return Path(args.workdir) / "renders" / f"{name}_step{args.loaded_step}{ext}"


def _video_path(args, name: str) -> Path:
    return _out_path(args, name, ".mp4" if args.format == "mp4" else "")


# ----------------------------------------------------------------------------------------------- CLI

def load_avatar(workdir: PathLike, step: Optional[int] = None, generator_path: Optional[str] = None) -> TrainedAvatar:
    """`load_trained`, remembered within the process for repeated commands on the same run (tests,
    notebooks); a new checkpoint or an edited config.json loads afresh."""
    workdir = Path(workdir).resolve()
    steps = checkpoint_steps(workdir)
    config = workdir / "config.json"
    stamp = (steps[-1] if steps else None, config.stat().st_mtime_ns if config.is_file() else None)
    return _load_avatar_cached(str(workdir), step, generator_path or None, stamp)


@functools.lru_cache(maxsize=2)
def _load_avatar_cached(workdir: str, step: Optional[int], generator_path: Optional[str], stamp) -> TrainedAvatar:
    return load_trained(workdir, step=step, generator_path=generator_path)


def _common(parser: argparse.ArgumentParser, video: bool = True) -> None:
    parser.add_argument("workdir", help="training workdir (config.json + checkpoints/)")
    parser.add_argument("--out", default="", help="output path (default: WORKDIR/renders/<command>_step<N>...)")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument("--generator", default="", help="converted generator directory, if it moved since training")
    parser.add_argument("--batch-size", type=int, default=4, help="frames per rendering batch")
    parser.add_argument("--neural-rendering-resolution", type=int, default=None,
                        help="volume rendering resolution (default: the generator's)")
    parser.add_argument("--fps", type=float, default=25.0, help="video frame rate")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    if video:
        parser.add_argument("--format", choices=("mp4", "png"), default="mp4",
                            help="an mp4 video or a folder of png frames")


def _camera_options(parser: argparse.ArgumentParser, default_frames: Optional[int]) -> None:
    if default_frames is not None:
        parser.add_argument("--frames", type=int, default=default_frames, help="number of orbit frames")
    parser.add_argument("--yaw-range", type=float, default=20.0, help="orbit yaw amplitude, degrees")
    parser.add_argument("--pitch-range", type=float, default=10.0, help="orbit pitch amplitude, degrees")
    parser.add_argument("--fov", type=float, default=EG3D_FOV_DEG,
                        help="field of view of the synthetic cameras, degrees")


def _frame_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", choices=("test", "train"), default="test", help="dataset split of --frame")
    parser.add_argument("--frame", type=int, default=0, help="frame index (time order) in the split")
    parser.add_argument("--latent-from", default="",
                        help=".npy with W+ latents [num_ws, w_dim] or k prior coefficients (no dataset needed)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hfagp.render", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("reconstruct", help="re-render a dataset split beside its input frames")
    _common(p)
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--depth", action="store_true", help="add a depth column")
    p.add_argument("--render-only", action="store_true", help="only the rendering, no input column")

    p = sub.add_parser("orbit", help="one frame seen from a closed yaw/pitch camera loop")
    _common(p)
    _frame_options(p)
    _camera_options(p, default_frames=60)
    p.add_argument("--loops", type=float, default=1.0, help="loops around the path")
    p.add_argument("--depth", action="store_true", help="add a depth column")

    p = sub.add_parser("reenact", help="drive the avatar from expression coefficients or DeepSpeech features")
    _common(p)
    signal = p.add_mutually_exclusive_group(required=True)
    signal.add_argument("--expression", default="", help=".npy of 3DMM expression coefficients [N, 76]")
    signal.add_argument("--audio", default="", help="AD-NeRF aud.npy, DeepSpeech features [N, 16, 29]")
    p.add_argument("--camera", choices=("dataset", "frontal", "orbit"), default="frontal",
                   help="dataset: the split's cameras in order (back and forth when the signal is longer; "
                        "reads the dataset); frontal: fixed; orbit: a closed yaw/pitch loop")
    p.add_argument("--split", choices=("test", "train"), default="test", help="cameras of --camera dataset")
    p.add_argument("--orbit-frames", type=int, default=None, help="frames per orbit loop (default: the video)")
    _camera_options(p, default_frames=None)
    p.add_argument("--max-frames", type=int, default=None, help="only the first frames of the signal")
    p.add_argument("--wav", default="", help="audio to mux into the mp4")
    p.add_argument("--depth", action="store_true", help="add a depth column")

    p = sub.add_parser("basis", help="grid PNG of each basis vector at -scale .. +scale")
    _common(p, video=False)
    p.add_argument("--scale", type=float, default=None,
                   help="largest coefficient (default: the run's eval.basis_scale)")
    p.add_argument("--steps", type=int, default=3, help="scales per vector (columns)")
    p.add_argument("--max-vectors", type=int, default=None)
    p.add_argument("--fov", type=float, default=EG3D_FOV_DEG)

    p = sub.add_parser("depth", help="depth maps of a dataset split (normalized per video)")
    _common(p)
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--max-frames", type=int, default=None)

    p = sub.add_parser("mesh", help="marching-cubes mesh of one frame's avatar")
    _common(p, video=False)
    _frame_options(p)
    p.add_argument("--resolution", type=int, default=128, help="density grid resolution per axis")
    p.add_argument("--threshold", default="10",
                   help="density iso-level (EG3D: 10), or 'auto': the --percentile of the grid's densities")
    p.add_argument("--percentile", type=float, default=95.0, help="percentile used by --threshold auto")
    p.add_argument("--border", type=int, default=None, help="voxels trimmed at each face (default: EG3D's 30/256)")
    p.add_argument("--mesh-format", choices=("ply", "obj"), default=None,
                   help="file format (default: from --out's extension, else ply)")
    return parser


def _threshold(value: str) -> Union[float, str]:
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise SystemExit(f"--threshold must be a number or 'auto', got {value!r}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
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
            raise SystemExit("--wav needs --format mp4")
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
        from hfagp.summaries import save_png

        out = _out_path(args, "basis", ".png")
        save_png(out, grid)
    elif args.command == "depth":
        frames, rendered = render_depth(avatar, args.split, args.max_frames, desc="depth", **render_kwargs)
        out = save_video(frames, _video_path(args, f"depth_{args.split}"), args.fps, args.format)
    elif args.command == "mesh":
        fmt = args.mesh_format or (Path(args.out).suffix.lstrip(".").lower() if args.out else "") or "ply"
        if fmt not in ("ply", "obj"):
            raise SystemExit(f"--out {args.out}: the mesh format must be ply or obj")
        name = "mesh_latent" if args.latent_from else f"mesh_{args.split}{args.frame}"
        out = _out_path(args, name, "." + fmt)
        if args.out and out.suffix.lower() != "." + fmt:
            out = out.with_suffix("." + fmt)
        ws = _run_latents(avatar, args.latent_from, args.split, args.frame)
        start = time.perf_counter()
        vertices, faces, used = export_mesh(avatar, ws, out, args.resolution, _threshold(args.threshold),
                                            args.percentile, args.border, progress=not args.no_progress)
        log(f"{len(vertices)} vertices, {len(faces)} faces at density {used:g} ({args.resolution}^3 grid, "
            f"{time.perf_counter() - start:.1f} s)")
        print(out)
        return 0
    log(rendered.summary())
    print(out)
    return 0


if __name__ == "__main__":
    from hfagp.host import reexec_with_huge_pages

    reexec_with_huge_pages()
    sys.exit(main())
