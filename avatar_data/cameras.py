"""Camera conventions and conversions to EG3D's 25-float camera label (pure numpy).

EG3D label convention (used everywhere in this project, never changed on the way to the model):

* ``label = concat(cam2world.reshape(16), intrinsics.reshape(9))``, both row-major.
* ``cam2world`` [4,4] maps camera coordinates to world coordinates, **OpenCV camera axes**: the rotation
  columns are (right, down, forward) -- camera +x is image right, +y is image down, +z is the viewing
  direction. The last column is the camera centre. World is y-up; EG3D's FFHQ faces look along world +z,
  and its cameras sit about 2.7 from the world origin aiming at the pivot (0, 0, 0.2).
* ``intrinsics`` [3,3] is normalised by image size: ``[[fx/W, 0, cx], [0, fy/H, cy], [0, 0, 1]]`` where the
  principal point (cx, cy) is in [0, 1] image units and pixel column ``i`` has its centre at ``(i + 0.5)/W``
  (EG3D's RaySampler). FFHQ's labels use fx = fy = 4.2647, cx = cy = 0.5 (`FFHQ_INTRINSICS`).

Source conventions handled here:

* NeRF / NeRFACE / AD-NeRF ``transform_matrix`` is a cam2world matrix in **OpenGL (Blender) camera axes**:
  x right, y up, the camera looks along -z. `opengl_to_opencv_cam2world` negates the camera y and z columns.
* Pixel intrinsics in the OpenCV convention (pixel ``i`` has its centre at coordinate ``i``; a centred camera
  has ``cx = (W - 1)/2``) convert with `focal_pixels_to_normalized_intrinsics`. NeRFACE stores
  ``[fx, fy, cx, cy]`` with cx, cy as fractions of the image size applied to integer pixel indices
  (its ray for column ``i`` is ``(i - W*cx)/fx``), i.e. OpenCV ``cx_pixels = W*cx``; AD-NeRF stores
  ``focal_len, cx, cy`` in OpenCV pixels (rays ``(i - cx)/focal``).

Note on the official HFA-GP code: its datasets negate label entries [1, 2, 5, 6, 9, 10] (OpenCV -> OpenGL)
and its generator wrapper negates them back before calling EG3D, so dataset labels reach EG3D unchanged.
This project does neither: labels are in the EG3D convention from the reader to the model.

All functions accept leading batch dimensions, never modify their inputs, and return new arrays.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence, Union

import numpy as np

ArrayLike = Union[np.ndarray, Sequence[float], float]

LABEL_DIM = 25
EG3D_PIVOT = (0.0, 0.0, 0.2)
EG3D_RADIUS = 2.7
FFHQ_FOCAL = 4.2647
FFHQ_INTRINSICS = np.array([[FFHQ_FOCAL, 0.0, 0.5], [0.0, FFHQ_FOCAL, 0.5], [0.0, 0.0, 1.0]], np.float64)

_FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


def opengl_to_opencv_cam2world(cam2world: ArrayLike) -> np.ndarray:
    """OpenGL/Blender cam2world (x right, y up, looks along -z) -> OpenCV cam2world (x right, y down, +z forward).

    Negates the camera y and z axes (rotation columns 1 and 2); the camera centre is unchanged.
    cam2world: [..., 4, 4] (or [..., 3, 4]). Returns float64 of the same shape.
    """
    m = np.asarray(cam2world, np.float64)
    flip = _FLIP_YZ[: m.shape[-1], : m.shape[-1]]
    return m @ flip


def opencv_to_opengl_cam2world(cam2world: ArrayLike) -> np.ndarray:
    """OpenCV cam2world -> OpenGL/Blender cam2world (the same axis flip; it is its own inverse)."""
    return opengl_to_opencv_cam2world(cam2world)


def focal_pixels_to_normalized_intrinsics(
    focal: ArrayLike,
    width: int,
    height: int,
    cx: Optional[float] = None,
    cy: Optional[float] = None,
) -> np.ndarray:
    """Pixel intrinsics (OpenCV convention) -> EG3D normalised intrinsics [3,3] float64.

    focal: a scalar (fx = fy) or (fx, fy), in pixels. cx, cy: principal point in OpenCV pixel coordinates
    (pixel i has its centre at i); None means the image centre, (W - 1)/2 and (H - 1)/2. Returns
    ``[[fx/W, 0, (cx + 0.5)/W], [0, fy/H, (cy + 0.5)/H], [0, 0, 1]]``, so a centred camera gets 0.5.
    """
    f = np.broadcast_to(np.asarray(focal, np.float64), (2,))
    cx = (width - 1) / 2.0 if cx is None else float(cx)
    cy = (height - 1) / 2.0 if cy is None else float(cy)
    return np.array(
        [[f[0] / width, 0.0, (cx + 0.5) / width], [0.0, f[1] / height, (cy + 0.5) / height], [0.0, 0.0, 1.0]],
        np.float64,
    )


def normalized_intrinsics_to_pixels(
    intrinsics: ArrayLike, width: int, height: int
) -> tuple[float, float, float, float]:
    """Inverse of `focal_pixels_to_normalized_intrinsics`: [3,3] -> (fx, fy, cx, cy) in OpenCV pixels."""
    k = np.asarray(intrinsics, np.float64)
    return (
        float(k[0, 0] * width),
        float(k[1, 1] * height),
        float(k[0, 2] * width - 0.5),
        float(k[1, 2] * height - 0.5),
    )


def fov_to_intrinsics(fov_degrees: float) -> np.ndarray:
    """EG3D's ``FOV_to_intrinsics``: normalised intrinsics [3,3] float64, principal point at the centre.

    Reproduces EG3D's formula exactly, ``f = 1 / (tan(fov * 3.14159 / 360) * 1.414)`` (its own constants;
    this is not the pinhole relation 1/(2 tan(fov/2))). fov 18.837 gives f = 4.26339, close to FFHQ's 4.2647.
    """
    f = 1.0 / (math.tan(fov_degrees * 3.14159 / 360.0) * 1.414)
    return np.array([[f, 0.0, 0.5], [0.0, f, 0.5], [0.0, 0.0, 1.0]], np.float64)


def cam2world_from_forward(forward: ArrayLike, origin: ArrayLike) -> np.ndarray:
    """EG3D's ``create_cam2world_matrix``: OpenCV cam2world [..., 4, 4] float64 with no roll, world y-up.

    forward: [..., 3] viewing direction (any length); origin: [..., 3] camera centre.
    Columns: right = normalize(forward x up_world), down = forward x right, forward.
    """
    fwd = np.asarray(forward, np.float64)
    fwd = fwd / np.linalg.norm(fwd, axis=-1, keepdims=True)
    up_world = np.broadcast_to(np.array([0.0, 1.0, 0.0]), fwd.shape)
    right = -np.cross(up_world, fwd)
    right = right / np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(fwd, right)
    down = down / np.linalg.norm(down, axis=-1, keepdims=True)
    origin = np.broadcast_to(np.asarray(origin, np.float64), fwd.shape)
    out = np.zeros(fwd.shape[:-1] + (4, 4), np.float64)
    out[..., :3, 0] = right
    out[..., :3, 1] = down
    out[..., :3, 2] = fwd
    out[..., :3, 3] = origin
    out[..., 3, 3] = 1.0
    return out


def lookat_cam2world(
    yaw: ArrayLike,
    pitch: ArrayLike,
    radius: float = EG3D_RADIUS,
    pivot: ArrayLike = EG3D_PIVOT,
) -> np.ndarray:
    """EG3D's ``LookAtPoseSampler.sample`` without noise: OpenCV cam2world [..., 4, 4] float64.

    yaw: azimuth in radians (pi/2 = frontal); pitch: polar angle from world +y in radians (pi/2 = level),
    clamped to [1e-5, pi - 1e-5] as in EG3D. The camera centre is
    ``radius * (sin(phi) cos(pi - yaw), cos(phi), sin(phi) sin(pi - yaw))`` with ``phi = arccos(1 - 2 pitch/pi)``:
    ``radius`` from the world origin (not from the pivot); the camera aims at ``pivot``.
    """
    yaw = np.asarray(yaw, np.float64)
    pitch = np.clip(np.asarray(pitch, np.float64), 1e-5, math.pi - 1e-5)
    phi = np.arccos(1.0 - 2.0 * pitch / math.pi)
    origin = radius * np.stack(
        [np.sin(phi) * np.cos(math.pi - yaw), np.cos(phi), np.sin(phi) * np.sin(math.pi - yaw)], axis=-1
    )
    forward = np.asarray(pivot, np.float64) - origin
    return cam2world_from_forward(forward, origin)


def eg3d_label(cam2world: ArrayLike, intrinsics: ArrayLike) -> np.ndarray:
    """OpenCV cam2world [..., 4, 4] and normalised intrinsics [..., 3, 3] -> EG3D label [..., 25] float32."""
    c2w = np.asarray(cam2world, np.float64)
    k = np.asarray(intrinsics, np.float64)
    batch = np.broadcast_shapes(c2w.shape[:-2], k.shape[:-2])
    c2w = np.broadcast_to(c2w, batch + (4, 4)).reshape(batch + (16,))
    k = np.broadcast_to(k, batch + (3, 3)).reshape(batch + (9,))
    return np.concatenate([c2w, k], axis=-1).astype(np.float32)


def split_eg3d_label(label: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """EG3D label [..., 25] -> (cam2world [..., 4, 4], intrinsics [..., 3, 3]), same dtype as the input."""
    c = np.asarray(label)
    if c.shape[-1] != LABEL_DIM:
        raise ValueError(f"an EG3D label has {LABEL_DIM} values, got shape {c.shape}")
    return c[..., :16].reshape(c.shape[:-1] + (4, 4)).copy(), c[..., 16:].reshape(c.shape[:-1] + (3, 3)).copy()


def project_to_pixels(label: ArrayLike, points: ArrayLike, resolution: int) -> np.ndarray:
    """World points [..., P, 3] seen by EG3D cameras [..., 25] -> pixel positions [..., P, 2] float64 (column,
    row) in an R x R image, OpenCV's convention: the centre of pixel i is at i (so -0.5 and R - 0.5 are the
    image's edges)."""
    c2w, k = split_eg3d_label(np.asarray(label, np.float64))
    rel = np.asarray(points, np.float64) - c2w[..., None, :3, 3]
    cam = np.einsum("...ji,...pj->...pi", c2w[..., :3, :3], rel)
    u = k[..., None, 0, 0] * cam[..., 0] / cam[..., 2] + k[..., None, 0, 1] * cam[..., 1] / cam[..., 2] + \
        k[..., None, 0, 2]
    v = k[..., None, 1, 1] * cam[..., 1] / cam[..., 2] + k[..., None, 1, 2]
    return np.stack([u, v], axis=-1) * resolution - 0.5


def camera_problems(cam2world: np.ndarray, intrinsics: np.ndarray, atol: float = 1e-3) -> list[str]:
    """Sanity checks of one camera; returns human-readable problems (empty list = fine).

    Checks: finite values, last cam2world row (0, 0, 0, 1), an orthonormal right-handed rotation (to atol),
    positive focal lengths and an intrinsics last row (0, 0, 1).
    """
    problems = []
    if not (np.all(np.isfinite(cam2world)) and np.all(np.isfinite(intrinsics))):
        return ["non-finite values (NaN or inf)"]
    if not np.allclose(cam2world[3], [0.0, 0.0, 0.0, 1.0], atol=atol):
        problems.append(f"cam2world last row is {cam2world[3].tolist()}, expected [0, 0, 0, 1]")
    rot = cam2world[:3, :3].astype(np.float64)
    if not np.allclose(rot.T @ rot, np.eye(3), atol=atol):
        problems.append("cam2world rotation is not orthonormal")
    elif np.linalg.det(rot) < 0:
        problems.append("cam2world rotation is a reflection (determinant -1)")
    if not np.allclose(intrinsics[2], [0.0, 0.0, 1.0], atol=atol):
        problems.append(f"intrinsics last row is {intrinsics[2].tolist()}, expected [0, 0, 1]")
    if intrinsics[0, 0] <= 0 or intrinsics[1, 1] <= 0:
        problems.append(f"non-positive focal length ({intrinsics[0, 0]}, {intrinsics[1, 1]})")
    return problems


def estimate_lookat_point(cam2world: ArrayLike, min_angle_degrees: float = 2.0) -> np.ndarray:
    """Least-squares point closest to all optical axes of OpenCV cameras [T, 4, 4] -> [3] float64.

    Raises ValueError when the viewing directions span less than ``min_angle_degrees`` (the axes are nearly
    parallel, so their meeting point is not defined); pass the look-at point explicitly then.
    """
    c2w = np.asarray(cam2world, np.float64)
    centres = c2w[:, :3, 3]
    dirs = c2w[:, :3, 2] / np.linalg.norm(c2w[:, :3, 2], axis=-1, keepdims=True)
    mean_dir = dirs.mean(axis=0)
    mean_dir /= np.linalg.norm(mean_dir)
    spread = np.degrees(np.arccos(np.clip(dirs @ mean_dir, -1.0, 1.0))).max()
    if spread < min_angle_degrees:
        raise ValueError(
            f"camera viewing directions span only {spread:.2f} degrees (< {min_angle_degrees}); "
            "the look-at point cannot be estimated, give it explicitly"
        )
    proj = np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]  # projects onto each axis' normal plane
    a = proj.sum(axis=0)
    b = np.einsum("tij,tj->i", proj, centres)
    return np.linalg.solve(a, b)


@dataclasses.dataclass(frozen=True)
class CameraNormalization:
    """Similarity transform that moves a tracked scene into EG3D's world frame (translation + uniform scale).

    NeRFACE / AD-NeRF cameras come from face trackers whose world units and origin differ from EG3D's. This
    maps the look-at point to ``pivot`` and scales so that the mean camera-to-look-at distance is
    ``distance``. EG3D's FFHQ cameras sit 2.7 from the world origin and aim at (0, 0, 0.2), so a frontal
    camera is 2.5 from its pivot: that is the default. ``lookat=None`` estimates the look-at point as the
    point nearest to all optical axes (`estimate_lookat_point`); that fails loudly for near-parallel axes.
    No rotation is applied: the source world must already be y-up with the face looking along +z.
    """

    lookat: Optional[tuple[float, float, float]] = None
    distance: float = EG3D_RADIUS - EG3D_PIVOT[2]
    pivot: tuple[float, float, float] = EG3D_PIVOT


def normalize_cameras(cam2world: ArrayLike, normalization: CameraNormalization) -> tuple[np.ndarray, dict]:
    """Apply a `CameraNormalization` to OpenCV cam2world [T, 4, 4] -> (new cam2world [T, 4, 4], info dict).

    ``info`` holds the applied ``lookat`` (source coordinates) and ``scale``: new_centre =
    scale * (centre - lookat) + pivot; rotations are unchanged.
    """
    c2w = np.asarray(cam2world, np.float64)
    if normalization.lookat is None:
        lookat = estimate_lookat_point(c2w)
    else:
        lookat = np.asarray(normalization.lookat, np.float64)
    dist = np.linalg.norm(c2w[:, :3, 3] - lookat, axis=-1).mean()
    if not dist > 0:
        raise ValueError("cameras are at the look-at point; cannot normalise their distance")
    scale = normalization.distance / dist
    out = c2w.copy()
    out[:, :3, 3] = scale * (c2w[:, :3, 3] - lookat) + np.asarray(normalization.pivot, np.float64)
    return out, {"lookat": lookat.tolist(), "scale": float(scale), "pivot": list(normalization.pivot)}


# ----------------------------------------------------------------------------------------------------
# Camera paths around the frontal view (the one home of every synthetic camera the project renders).

# EG3D's video/sample scripts' field of view (`FOV_to_intrinsics(18.837)`, focal 4.26339 ~ FFHQ's 4.2647).
EG3D_FOV_DEG = 18.837


def yaw_pitch_cameras(yaw_offset: ArrayLike, pitch_offset: ArrayLike, radius: float = EG3D_RADIUS,
                      pivot: ArrayLike = EG3D_PIVOT, intrinsics: ArrayLike = FFHQ_INTRINSICS) -> np.ndarray:
    """EG3D labels [..., 25] float32 for yaw/pitch offsets (radians) from the frontal view.

    yaw: azimuth (EG3D's ``LookAtPoseSampler`` horizontal angle, positive turns the camera to the subject's
    left); pitch: polar angle from world +y, a positive offset moves the camera down. The camera sits
    ``radius`` from the world origin and aims at ``pivot``.
    """
    c2w = lookat_cam2world(math.pi / 2 + np.asarray(yaw_offset, np.float64),
                           math.pi / 2 + np.asarray(pitch_offset, np.float64), radius=radius, pivot=pivot)
    return eg3d_label(c2w, intrinsics)


def frontal_camera(radius: float = EG3D_RADIUS, pivot: ArrayLike = EG3D_PIVOT,
                   intrinsics: ArrayLike = FFHQ_INTRINSICS) -> np.ndarray:
    """The frontal camera (yaw = pitch = pi/2) as a float32 [25] label."""
    return yaw_pitch_cameras(0.0, 0.0, radius, pivot, intrinsics)


def orbit_path(num_frames: int, yaw_range_deg: float = 20.0, pitch_range_deg: float = 10.0, loops: float = 1.0,
               radius: float = EG3D_RADIUS, pivot: ArrayLike = EG3D_PIVOT,
               intrinsics: Optional[ArrayLike] = None) -> np.ndarray:
    """[num_frames, 25] labels on a closed loop around the frontal view (EG3D's video path).

    Frame t has yaw ``yaw_range * sin(2 pi loops t / n)`` and pitch ``-pitch_range * cos(2 pi loops t / n)``
    (degrees from frontal; the loop starts looking from above); the last frame leads back to the first.
    pitch_range 0 gives a pure yaw sweep; both 0 a fixed frontal camera. intrinsics default to
    ``fov_to_intrinsics(EG3D_FOV_DEG)``, as EG3D's videos.
    """
    if num_frames < 1:
        raise ValueError(f"an orbit needs at least one frame, got {num_frames}")
    phase = 2.0 * math.pi * loops * np.arange(num_frames) / num_frames
    k = fov_to_intrinsics(EG3D_FOV_DEG) if intrinsics is None else intrinsics
    return yaw_pitch_cameras(np.deg2rad(yaw_range_deg) * np.sin(phase), -np.deg2rad(pitch_range_deg) * np.cos(phase),
                             radius, pivot, k)


def yaw_sweep(num_frames: int, yaw_range_deg: float = 30.0, pitch_deg: float = 0.0, radius: float = EG3D_RADIUS,
              pivot: ArrayLike = EG3D_PIVOT, intrinsics: ArrayLike = FFHQ_INTRINSICS) -> np.ndarray:
    """[num_frames, 25] labels from yaw -yaw_range to +yaw_range (evenly spaced) at a fixed pitch offset."""
    if num_frames < 1:
        raise ValueError(f"a sweep needs at least one frame, got {num_frames}")
    yaw = np.deg2rad(np.linspace(-yaw_range_deg, yaw_range_deg, num_frames))
    return yaw_pitch_cameras(yaw, np.full(num_frames, np.deg2rad(pitch_deg)), radius, pivot, intrinsics)


def bounce(labels: np.ndarray, num_frames: int) -> np.ndarray:
    """`num_frames` rows of `labels` [M, ...]: in order, then back and forth when M < num_frames."""
    m = len(labels)
    if m == 0:
        raise ValueError("no cameras to take")
    if m == 1:
        return np.repeat(labels, num_frames, 0)
    t = np.arange(num_frames) % (2 * m - 2)
    return labels[np.where(t < m, t, 2 * m - 2 - t)]
