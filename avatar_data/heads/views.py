"""EG3D cameras for the head world (pure numpy): orbit views around EG3D's pivot with FFHQ intrinsics."""

from __future__ import annotations

import numpy as np

from avatar_data import cameras


def orbit_labels(yaw_offset_deg, pitch_offset_deg, radius: float = cameras.EG3D_RADIUS,
                 pivot=cameras.EG3D_PIVOT) -> np.ndarray:
    """EG3D labels [N, 25] float32 of look-at cameras at yaw/pitch offsets (degrees) from frontal.

    A positive yaw offset moves the camera towards world +x (it sees the person's left cheek); a positive
    pitch offset moves it down (EG3D's polar angle grows), so views from above have negative pitch offsets.
    Radius 2.7 from the world origin, aimed at the pivot (0, 0, 0.2), FFHQ intrinsics: EG3D's FFHQ cameras.
    """
    yaw = np.pi / 2 + np.radians(np.atleast_1d(np.asarray(yaw_offset_deg, np.float64)))
    pitch = np.pi / 2 + np.radians(np.atleast_1d(np.asarray(pitch_offset_deg, np.float64)))
    yaw, pitch = np.broadcast_arrays(yaw, pitch)
    c2w = cameras.lookat_cam2world(yaw, pitch, radius=radius, pivot=pivot)
    return cameras.eg3d_label(c2w, cameras.FFHQ_INTRINSICS)


def frontal_label() -> np.ndarray:
    """float32 [25]: the frontal FFHQ camera."""
    return orbit_labels(0.0, 0.0)[0]
