"""Rendering a trained avatar: reconstructions, novel-view orbits, reenactment, basis grids, depth, meshes.

Library side of ``python -m hfagp.render`` (`hfagp.render.__main__`). Rendering is batched with fixed
shapes (one compilation per product). Camera paths come from `avatar_data.cameras`.

    avatar = load_trained("runs/rgb")
    frames, rendered = render_orbit(avatar, frame_latents(avatar, "test", 0), num_frames=60)  # uint8 [60,R,R,3]
    save_video(frames, "orbit.mp4", fps=25)
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Optional, Union

import jax
import numpy as np

from avatar_data import cameras
from avatar_data.cameras import EG3D_FOV_DEG
from avatar_data.formats.common import AUDIO_FEATURE_SHAPE
from hfagp import model as model_lib
from hfagp.inference import TrainedAvatar, load_split, load_split_cameras
from hfagp_common.batching import batched
from hfagp_common.images import image_grid, to_uint8

PathLike = Union[str, Path]


# ----------------------------------------------------------------------------------------------- cameras

def generator_orbit(avatar: TrainedAvatar, num_frames: int, fov_deg: float = EG3D_FOV_DEG, **kwargs) -> np.ndarray:
    """`cameras.orbit_path` around the generator's average camera (its radius and pivot)."""
    cfg = avatar.generator.config
    return cameras.orbit_path(num_frames, radius=float(cfg.avg_camera_radius), pivot=tuple(cfg.avg_camera_pivot),
                              intrinsics=cameras.fov_to_intrinsics(fov_deg), **kwargs)


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
    return {"image": to_uint8(out["image"]), "depth": out["image_depth"][..., 0]}


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
        raise ValueError(f"frame {frame} is out of range: the {split} split has {len(inputs)} frames "
                         f"(--frame 0..{len(inputs) - 1})")
    return np.asarray(avatar.latents(inputs[frame:frame + 1]))


def load_npy(path: Path, what: str) -> np.ndarray:
    """An array from a .npy file (pickles refused); errors name `what`."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} does not exist")
    try:
        value = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a .npy array file ({type(e).__name__}: {e or 'empty'})") from None
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{path}: not a .npy array file (an .npz archive?)")
    if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
        raise ValueError(f"{path}: holds {value.dtype} values, not numbers")
    return value


def latents_from_file(avatar: TrainedAvatar, path: PathLike) -> np.ndarray:
    """W+ [1, num_ws, w_dim] from a .npy holding W+ latents ([num_ws, w_dim] or [1, num_ws, w_dim]) or
    prior coefficients ([k] or [1, k])."""
    path = Path(path)
    value = np.asarray(load_npy(path, f"latent file {path}"), np.float32)
    num_ws, w_dim, k = avatar.generator.config.num_ws, avatar.generator.config.w_dim, avatar.k
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{path}: non-finite values (NaN/inf)")
    if value.shape in ((num_ws, w_dim), (1, num_ws, w_dim)):
        return value.reshape(1, num_ws, w_dim)
    if value.shape in ((k,), (1, k)):
        return np.asarray(avatar.latents_from_coefficients(value.reshape(1, k)))
    raise ValueError(f"{path}: shape {value.shape} is neither W+ latents [{num_ws}, {w_dim}] (or [1, {num_ws}, "
                     f"{w_dim}]) nor the run's {k} prior coefficients [{k}]")


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
    signal = load_npy(path, f"{flag}: {path}")
    if not np.issubdtype(signal.dtype, np.number):
        raise ValueError(f"{path}: expected numbers, got dtype {signal.dtype}")
    signal = np.asarray(signal, np.float32)
    if kind == "expression":
        dim = int(dict(avatar.spec.encoder_kwargs).get("in_dim", 76))
        if signal.ndim != 2 or signal.shape[1] != dim:
            raise ValueError(f"{path}: expression coefficients must be [N, {dim}], got {signal.shape}")
    elif signal.ndim != 3 or signal.shape[1:] != AUDIO_FEATURE_SHAPE:
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
    if avatar.input_key == model_lib.AUDIO_WINDOW_KEY:
        from avatar_data.formats.common import audio_windows

        window = avatar.spec.smoothing_window
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
        return cameras.bounce(load_split_cameras(avatar, split), num_frames)
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
    from hfagp.render import mesh

    vertices, faces, used = mesh.avatar_mesh(avatar.generator, ws, resolution, threshold, percentile, border,
                                             progress=progress)
    mesh.write_mesh(path, vertices, faces)
    return vertices, faces, used


# ----------------------------------------------------------------------------------------------- output

def save_video(frames: np.ndarray, out: PathLike, fps: float = 25.0, fmt: str = "mp4",
               audio: Optional[PathLike] = None) -> Path:
    """uint8 [N, H, W, 3] -> an mp4 (fmt 'mp4', with `audio` muxed in) or a folder of pngs (fmt 'png')."""
    from hfagp.render import video

    if fmt == "png":
        if audio is not None:
            raise ValueError("a wav can only be muxed into an mp4 (--format mp4)")
        return video.write_frames(out, frames)
    if fmt != "mp4":
        raise ValueError(f"format must be 'mp4' or 'png', got {fmt!r}")
    return video.write_video(out, frames, fps=fps, audio=audio)
