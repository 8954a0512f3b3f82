"""Head pose of a face mesh in an EG3D crop, and its EG3D camera label.

1. `solve_head_pose`: ``cv2.solvePnP`` of the 468 mesh landmarks (2D, in the crop) against MediaPipe's
   canonical face (3D, cm) with EG3D's intrinsics (focal ``FFHQ_FOCAL * resolution`` px, principal point at
   the crop centre): world-to-camera ``(R, t)`` in OpenCV axes (x right, y down, z forward), canonical units.
2. `eg3d_cam2world`: the camera in EG3D's world, as EG3D's ``dataset_preprocessing/ffhq/3dface2idr_mat.py``
   does with Deep3DFaceRecon's pose, followed by ``preprocess_face_cameras.py`` ``fix_pose_orig`` (its
   in-the-wild ``--mode orig``):

   * the canonical face is first put into Deep3DFaceRecon's BFM frame (decimetres, origin at its recentred
     mean face) by the similarity that maps the canonical face's five alignment points onto Deep3DFaceRecon's
     five standard points (`canonical_to_bfm`); both frames are y-up with the face looking along +z;
   * camera centre ``c = -R^T t`` (3dface2idr: ``c = -R . trans`` with Deep3DFaceRecon's camera 10 units away),
     then ``c *= 0.27; c[1] += 0.006; c[2] += 0.161`` (3dface2idr's "normalize camera radius" and "additional
     offset used in submission"), then ``c = 2.7 c / |c|`` (fix_pose_orig);
   * rotation: the OpenCV cam2world rotation ``R^T`` (3dface2idr builds the same from Deep3DFaceRecon's
     OpenGL-style camera with ``R . diag(1, -1, -1)``; PnP is in OpenCV axes already).

   The label is ``eg3d_label(cam2world, FFHQ_INTRINSICS)`` (`avatar_data.cameras`), focal 4.2647 =
   2985.29 / 700 (fix_intrinsics).

These poses come from a landmark PnP, not from Deep3DFaceRecon's photometric 3DMM fit: expect offsets of a
few degrees from the poses EG3D's FFHQ labels would give for the same image.
"""

from __future__ import annotations

import functools

import numpy as np

from avatar_data import cameras
from avatar_data.prepare import alignment, canonical_face

# 3dface2idr_mat.py: c *= 0.27; c[1] += 0.006; c[2] += 0.161. preprocess_face_cameras.py fix_pose_orig: radius 2.7.
EG3D_CENTRE_SCALE = 0.27
EG3D_CENTRE_OFFSET = np.array([0.0, 0.006, 0.161])
EG3D_CAMERA_RADIUS = cameras.EG3D_RADIUS
CM_PER_BFM_UNIT = 10.0

NUM_MESH_POINTS = 468


def umeyama(src: np.ndarray, dst: np.ndarray, weights=None, with_scale: bool = True):
    """Weighted least-squares similarity ``dst ~ scale * rot @ src + trans`` (Umeyama 1991).

    src, dst: [N, 3]; weights: [N] (default uniform). Returns (scale, rot [3, 3], trans [3]); ``rot`` is a
    proper rotation (det +1).
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = float(w @ (xs ** 2).sum(axis=1))
    scale = float((sig * d).sum() / var_s) if with_scale else 1.0
    return scale, rot, mu_d - scale * rot @ mu_s


@functools.lru_cache(maxsize=1)
def canonical_to_bfm() -> tuple[float, np.ndarray, np.ndarray]:
    """(scale, rot, trans) mapping canonical-face cm onto Deep3DFaceRecon's BFM frame (dm): X_bfm = s R X + t.

    Fit on the five alignment points of the canonical mesh against `alignment.STANDARD_FIVE_POINTS`
    (residuals 0.9-1.4 mm, rotation 0.7 deg, scale 0.0984 dm/cm).
    """
    five = alignment.five_points(canonical_face.VERTICES)
    return umeyama(five, alignment.STANDARD_FIVE_POINTS)


def intrinsics_matrix(resolution: int) -> np.ndarray:
    """EG3D's FFHQ intrinsics in pixels of a ``resolution`` crop [3, 3] (principal point at the centre).

    The centre is ``resolution / 2`` in the corner-origin coordinates of `avatar_data.prepare.alignment`
    (EG3D's normalised 0.5; pixel i's centre at (i + 0.5) / W).
    """
    f = cameras.FFHQ_FOCAL * resolution
    c = resolution / 2.0
    return np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])


def solve_head_pose(points_2d: np.ndarray, resolution: int, model_points: np.ndarray = None):
    """World-to-camera pose of the canonical face from its landmarks in an EG3D crop.

    points_2d: [468, 2] crop pixels (corner origin, y down). model_points: [468, 3] (default the canonical
    face, cm). Returns (rot [3, 3], trans [3] in model units, rms reprojection error in px).
    SQPnP (globally optimal) followed by Levenberg-Marquardt refinement.
    """
    import cv2

    model = canonical_face.VERTICES if model_points is None else np.asarray(model_points, np.float64)
    img = np.ascontiguousarray(np.asarray(points_2d, np.float64)[:NUM_MESH_POINTS])
    obj = np.ascontiguousarray(model[:NUM_MESH_POINTS])
    k = intrinsics_matrix(resolution)
    ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise ValueError("solvePnP failed")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, k, None, rvec, tvec)
    rot, _ = cv2.Rodrigues(rvec)
    proj, _ = cv2.projectPoints(obj, rvec, tvec, k, None)
    rms = float(np.sqrt(((proj.reshape(-1, 2) - img) ** 2).sum(axis=1).mean()))
    return rot, tvec.reshape(3), rms


def eg3d_cam2world(rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Canonical-face world-to-camera (rot [3, 3], trans [3] cm) -> EG3D OpenCV cam2world [4, 4] float64.

    See the module docstring for the steps (3dface2idr_mat.py + fix_pose_orig).
    """
    s, r_fit, t_fit = canonical_to_bfm()
    rot = np.asarray(rot, np.float64)
    centre_canonical = -rot.T @ np.asarray(trans, np.float64)
    centre_bfm = s * r_fit @ centre_canonical + t_fit
    c = EG3D_CENTRE_SCALE * centre_bfm + EG3D_CENTRE_OFFSET
    c = EG3D_CAMERA_RADIUS * c / np.linalg.norm(c)
    out = np.eye(4)
    out[:3, :3] = r_fit @ rot.T
    out[:3, 3] = c
    return out


def eg3d_labels(cam2world: np.ndarray) -> np.ndarray:
    """cam2world [..., 4, 4] -> EG3D labels [..., 25] float32 with FFHQ's intrinsics."""
    return cameras.eg3d_label(cam2world, cameras.FFHQ_INTRINSICS)


def camera_angles(cam2world: np.ndarray) -> np.ndarray:
    """OpenCV cam2world [..., 4, 4] (world y-up, face along +z) -> [..., 3] (yaw, pitch, roll) in degrees.

    yaw: azimuth of the viewing direction, positive when the camera sits towards the subject's left (EG3D's
    ``LookAtPoseSampler`` horizontal angle minus pi/2); pitch: positive when the camera looks up at the face
    from below; roll: rotation about the optical axis from the no-roll camera with the same viewing direction
    (`cameras.cam2world_from_forward`), positive when the face appears turned counter-clockwise in the image.
    Frontal, level, upright: (0, 0, 0).
    """
    m = np.asarray(cam2world, np.float64)
    fwd = m[..., :3, 2]
    right = m[..., :3, 0]
    yaw = np.degrees(np.arctan2(-fwd[..., 0], -fwd[..., 2]))
    pitch = np.degrees(np.arcsin(np.clip(fwd[..., 1] / np.linalg.norm(fwd, axis=-1), -1.0, 1.0)))
    base = cameras.cam2world_from_forward(fwd, np.zeros_like(fwd))
    roll = np.degrees(np.arctan2(np.einsum("...i,...i", right, base[..., :3, 1]),
                                 np.einsum("...i,...i", right, base[..., :3, 0])))
    return np.stack([yaw, pitch, roll], axis=-1)


def look_at_distance(cam2world: np.ndarray, point=cameras.EG3D_PIVOT) -> np.ndarray:
    """Distance [...] from ``point`` to each camera's optical axis (EG3D world units)."""
    m = np.asarray(cam2world, np.float64)
    d = m[..., :3, 2] / np.linalg.norm(m[..., :3, 2], axis=-1, keepdims=True)
    v = np.asarray(point, np.float64) - m[..., :3, 3]
    along = np.einsum("...i,...i", v, d)
    return np.linalg.norm(v - along[..., None] * d, axis=-1)


__all__ = ["camera_angles", "canonical_to_bfm", "eg3d_cam2world", "eg3d_labels", "intrinsics_matrix",
           "look_at_distance", "solve_head_pose", "umeyama"]
