"""Image conventions of the project: float NHWC images in [-1, 1] (the generator's and the datasets'),
and their uint8 [0, 255] form for files and pictures.

`to_uint8` works on numpy and JAX arrays alike (inside jit too), through the array's own namespace.
"""

from __future__ import annotations

import math
import os
from typing import Union

import numpy as np


def to_uint8(images):
    """[..., C] float in [-1, 1] -> uint8 ``round((x + 1) * 127.5)`` clipped to [0, 255] (same array type)."""
    if not hasattr(images, "__array_namespace__"):
        images = np.asarray(images, np.float32)
    xp = images.__array_namespace__()
    return xp.clip(xp.round((images + 1.0) * 127.5), 0, 255).astype(xp.uint8)


def from_uint8(images) -> np.ndarray:
    """uint8 [..., C] -> float32 in [-1, 1] (the inverse of `to_uint8` up to rounding)."""
    return np.asarray(images, np.float32) / 127.5 - 1.0


def image_grid(images: np.ndarray, columns: int) -> np.ndarray:
    """[N, H, W, C] -> one [rows * H, columns * W, C] image, row-major, blank cells zero."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    columns = max(1, min(int(columns), n))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * h, columns * w, c), images.dtype)
    for i, img in enumerate(images):
        r, col = divmod(i, columns)
        grid[r * h:(r + 1) * h, col * w:(col + 1) * w] = img
    return grid


def save_png(path: Union[str, os.PathLike], image_uint8: np.ndarray) -> None:
    """Writes uint8 [H, W, 3] (or [H, W] grey) as a PNG, creating the parent directory."""
    from pathlib import Path

    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image_uint8, np.uint8)).save(path)


def read_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """An image file as float32 [H, W, 3] in [-1, 1]."""
    from PIL import Image

    with Image.open(path) as im:
        return from_uint8(np.asarray(im.convert("RGB")))


def area_downsample(images, size: int):
    """[B, H, W, C] -> [B, size, size, C] by averaging (H/size) x (W/size) blocks (torch AdaptiveAvgPool2d
    for integer factors); numpy or JAX arrays. Raises ValueError for a non-integer factor."""
    b, h, w, c = images.shape
    if h == size and w == size:
        return images
    if h % size or w % size:
        raise ValueError(f"cannot area-downsample {h}x{w} to {size}x{size} (not an integer factor)")
    return images.reshape(b, size, h // size, size, w // size, c).mean(axis=(2, 4))


__all__ = ["area_downsample", "from_uint8", "image_grid", "read_image", "save_png", "to_uint8"]
