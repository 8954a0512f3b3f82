"""Parameters of the procedural heads (pure numpy): identities, expressions, head poses, the identity split.

Everything random comes from ``np.random.default_rng([seed, stream])`` with a fixed stream number per purpose
(`STREAMS`), so adding a new random choice to one part never changes the others.

Coordinates: the head model lives in a head-local frame that is EG3D's world frame scaled by 1 / HEAD_SCALE
in the neutral pose (y up, the face looks along +z; EG3D's cameras sit 2.7 world units from the origin). The person's
left is +x (the right-hand side of a frontal image).

Layouts (all float32 vectors on the way to the renderer):

* identity vector [IDENTITY_DIM]: `IDENTITY_LAYOUT` (shape scalars ~1, colours as sRGB in [0, 1], hair geometry
  in head-local units, texture phases in radians);
* expression [EXPRESSION_DIM = 10]: `EXPRESSION_NAMES`, ranges in `EXPRESSION_RANGES`, neutral = all zeros;
* pose [POSE_DIM = 6]: `POSE_NAMES` = yaw, pitch, roll (radians) and a translation (world units). A head-local
  point q is at ``R (HEAD_SCALE q - HEAD_PIVOT) + HEAD_PIVOT + translation`` in the world, with
  ``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)``: the head turns about `HEAD_PIVOT` (the top of the neck), and the
  translation moves head, neck and shoulders together. Positive yaw turns the face towards +x (the person's
  left), positive pitch nods the face down, positive roll tilts the top of the head towards -x.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
from collections.abc import Sequence

import numpy as np

# ----------------------------------------------------------------------------------------------------
# The identity split. Evaluation worlds (`python -m avatar_data.worlds.heads --seed S`) use EVALUATION seeds; the
# pretraining dataset of an EG3D prior uses PRETRAIN seeds only, so no evaluated person was seen by the prior.

EVALUATION_IDENTITY_SEEDS = range(1000)
PRETRAIN_IDENTITY_SEED_START = 1000
MAX_IDENTITY_SEED = 2 ** 31 - 1


def is_evaluation_identity(seed: int) -> bool:
    return int(seed) in EVALUATION_IDENTITY_SEEDS


def is_pretrain_identity(seed: int) -> bool:
    return PRETRAIN_IDENTITY_SEED_START <= int(seed) <= MAX_IDENTITY_SEED


STREAMS = {"identity": 0, "pose": 2, "speech": 3, "blinks": 4, "drift": 5, "tracker": 6,
           "pretrain_scene": 8, "pretrain_camera": 9, "mix": 10, "saccade": 11, "cheek": 12}


def rng(seed: int, stream: str) -> np.random.Generator:
    """The numpy generator of one purpose (`STREAMS`) for a seed."""
    return np.random.default_rng([int(seed), STREAMS[stream]])


# ----------------------------------------------------------------------------------------------------
# Expressions and poses.

EXPRESSION_NAMES = ("jaw_open", "smile", "pucker", "brow_raise", "brow_furrow", "blink_l", "blink_r",
                    "gaze_x", "gaze_y", "cheek_puff")
EXPRESSION_DIM = len(EXPRESSION_NAMES)
EXPRESSION_RANGES = {
    "jaw_open": (0.0, 1.0),      # 1: mouth wide open (the mandible turns down by JAW_ANGLE)
    "smile": (-0.5, 1.0),        # > 0 corners up and the mouth wider, < 0 a frown
    "pucker": (0.0, 1.0),        # lips pushed forward and rounded, the mouth narrower
    "brow_raise": (-0.5, 1.0),   # brows up (< 0 down)
    "brow_furrow": (0.0, 1.0),   # inner brow ends down and together
    "blink_l": (0.0, 1.0),       # 1: left upper lid fully closed
    "blink_r": (0.0, 1.0),
    "gaze_x": (-1.0, 1.0),       # eyes towards +x (the person's left) at 1, by GAZE_ANGLES[0] radians
    "gaze_y": (-1.0, 1.0),       # eyes up at 1
    "cheek_puff": (0.0, 1.0),    # cheeks inflated
}
EXPRESSION_INDEX = {n: i for i, n in enumerate(EXPRESSION_NAMES)}
GAZE_ANGLES = (0.45, 0.35)
JAW_ANGLE = 0.34  # radians the mandible turns at jaw_open = 1

POSE_NAMES = ("yaw", "pitch", "roll", "tx", "ty", "tz")
POSE_DIM = len(POSE_NAMES)
HEAD_PIVOT = (0.0, -0.11, -0.03)
HEAD_SCALE = 1.1  # head-local units -> world units, about the head-local origin (before the pose)


def neutral_expression(n: int = 1) -> np.ndarray:
    """float32 [n, 10] zeros."""
    return np.zeros((n, EXPRESSION_DIM), np.float32)


def expression(**values: float) -> np.ndarray:
    """One expression [10] float32 from named values (the rest neutral); unknown names raise ValueError."""
    unknown = sorted(set(values) - set(EXPRESSION_NAMES))
    if unknown:
        raise ValueError(f"unknown expression parameters {unknown}; known: {list(EXPRESSION_NAMES)}")
    out = np.zeros(EXPRESSION_DIM, np.float32)
    for name, v in values.items():
        out[EXPRESSION_INDEX[name]] = v
    return out


def pose(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, translation: Sequence[float] = (0, 0, 0)):
    """One head pose [6] float32 (radians, world units)."""
    return np.array([yaw, pitch, roll, *translation], np.float32)


def clip_expression(values: np.ndarray) -> np.ndarray:
    """Clip [..., 10] to `EXPRESSION_RANGES` (float32)."""
    lo = np.array([EXPRESSION_RANGES[n][0] for n in EXPRESSION_NAMES], np.float32)
    hi = np.array([EXPRESSION_RANGES[n][1] for n in EXPRESSION_NAMES], np.float32)
    return np.clip(np.asarray(values, np.float32), lo, hi)


def random_expressions(gen: np.random.Generator, n: int) -> np.ndarray:
    """n random expressions [n, 10] float32 for pretraining: each parameter is active with probability 0.5
    (otherwise neutral), active values uniform over its range; gaze always drawn; blinks mostly shut or open."""
    out = np.zeros((n, EXPRESSION_DIM), np.float64)
    for i, name in enumerate(EXPRESSION_NAMES):
        lo, hi = EXPRESSION_RANGES[name]
        active = gen.random(n) < (1.0 if name.startswith("gaze") else 0.5)
        out[:, i] = np.where(active, gen.uniform(lo, hi, n), 0.0)
    return out.astype(np.float32)


def rotation_matrix(yaw, pitch, roll) -> np.ndarray:
    """``Ry(yaw) @ Rx(pitch) @ Rz(roll)`` [..., 3, 3] float64 (see the module docstring for the signs)."""
    yaw, pitch, roll = (np.asarray(a, np.float64) for a in (yaw, pitch, roll))
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    one, zero = np.ones_like(cy), np.zeros_like(cy)
    ry = np.stack([np.stack([cy, zero, sy], -1), np.stack([zero, one, zero], -1),
                   np.stack([-sy, zero, cy], -1)], -2)
    rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cp, -sp], -1),
                   np.stack([zero, sp, cp], -1)], -2)
    rz = np.stack([np.stack([cr, -sr, zero], -1), np.stack([sr, cr, zero], -1),
                   np.stack([zero, zero, one], -1)], -2)
    return ry @ rx @ rz


def head_to_world(points: np.ndarray, pose_vec: np.ndarray) -> np.ndarray:
    """Head-local points [..., 3] -> world [..., 3] under a pose [6] (float64)."""
    p = np.asarray(pose_vec, np.float64)
    rot = rotation_matrix(p[0], p[1], p[2])
    pivot = np.asarray(HEAD_PIVOT)
    return (HEAD_SCALE * np.asarray(points, np.float64) - pivot) @ rot.T + pivot + p[3:6]


# ----------------------------------------------------------------------------------------------------
# Identities.

IDENTITY_LAYOUT = (
    ("head_width", 1), ("head_height", 1), ("head_depth", 1), ("jaw_width", 1), ("chin_length", 1),
    ("cheek_size", 1), ("nose_length", 1), ("nose_width", 1), ("eye_spacing", 1), ("eye_size", 1),
    ("ear_size", 1), ("lip_thickness", 1), ("mouth_width", 1), ("brow_thickness", 1), ("neck_width", 1),
    ("shoulder_width", 1),
    ("skin_rgb", 3), ("lip_rgb", 3), ("iris_rgb", 3), ("hair_rgb", 3), ("shirt_rgb", 3), ("background_rgb", 3),
    ("hair_centre", 3), ("hair_radii", 3), ("hair_bottom", 2), ("hair_face", 4), ("hair_taper", 2), ("hair_curl", 1),
    ("hair_bun", 1), ("hair_strands", 1), ("texture_phase", 3), ("skin_texture", 1),
)
IDENTITY_SLICES = {}
_offset = 0
for _name, _size in IDENTITY_LAYOUT:
    IDENTITY_SLICES[_name] = slice(_offset, _offset + _size)
    _offset += _size
IDENTITY_DIM = _offset
del _offset, _name, _size

SHAPE_NAMES = tuple(n for n, s in IDENTITY_LAYOUT[:16])
SHAPE_RANGES = {
    "head_width": (0.92, 1.08), "head_height": (0.94, 1.06), "head_depth": (0.94, 1.06),
    "jaw_width": (0.86, 1.12), "chin_length": (0.9, 1.1), "cheek_size": (0.8, 1.2),
    "nose_length": (0.8, 1.25), "nose_width": (0.8, 1.25), "eye_spacing": (0.93, 1.07),
    "eye_size": (0.9, 1.1), "ear_size": (0.85, 1.15), "lip_thickness": (0.75, 1.3),
    "mouth_width": (0.85, 1.15), "brow_thickness": (0.8, 1.3), "neck_width": (0.9, 1.12),
    "shoulder_width": (0.9, 1.1),
}

# The cranium ellipsoid of the head model at unit shape scalars (centre, radii); hair styles are shells of it.
CRANIUM_CENTRE = (0.0, 0.05, -0.02)
CRANIUM_RADII = (0.132, 0.158, 0.175)

HAIR_STYLES = ("short", "bob", "curly", "long", "bun")

# sRGB anchor colours; identities interpolate between neighbours and jitter a little.
_SKIN_TONES = np.array([[0.96, 0.83, 0.74], [0.90, 0.72, 0.60], [0.80, 0.60, 0.46], [0.66, 0.46, 0.33],
                        [0.52, 0.35, 0.24], [0.40, 0.26, 0.18]])
_HAIR_COLOURS = np.array([[0.06, 0.05, 0.05], [0.22, 0.14, 0.08], [0.40, 0.26, 0.14], [0.55, 0.25, 0.10],
                          [0.78, 0.64, 0.38], [0.62, 0.60, 0.58]])
_IRIS_COLOURS = np.array([[0.30, 0.18, 0.08], [0.18, 0.10, 0.05], [0.42, 0.36, 0.16], [0.25, 0.45, 0.25],
                          [0.28, 0.45, 0.68], [0.45, 0.50, 0.55]])


@dataclasses.dataclass(frozen=True)
class Identity:
    """One person: `vector` float32 [IDENTITY_DIM] in `IDENTITY_LAYOUT`, plus what produced it."""

    seed: int
    hair_style: str
    vector: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        return self.vector[IDENTITY_SLICES[name]]

    def summary(self) -> dict:
        """JSON-able description: seed, hair style, shape scalars and colours (rounded)."""
        out = {"seed": self.seed, "hair_style": self.hair_style}
        for name, size in IDENTITY_LAYOUT:
            if name in SHAPE_NAMES or name.endswith("_rgb"):
                v = [round(float(x), 4) for x in self[name]]
                out[name] = v[0] if size == 1 else v
        return out


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


def _palette(gen: np.random.Generator, anchors: np.ndarray, jitter: float) -> np.ndarray:
    u = gen.uniform(0.0, len(anchors) - 1.0)
    i = min(int(u), len(anchors) - 2)
    c = anchors[i] + (u - i) * (anchors[i + 1] - anchors[i])
    return np.clip(c * (1.0 + jitter * gen.uniform(-1.0, 1.0, 3)), 0.0, 1.0)


def hair_geometry(style: str, shape: dict, gen: np.random.Generator) -> dict:
    """Head-local hair parameters of a style, scaled to the head (`IDENTITY_LAYOUT` hair_* entries).

    The hair is the part of an ellipsoid (``hair_centre``, ``hair_radii``, bumped by ``hair_curl``) above the
    plane ``y = bottom[0] + bottom[1] * z`` and outside the boxes ``z > face[0] and y < face[1]`` (the face) and
    ``z > face[2] and y < face[3]`` (the throat, for long hair), plus a bun
    sphere of radius ``hair_bun`` at the back of the crown. ``taper = (amount, width)`` thins the shell by up to
    `amount` over the last `width` above the lower cut.
    """
    cx, cy, cz = CRANIUM_CENTRE
    rx = CRANIUM_RADII[0] * shape["head_width"]
    ry = CRANIUM_RADII[1] * shape["head_height"]
    rz = CRANIUM_RADII[2] * shape["head_depth"]
    j = lambda s: float(gen.uniform(-s, s))
    no_face = (1.0, 1.0, 1.0, 1.0)  # face cuts outside the head: inactive
    if style in ("short", "bun"):
        thick = 0.012 + j(0.004)
        g = {"centre": (cx, cy + 0.004, cz - 0.003), "radii": (rx + thick, ry + thick, rz + thick),
             "bottom": (0.034 + j(0.01), 0.55), "face": no_face, "taper": (0.9 * thick, 0.035), "curl": 0.0,
             "bun": 0.052 + j(0.008) if style == "bun" else 0.0}
    elif style == "curly":
        thick = 0.026 + j(0.006)
        g = {"centre": (cx, cy + 0.006, cz - 0.004), "radii": (rx + thick, ry + thick, rz + thick),
             "bottom": (0.022 + j(0.01), 0.5), "face": no_face, "taper": (0.6 * thick, 0.04), "curl": 0.012,
             "bun": 0.0}
    elif style == "bob":
        g = {"centre": (cx, cy - 0.03, cz - 0.012), "radii": (rx + 0.024, ry + 0.045, rz + 0.018),
             "bottom": (-0.115 + j(0.015), 0.12), "face": (0.055 + j(0.01), 0.118 + j(0.008), 1.0, 1.0),
             "taper": (0.0, 1.0), "curl": 0.0, "bun": 0.0}
    elif style == "long":
        g = {"centre": (cx, cy - 0.08, cz - 0.022), "radii": (rx + 0.026, ry + 0.11, rz + 0.022),
             "bottom": (-0.24 + j(0.02), 0.35), "face": (0.035 + j(0.01), 0.12 + j(0.008), -0.035, -0.13),
             "taper": (0.0, 1.0), "curl": 0.0, "bun": 0.0}
    else:
        raise ValueError(f"unknown hair style {style!r}; known: {HAIR_STYLES}")
    return g


def sample_identity(seed: int) -> Identity:
    """The person of a seed (stream 'identity'): shape scalars, colours, hair style and geometry, texture."""
    gen = rng(seed, "identity")
    shape = {n: float(gen.uniform(*SHAPE_RANGES[n])) for n in SHAPE_NAMES}
    skin = _palette(gen, _SKIN_TONES, 0.04)
    lip = np.clip(skin * np.array([0.92, 0.66, 0.66]) + np.array([0.06, 0.0, 0.0]) * gen.uniform(0.5, 1.5), 0, 1)
    iris = _palette(gen, _IRIS_COLOURS, 0.1)
    hair = np.clip(_HAIR_COLOURS[int(gen.integers(len(_HAIR_COLOURS)))] * (1.0 + 0.12 * gen.uniform(-1, 1, 3)), 0, 1)
    shirt = _hsv(gen.random(), gen.uniform(0.45, 0.85), gen.uniform(0.35, 0.8))
    background = _hsv(gen.random(), gen.uniform(0.2, 0.5), gen.uniform(0.35, 0.72))
    style = HAIR_STYLES[int(gen.integers(len(HAIR_STYLES)))]
    g = hair_geometry(style, shape, gen)
    values = dict(shape)
    values.update(skin_rgb=skin, lip_rgb=lip, iris_rgb=iris, hair_rgb=hair, shirt_rgb=shirt,
                  background_rgb=background, hair_centre=g["centre"], hair_radii=g["radii"],
                  hair_bottom=g["bottom"], hair_face=g["face"], hair_taper=g["taper"], hair_curl=g["curl"],
                  hair_bun=g["bun"],
                  hair_strands=gen.uniform(36.0, 56.0), texture_phase=gen.uniform(0.0, 2 * math.pi, 3),
                  skin_texture=gen.uniform(0.03, 0.07))
    vec = np.zeros(IDENTITY_DIM, np.float32)
    for name, size in IDENTITY_LAYOUT:
        vec[IDENTITY_SLICES[name]] = np.broadcast_to(np.asarray(values[name], np.float64), (size,))
    vec.setflags(write=False)
    return Identity(int(seed), style, vec)


def identity_matrix(identities: Sequence[Identity]) -> np.ndarray:
    """Stack identity vectors -> float32 [N, IDENTITY_DIM]."""
    return np.stack([i.vector for i in identities]).astype(np.float32)
