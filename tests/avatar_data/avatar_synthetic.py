"""Tiny synthetic videos for the avatar_data tests (each frame's colour encodes its index)."""

import math

import numpy as np

from avatar_data import cameras


def frame_colour(t: int) -> np.ndarray:
    """RGB colour of synthetic frame t (distinct for t < 25)."""
    return np.array([(10 * t) % 256, (255 - 7 * t) % 256, (3 * t + 40) % 256], np.uint8)


def synthetic_frames(num_frames: int, size: int) -> np.ndarray:
    """uint8 [T, size, size, 3]: constant colour per frame, plus one marker pixel in the top-left corner."""
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for t in range(num_frames):
        frames[t] = frame_colour(t)
        frames[t, 0, 0] = 255
    return frames


def synthetic_labels(num_frames: int, intrinsics: np.ndarray = cameras.FFHQ_INTRINSICS) -> np.ndarray:
    """float32 [T, 25]: EG3D look-at cameras sweeping yaw and pitch around the frontal view."""
    t = np.arange(num_frames)
    yaw = math.pi / 2 + 0.4 * np.sin(0.7 * t)
    pitch = math.pi / 2 + 0.15 * np.cos(0.5 * t)
    return cameras.eg3d_label(cameras.lookat_cam2world(yaw, pitch), intrinsics)


def synthetic_expressions(num_frames: int, dim: int = 76) -> np.ndarray:
    return (np.arange(num_frames)[:, None] + 0.01 * np.arange(dim)[None, :]).astype(np.float32)


def synthetic_audio(num_rows: int) -> np.ndarray:
    """float32 [N, 16, 29]: row n is filled with n + 0.001 * position."""
    return (np.arange(num_rows)[:, None, None] + 0.001 * np.arange(16 * 29).reshape(1, 16, 29)).astype(np.float32)
