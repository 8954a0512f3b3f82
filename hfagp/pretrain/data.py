"""Pretraining data: multi-identity head-world renders as batches, and the held-out validation identities.

Training batches hold `scenes_per_batch` scenes seen from `views_per_scene` of their views each; batch t
depends only on (seed, t), so a resumed run draws exactly the batches an uninterrupted one would.

Cameras are given in the head's rest frame (`avatar_data.worlds.heads.world.head_frame_labels`: the rigid head pose
folded into the camera), as EG3D's FFHQ poses are estimated relative to the face: the generator models a
canonical head and every head pose is a camera pose.

Targets of a batch (numpy, float32):
  image [B,R,R,3] in [-1, 1]         the rendered frame (person over its background colour)
  raw   [B,r,r,3] in [-1, 1]         the frame area-averaged to the neural rendering resolution r and composited
                                     on black where the person is absent (EG3D's raw rendering of empty space)
  depth [B,r,r]                      mean ray distance to the surface over the foreground of each r-pixel
  mask  [B,r,r] in [0, 1]            foreground coverage of each r-pixel
  face  [B,R,R] in {0, 1}          the face's parts (`FACE_PARTS`: eyes, lids, brows, lips, mouth, nose) grown
                                     by `FACE_DILATION` pixels; zero for a version-1 data set (no part labels)
  face_raw [B,r,r] in [0, 1]         its coverage of each r-pixel
  condition [B, IDENTITY_DIM + 10]   the scene's world parameters: identity vector standardised by the data
                                     set's identities, then the expression as it is
  label [B,25], identity [B], scene [B] int32
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from hfagp_common.images import area_downsample, from_uint8

VALIDATION_FILE = "validation.npz"
SWEEP_FILE = "expression_sweep.npz"
# Where a face-weighted loss looks (`hfagp.metrics` part names), and by how many pixels the parts are grown (the
# transition to the skin around them belongs to the feature).
FACE_PARTS = ("eyes", "eyelids", "brows", "lips", "mouth_interior", "nose")
FACE_DILATION = 2


@dataclasses.dataclass
class PretrainData:
    """The whole data set in memory (uint8 images), indexed by scene."""

    image: np.ndarray        # uint8 [N, R, R, 3]
    depth: np.ndarray        # float16 [N, R, R] (0 on the background)
    mask: np.ndarray         # uint8 [N, R, R] (coverage * 255)
    label: np.ndarray        # float32 [N, 25]
    identity: np.ndarray     # int32 [N] index of the identity
    scene: np.ndarray        # int32 [N] global scene index
    metadata: dict
    expression: np.ndarray = None        # float32 [N, 10]
    identity_vectors: np.ndarray = None  # float32 [I, IDENTITY_DIM]
    part_labels: np.ndarray = None       # uint8 [N, R, R] (None for a version-1 data set)
    part_names: tuple = ()

    def __post_init__(self):
        order = np.argsort(self.scene, kind="stable")
        bounds = np.searchsorted(self.scene[order], np.arange(self.num_scenes + 1))
        self._scene_rows = [order[bounds[s]:bounds[s + 1]] for s in range(self.num_scenes)]
        self.scene_identity = np.zeros(self.num_scenes, np.int32)
        self.scene_identity[self.scene] = self.identity
        if self.identity_vectors is not None:
            vectors = np.asarray(self.identity_vectors, np.float64)
            self._identity_mean = vectors.mean(axis=0)
            self._identity_scale = np.maximum(vectors.std(axis=0), 1e-3)  # a constant coordinate stays finite

    @property
    def has_part_labels(self) -> bool:
        return self.part_labels is not None

    @property
    def condition_dim(self) -> int:
        return int(self.identity_vectors.shape[1] + self.expression.shape[1])

    def conditions(self, rows: np.ndarray) -> np.ndarray:
        """float32 [len(rows), condition_dim]: the rows' standardised identity vectors and expressions."""
        return self.condition_of(self.identity_vectors[self.identity[rows]], self.expression[rows])

    def condition_of(self, identity_vectors: np.ndarray, expressions: np.ndarray) -> np.ndarray:
        """float32 [N, condition_dim] of any people (identity vectors [N, IDENTITY_DIM], standardised by this data
        set's identities) with any expressions [N, 10]."""
        ident = (np.asarray(identity_vectors, np.float64) - self._identity_mean) / self._identity_scale
        return np.concatenate([ident, np.asarray(expressions, np.float64)], axis=1).astype(np.float32)

    def scene_conditions(self) -> np.ndarray:
        """float32 [S, condition_dim]: the condition of every scene (its views share it)."""
        return self.conditions(np.array([rows[0] for rows in self._scene_rows]))

    @property
    def num_scenes(self) -> int:
        return int(self.scene.max()) + 1 if len(self.scene) else 0

    @property
    def num_identities(self) -> int:
        return int(self.identity.max()) + 1 if len(self.identity) else 0

    @property
    def resolution(self) -> int:
        return int(self.image.shape[1])

    def rows(self, rows: np.ndarray, raw_resolution: int) -> dict:
        """The targets of data-set rows (see the module doc)."""
        image = from_uint8(self.image[rows])
        mask = self.mask[rows].astype(np.float32)[..., None] / 255.0
        depth = self.depth[rows].astype(np.float32)[..., None]
        r = raw_resolution
        mask_r = area_downsample(mask, r)
        raw = area_downsample((image + 1.0) * 0.5 * mask, r) * 2.0 - 1.0
        depth_r = area_downsample(depth * mask, r) / np.maximum(mask_r, 1e-6)
        if self.has_part_labels:
            from hfagp import metrics

            face = metrics.dilate(metrics.part_mask(self.part_labels[rows], self.part_names, FACE_PARTS),
                                  FACE_DILATION).astype(np.float32)
        else:
            face = np.zeros(image.shape[:3], np.float32)
        out = {"image": image, "raw": raw.astype(np.float32), "depth": depth_r[..., 0].astype(np.float32),
               "mask": mask_r[..., 0].astype(np.float32), "face": face,
               "face_raw": area_downsample(face[..., None], r)[..., 0].astype(np.float32), "label": self.label[rows],
               "identity": self.identity[rows], "scene": self.scene[rows]}
        if self.identity_vectors is not None:
            out["condition"] = self.conditions(rows)
        return out

    def batch(self, step: int, seed: int, scenes_per_batch: int, views_per_scene: int, raw_resolution: int) -> dict:
        """Batch `step` of the training sequence (deterministic in seed and step)."""
        gen = np.random.default_rng([int(seed), 7, int(step)])
        scenes = gen.choice(self.num_scenes, scenes_per_batch, replace=self.num_scenes < scenes_per_batch)
        rows = np.concatenate([gen.choice(self._scene_rows[s], views_per_scene,
                                          replace=len(self._scene_rows[s]) < views_per_scene) for s in scenes])
        return self.rows(rows, raw_resolution)


def ensure_dataset(data_dir: Path, identity_seeds: Sequence[int], scenes_per_identity: int, views_per_scene: int,
                   resolution: int, seed: int, progress: bool) -> dict:
    """Renders what is missing of the data set (resumable, shard by shard); returns the render summary."""
    from avatar_data.worlds.heads.dataset import make_pretrain_dataset

    return make_pretrain_dataset(str(data_dir), list(identity_seeds), scenes_per_identity, views_per_scene,
                                 resolution, seed=seed, progress=progress)


def load_data(data_dir: Path) -> PretrainData:
    """The data set with head-frame cameras (see the module doc)."""
    from avatar_data.worlds.heads.dataset import load_pretrain_dataset
    from avatar_data.worlds.heads.world import head_frame_labels

    arrays = load_pretrain_dataset(str(data_dir))
    labels = head_frame_labels(arrays["label"], arrays["pose"]).astype(np.float32)
    meta = arrays["metadata"]
    return PretrainData(arrays["image"], arrays["depth"], arrays["mask"], labels, arrays["identity"],
                        arrays["scene"], meta, expression=arrays["expression"],
                        identity_vectors=meta["identity_vectors"], part_labels=arrays.get("part_labels"),
                        part_names=tuple(meta.get("part_names", ())))


# The expressions of the code map's sheet (`expression_sweep`): neutral, then one parameter at its extreme each.
SWEEP_EXPRESSIONS = ({}, {"jaw_open": 1.0}, {"smile": 1.0}, {"pucker": 1.0}, {"brow_raise": 1.0},
                     {"blink_l": 1.0, "blink_r": 1.0}, {"gaze_x": 1.0})


def expression_sweep(workdir: Path, identity_seeds: Sequence[int], resolution: int) -> dict:
    """Held-out identities (head straight, frontal camera) with each of `SWEEP_EXPRESSIONS`: {'image' float32
    [I, E, R, R, 3] in [-1, 1], 'label' [25] (the camera), 'identity_vectors' [I, IDENTITY_DIM], 'expressions'
    [E, 10]}; cached in WORKDIR/expression_sweep.npz."""
    from avatar_data import cameras
    from avatar_data.worlds.heads import params as heads_params
    from avatar_data.worlds.heads import render as heads_render

    expressions = np.stack([heads_params.expression(**e) for e in SWEEP_EXPRESSIONS])
    key = json.dumps({"seeds": [int(s) for s in identity_seeds], "expressions": expressions.tolist(),
                      "resolution": resolution})
    label = cameras.frontal_camera().astype(np.float32)
    vectors = np.stack([heads_params.sample_identity(int(s)).vector for s in identity_seeds]).astype(np.float32)

    def make():
        n = len(expressions)
        poses, labels = np.zeros((n, heads_params.POSE_DIM), np.float32), np.repeat(label[None], n, axis=0)
        return {"image": np.stack([heads_render.render(vector, expressions, poses, labels,
                                                       resolution=resolution)["rgb"] for vector in vectors])}

    images = _cached_arrays(Path(workdir) / SWEEP_FILE, key, make)["image"]
    return {"image": from_uint8(images), "label": label, "identity_vectors": vectors, "expressions": expressions}


def _cached_arrays(path: Path, key: str, make) -> dict:
    """The arrays of the npz `path` if it was written for `key`, else those of `make()` (written there first,
    atomically, with the key)."""
    if path.is_file():
        with np.load(path) as cached:
            if str(cached["key"]) == key:
                return {k: cached[k] for k in cached.files if k != "key"}
    arrays = make()
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, key=np.array(key), **arrays)
    tmp.replace(path)
    return arrays


def validation_views(novel_yaw_deg: Sequence[float]) -> np.ndarray:
    """(yaw, pitch) offsets in degrees [V, 2] of the validation views: frontal first, then the novel ones."""
    return np.array([(0.0, 0.0)] + [(float(y), 0.0) for y in novel_yaw_deg], np.float64)


def ensure_validation(workdir: Path, identity_seeds: Sequence[int], novel_yaw_deg: Sequence[float],
                      resolution: int) -> dict:
    """The validation identities (evaluation seeds, neutral expression, head straight) rendered at the frontal
    camera and the novel views: {'image' float32 [I, V, R, R, 3] in [-1, 1], 'label' [I, V, 25], 'seeds' [I],
    'views' [V, 2], 'part_labels' uint8 [I, V, R, R], 'part_names'}; cached in WORKDIR/validation.npz."""
    from avatar_data import cameras
    from avatar_data.worlds.heads import params as heads_params
    from avatar_data.worlds.heads import render as heads_render
    from avatar_data.worlds.heads.model import PART_NAMES

    views = validation_views(novel_yaw_deg)
    key = json.dumps({"seeds": [int(s) for s in identity_seeds], "views": views.tolist(), "resolution": resolution,
                      "part_labels": True})

    def make():
        bad = [s for s in identity_seeds if not heads_params.is_evaluation_identity(s)]
        if bad:
            raise ValueError(f"validation identities {bad} are not evaluation identities (seeds "
                             f"{heads_params.EVALUATION_IDENTITY_SEEDS.start}.."
                             f"{heads_params.EVALUATION_IDENTITY_SEEDS.stop - 1})")
        labels = cameras.yaw_pitch_cameras(np.radians(views[:, 0]), np.radians(views[:, 1]))
        images, parts = [], []
        for seed in identity_seeds:
            n = len(views)
            out = heads_render.render(heads_params.sample_identity(int(seed)).vector,
                                      heads_params.neutral_expression(n),
                                      np.zeros((n, heads_params.POSE_DIM), np.float32), labels, resolution=resolution)
            images.append(out["rgb"])
            parts.append(out["part"])
        return {"image": np.stack(images), "label": np.stack([labels] * len(images)).astype(np.float32),
                "seeds": np.asarray(identity_seeds, np.int32), "views": views, "part_labels": np.stack(parts)}

    arrays = _cached_arrays(Path(workdir) / VALIDATION_FILE, key, make)
    return {"image": from_uint8(arrays["image"]), "label": arrays["label"], "seeds": arrays["seeds"],
            "views": views, "part_labels": arrays["part_labels"], "part_names": list(PART_NAMES)}
