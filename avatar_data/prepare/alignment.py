"""EG3D's FFHQ crop from five facial landmarks (pure numpy + PIL).

EG3D crops its in-the-wild images in ``dataset_preprocessing/ffhq/crop_images_in_the_wild.py`` (``__main__``)
with Deep3DFaceRecon's ``util/preprocess.py`` ``align_img``:

1. ``POS``: fit an affine (scaled orthographic) camera that projects the five 3D standard landmarks
   (``lm3d_std``, `STANDARD_FIVE_POINTS`) onto the five detected 2D points; its scale ``s`` is the mean norm
   of the two projection rows (pixels per BFM unit) and its translation ``t`` the image of the 3D origin.
2. ``align_img(target_size=1024, rescale_factor=300)``: resize the image by ``300 / s`` so that one BFM unit
   spans 300 px, and crop 1024 x 1024 centred on ``t``.
3. ``crop_images_in_the_wild.py``: centre crop 700 x 700 of that, resized to 512 (LANCZOS).

There is no rotation: the head's roll stays in the image (and so in the camera pose). All of it is one
scale-and-translation map from the source frame to the output crop, `CropTransform`: the output spans
``700 / 300`` BFM units around ``t``. `warp_to_crop` resamples it in one antialiased step (PIL LANCZOS over a
sub-pixel source box) instead of EG3D's integer-truncated BICUBIC resize + crop + LANCZOS resize; the
difference is sub-pixel.

Image coordinates here are continuous pixels with the origin at the top-left corner of the top-left pixel,
x right, y down (pixel ``i`` covers ``[i, i + 1)``; MediaPipe's normalised landmarks times the image size).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

# Deep3DFaceRecon_pytorch ``BFM/similarity_Lm3D_all.mat`` reduced to five points by ``util/load_mats.py``
# ``load_lm3d`` (68-point indices 31 = nose tip, mean(37, 40) and mean(43, 46) = eye centres as the means of
# their corners, 49 and 55 = mouth corners; reordered to eyes, nose, mouth). BFM units (decimetres), x towards
# the subject's left (image right), y up, z out of the face; the origin is Deep3DFaceRecon's recentred mean face.
STANDARD_FIVE_POINTS = np.array([
    [-0.31148657, 0.29036078, 0.13377953],    # eye centre, image left (the subject's right eye)
    [0.30979887, 0.28972036, 0.13179526],     # eye centre, image right
    [0.00325350, -0.04617932, 0.55244243],    # nose tip
    [-0.25216928, -0.38133916, 0.22405732],   # mouth corner, image left
    [0.24846619, -0.38128236, 0.22235769],    # mouth corner, image right
], np.float64)

# MediaPipe face mesh landmarks that define the same five points: each eye centre is the mean of its two
# corners (as the standard's), the nose tip the mean of mesh points 1 and 4 (the pair that best matches the
# standard's nose tip on the canonical face), the mouth corners are mesh points 61 and 291.
FIVE_POINT_MESH_IDS = ((33, 133), (362, 263), (1, 4), (61,), (291,))

# crop_images_in_the_wild.py: target_size, rescale_factor, center_crop_size, output_size.
EG3D_TARGET_SIZE = 1024
EG3D_RESCALE_FACTOR = 300.0
EG3D_CENTER_CROP = 700
EG3D_OUTPUT_SIZE = 512


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """Face mesh landmarks [..., >=468, D] -> the five alignment points [..., 5, D] (`FIVE_POINT_MESH_IDS`)."""
    lm = np.asarray(landmarks, np.float64)
    return np.stack([lm[..., list(ids), :].mean(axis=-2) for ids in FIVE_POINT_MESH_IDS], axis=-2)


# The head world's three face points (`avatar_data.worlds.heads.model.FACE_POINT_NAMES`: the mouth centre, the
# person's left eye, the right eye) on the face mesh: the middle of the inner lips (points 13 and 14) and the
# eye centres of `FIVE_POINT_MESH_IDS` (the person's left eye is the image's right one).
FACE_POINT_MESH_IDS = ((13, 14), (362, 263), (33, 133))


def face_points(landmarks: np.ndarray) -> np.ndarray:
    """Face mesh landmarks [..., >=468, D] -> the face points [..., 3, 2] (`FACE_POINT_MESH_IDS`; x, y)."""
    lm = np.asarray(landmarks, np.float64)[..., :2]
    return np.stack([lm[..., list(ids), :].mean(axis=-2) for ids in FACE_POINT_MESH_IDS], axis=-2)


def pos(points_2d: np.ndarray, points_3d: np.ndarray) -> tuple[np.ndarray, float]:
    """Deep3DFaceRecon's ``POS``: least-squares affine camera from 3D points [N, 3] to 2D points [N, 2].

    Solves ``x = r1 . X + tx``, ``y = r2 . X + ty`` for (r1, tx, r2, ty) by least squares and returns
    ``(t, s)``: t = (tx, ty) [2], the image of the 3D origin, and s = (|r1| + |r2|) / 2, pixels per 3D unit.
    Works in any 2D orientation (Deep3DFaceRecon flips y up first; that negates r2 and ty and leaves s).
    """
    xp = np.asarray(points_2d, np.float64)
    x = np.asarray(points_3d, np.float64)
    n = x.shape[0]
    a = np.zeros((2 * n, 8))
    a[0::2, 0:3] = x
    a[0::2, 3] = 1.0
    a[1::2, 4:7] = x
    a[1::2, 7] = 1.0
    k, *_ = np.linalg.lstsq(a, xp.reshape(-1), rcond=None)
    s = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2.0
    return np.array([k[3], k[7]]), float(s)


@dataclasses.dataclass(frozen=True)
class CropTransform:
    """Scale-and-translation map from source pixels to a square crop: ``crop = (src - centre) * scale + size/2``.

    centre: (x, y) source pixels that land on the crop centre; scale: crop pixels per source pixel;
    size: crop side in pixels.
    """

    centre: tuple[float, float]
    scale: float
    size: int

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Source points [..., 2] (or [..., 3], z scaled alike) -> crop points, same shape."""
        p = np.asarray(points, np.float64).copy()
        p[..., 0] = (p[..., 0] - self.centre[0]) * self.scale + self.size / 2.0
        p[..., 1] = (p[..., 1] - self.centre[1]) * self.scale + self.size / 2.0
        if p.shape[-1] > 2:
            p[..., 2:] = p[..., 2:] * self.scale
        return p

    def to_source(self, points: np.ndarray) -> np.ndarray:
        """Crop points [..., 2] -> source points."""
        p = np.asarray(points, np.float64).copy()
        p[..., 0] = (p[..., 0] - self.size / 2.0) / self.scale + self.centre[0]
        p[..., 1] = (p[..., 1] - self.size / 2.0) / self.scale + self.centre[1]
        return p

    def source_box(self) -> tuple[float, float, float, float]:
        """The source rectangle (x0, y0, x1, y1) the crop covers."""
        half = self.size / 2.0 / self.scale
        return (self.centre[0] - half, self.centre[1] - half, self.centre[0] + half, self.centre[1] + half)


def eg3d_crop_transform(five_2d: np.ndarray, resolution: int = EG3D_OUTPUT_SIZE) -> CropTransform:
    """EG3D's FFHQ crop of a frame from its five alignment points [5, 2] (source pixels) -> `CropTransform`.

    ``align_img``: the 1024 frame has ``EG3D_RESCALE_FACTOR / s`` frame pixels per source pixel and is centred
    on ``t``; the centre 700 of it becomes the output, so ``scale = (300 / s) * resolution / 700``.
    """
    t, s = pos(five_2d, STANDARD_FIVE_POINTS)
    if not s > 0:
        raise ValueError("degenerate five-point landmarks (POS scale is zero)")
    scale = (EG3D_RESCALE_FACTOR / s) * resolution / EG3D_CENTER_CROP
    return CropTransform(centre=(float(t[0]), float(t[1])), scale=float(scale), size=int(resolution))


def warp_to_crop(image: np.ndarray, transform: CropTransform, resample: int = Image.LANCZOS,
                 fill: int = 0) -> np.ndarray:
    """Resample the crop of ``image`` (uint8 [H, W, C] or [H, W]) -> uint8 [size, size(, C)].

    Parts of the crop outside the image are ``fill`` (EG3D's PIL crop pads with black). One antialiased
    resampling from the sub-pixel source box, so a crop that shrinks the source does not alias.
    """
    img = np.asarray(image)
    h, w = img.shape[:2]
    x0, y0, x1, y1 = transform.source_box()
    # PIL needs the box inside the image: paste the overlapping part on a `fill` canvas covering the box.
    ix0, iy0 = int(np.floor(x0)) - 2, int(np.floor(y0)) - 2
    ix1, iy1 = int(np.ceil(x1)) + 2, int(np.ceil(y1)) + 2
    if ix0 >= 0 and iy0 >= 0 and ix1 <= w and iy1 <= h:
        src, ox, oy = img, 0, 0
    else:
        canvas = np.full((iy1 - iy0, ix1 - ix0) + img.shape[2:], fill, np.uint8)
        sx0, sy0, sx1, sy1 = max(ix0, 0), max(iy0, 0), min(ix1, w), min(iy1, h)
        if sx1 > sx0 and sy1 > sy0:
            canvas[sy0 - iy0:sy1 - iy0, sx0 - ix0:sx1 - ix0] = img[sy0:sy1, sx0:sx1]
        src, ox, oy = canvas, ix0, iy0
    pil = Image.fromarray(np.ascontiguousarray(src))
    out = pil.resize((transform.size, transform.size), resample=resample,
                     box=(x0 - ox, y0 - oy, x1 - ox, y1 - oy))
    return np.asarray(out)
