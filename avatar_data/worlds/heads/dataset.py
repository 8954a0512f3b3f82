"""Multi-identity renders of the head world for pretraining an EG3D prior, written resumably in shards.

``python -m avatar_data.worlds.heads.dataset OUT_DIR --identities N --scenes S --views V --resolution R``

A *scene* is one identity with one random expression (`params.random_expressions`) and one jittered head
pose; each scene is rendered from V cameras: view 0 near-frontal (|yaw| <= 5 deg, |pitch| <= 3 deg), the
others with yaw offsets uniform in +-`MAX_YAW_DEG` and pitch offsets in +-`MAX_PITCH_DEG` (EG3D look-at cameras
at radius 2.7 aimed at (0, 0, 0.2), FFHQ intrinsics). Identities are pretraining seeds only
(`params.is_pretrain_identity`; by default PRETRAIN_IDENTITY_SEED_START, +1, ...), never evaluation ones.

Layout: ``dataset.json`` (the configuration, written first; a resumed run must match it) and
``shard_{k:05d}.npz``, each holding `SHARD_SCENES` consecutive scenes (the last one fewer) with all their views:
image uint8 [n, R, R, 3], depth float16 [n, R, R] (0 = background), mask uint8 [n, R, R] (coverage * 255),
label float32 [n, 25], identity int32 [n] (index into dataset.json's identity_seeds), scene int32 [n] (global
scene index), view int32 [n], expression float32 [n, 10], pose float32 [n, 6], part_labels uint8 [n, R, R] (from
version 2: which part of the head each pixel shows, names in dataset.json's part_names, as the video world's
`part_labels`; version-1 data sets load without them). A shard is written to a temporary
file and renamed, so a killed run leaves only finished shards; rerunning the same command renders the missing
ones and never rewrites a finished one. Every scene's randomness comes from (seed, identity seed, scene number)
alone, so shards are independent and byte-identical across runs.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from avatar_data import cameras
from avatar_data.worlds.heads import params as P
from hfagp_common import cli, limits

FORMAT_NAME = "hfagp-head-pretrain"
FORMAT_VERSION = 2
SHARD_SCENES = 32
SUPERSAMPLE = 2
MAX_YAW_DEG, MAX_PITCH_DEG = 40.0, 20.0
POSE_JITTER = {"yaw_deg": 10.0, "pitch_deg": 6.0, "roll_deg": 4.0, "translation": 0.01}
ARRAY_KEYS = ("image", "depth", "mask", "label", "identity", "scene", "view", "expression", "pose", "part_labels")
# The arrays of a version-1 data set (before part labels).
ARRAY_KEYS_V1 = ARRAY_KEYS[:-1]
_SCENE_STREAM, _CAMERA_STREAM = P.STREAMS["pretrain_scene"], P.STREAMS["pretrain_camera"]
NAME = "avatar_data.worlds.heads.dataset"
ERROR_PREFIX = f"{NAME}: error:"


def default_identity_seeds(num_identities: int, first: int = P.PRETRAIN_IDENTITY_SEED_START) -> list[int]:
    return list(range(first, first + num_identities))


def scene_parameters(seed: int, identity_seed: int, scene_number: int) -> tuple[np.ndarray, np.ndarray]:
    """(expression float32 [10], pose float32 [6]) of one scene; depends on these three numbers only."""
    gen = np.random.default_rng([int(seed), _SCENE_STREAM, int(identity_seed), int(scene_number)])
    expression = P.random_expressions(gen, 1)[0]
    j = POSE_JITTER
    pose = np.concatenate([np.radians(gen.uniform(-1, 1, 3) * [j["yaw_deg"], j["pitch_deg"], j["roll_deg"]]),
                           gen.uniform(-j["translation"], j["translation"], 3)]).astype(np.float32)
    return expression, pose


def scene_cameras(seed: int, identity_seed: int, scene_number: int, num_views: int) -> np.ndarray:
    """(yaw, pitch) offsets in degrees [V, 2] of a scene's views: view 0 near-frontal, the others spread."""
    gen = np.random.default_rng([int(seed), _CAMERA_STREAM, int(identity_seed), int(scene_number)])
    out = np.stack([gen.uniform(-MAX_YAW_DEG, MAX_YAW_DEG, num_views),
                    gen.uniform(-MAX_PITCH_DEG, MAX_PITCH_DEG, num_views)], axis=1)
    out[0] = [gen.uniform(-5.0, 5.0), gen.uniform(-3.0, 3.0)]
    return out


def _config(identity_seeds, scenes_per_identity, views_per_scene, resolution, seed) -> dict:
    from avatar_data.worlds.heads.model import PART_NAMES

    num_scenes = len(identity_seeds) * scenes_per_identity
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "identity_seeds": [int(s) for s in identity_seeds],
            "scenes_per_identity": int(scenes_per_identity), "views_per_scene": int(views_per_scene),
            "resolution": int(resolution), "supersample": SUPERSAMPLE, "seed": int(seed),
            "shard_scenes": SHARD_SCENES, "num_scenes": num_scenes, "num_images": num_scenes * views_per_scene,
            "num_shards": -(-num_scenes // SHARD_SCENES), "max_yaw_deg": MAX_YAW_DEG,
            "max_pitch_deg": MAX_PITCH_DEG, "pose_jitter": POSE_JITTER,
            "expression_names": list(P.EXPRESSION_NAMES), "pose_names": list(P.POSE_NAMES),
            "identity_dim": P.IDENTITY_DIM, "arrays": list(ARRAY_KEYS), "part_names": list(PART_NAMES)}


def shard_path(out_dir: str, k: int) -> str:
    return os.path.join(out_dir, f"shard_{k:05d}.npz")


def _render_shard(config: dict, k: int) -> dict:
    from avatar_data.worlds.heads import render

    seeds, per_id, v = config["identity_seeds"], config["scenes_per_identity"], config["views_per_scene"]
    scenes = range(k * SHARD_SCENES, min((k + 1) * SHARD_SCENES, config["num_scenes"]))
    cols = {key: [] for key in ("identity_vec", "identity", "scene", "view", "expression", "pose", "offsets")}
    for g in scenes:
        ident_index, number = divmod(g, per_id)
        ident_seed = seeds[ident_index]
        expression, pose = scene_parameters(config["seed"], ident_seed, number)
        cols["identity_vec"] += [P.sample_identity(ident_seed).vector] * v
        cols["identity"] += [ident_index] * v
        cols["scene"] += [g] * v
        cols["view"] += list(range(v))
        cols["expression"] += [expression] * v
        cols["pose"] += [pose] * v
        cols["offsets"].append(scene_cameras(config["seed"], ident_seed, number, v))
    offsets = np.concatenate(cols["offsets"])
    labels = cameras.yaw_pitch_cameras(np.radians(offsets[:, 0]), np.radians(offsets[:, 1]))
    out = render.render(np.stack(cols["identity_vec"]), np.stack(cols["expression"]), np.stack(cols["pose"]),
                        labels, resolution=config["resolution"], supersample=SUPERSAMPLE)
    return {"image": out["rgb"], "depth": out["depth"].astype(np.float16),
            "mask": np.round(out["mask"] * 255.0).astype(np.uint8), "label": labels.astype(np.float32),
            "identity": np.asarray(cols["identity"], np.int32), "scene": np.asarray(cols["scene"], np.int32),
            "view": np.asarray(cols["view"], np.int32), "expression": np.stack(cols["expression"]).astype(np.float32),
            "pose": np.stack(cols["pose"]).astype(np.float32), "part_labels": out["part"]}


def make_pretrain_dataset(out_dir: str, identity_seeds: Sequence[int], scenes_per_identity: int,
                          views_per_scene: int, resolution: int, seed: int = 0, progress: bool = True,
                          max_new_shards: int | None = None) -> dict:
    """Render (or finish rendering) the dataset in `out_dir`; returns a summary dict.

    identity_seeds: pretraining seeds only (ValueError otherwise). Existing finished shards are kept; a
    dataset.json of another configuration is an error. max_new_shards: stop after rendering this many new
    shards (None: all). Returns {'out_dir', 'num_shards', 'shards_rendered', 'shards_kept', 'complete',
    'images_rendered', 'render_s', 'images_per_s'}.
    """
    from tqdm.auto import tqdm

    from avatar_data.worlds.heads.world import save_npz_deterministic

    bad = [s for s in identity_seeds if not P.is_pretrain_identity(s)]
    if bad:
        raise ValueError(f"identity seeds {bad[:5]} are not pretraining identities (need >= "
                         f"{P.PRETRAIN_IDENTITY_SEED_START}; {P.EVALUATION_IDENTITY_SEEDS.start}.."
                         f"{P.EVALUATION_IDENTITY_SEEDS.stop - 1} are kept for evaluation)")
    if len(set(identity_seeds)) != len(identity_seeds) or not identity_seeds:
        raise ValueError("identity seeds must be non-empty and distinct")
    if scenes_per_identity < 1 or views_per_scene < 1 or resolution < 8:
        raise ValueError(f"need scenes >= 1, views >= 1 and resolution >= 8, got {scenes_per_identity}, "
                         f"{views_per_scene} and {resolution}")
    config = _config(identity_seeds, scenes_per_identity, views_per_scene, resolution, seed)
    os.makedirs(out_dir, exist_ok=True)
    manifest = os.path.join(out_dir, "dataset.json")
    if os.path.isfile(manifest):
        with open(manifest) as f:
            existing = json.load(f)
        # A version-1 data set of the same configuration is finished as it was begun: without part labels.
        ignored = ("version", "arrays", "part_names") if existing.get("version") == 1 else ()
        ours, theirs = ({k: v for k, v in d.items() if k not in ignored} for d in (config, existing))
        if theirs != ours:
            diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            raise ValueError(f"{out_dir} holds a dataset of another configuration (differs in {diff}); "
                             "use a new directory")
        config = existing
    else:
        if os.listdir(out_dir):
            raise FileExistsError(f"{out_dir} is not empty and has no dataset.json; refusing to write into it")
        _atomic_write(manifest, (json.dumps(config, indent=1) + "\n").encode())
    for name in os.listdir(out_dir):
        if name.startswith(".shard_") and ".tmp" in name:
            os.remove(os.path.join(out_dir, name))

    todo = [k for k in range(config["num_shards"]) if not os.path.isfile(shard_path(out_dir, k))]
    kept = config["num_shards"] - len(todo)
    if max_new_shards is not None:
        todo = todo[:max_new_shards]
    t0, images = time.perf_counter(), 0
    with tqdm(total=len(todo), desc="shards", unit="shard", disable=not progress, file=sys.stderr) as bar:
        for k in todo:
            arrays = _render_shard(config, k)
            arrays = {key: arrays[key] for key in config["arrays"]}
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".shard_{k:05d}.tmp")
            os.close(fd)
            try:
                save_npz_deterministic(tmp, arrays, compress=True)
                os.chmod(tmp, 0o644)
                os.replace(tmp, shard_path(out_dir, k))
            except BaseException:
                if os.path.exists(tmp):
                    os.remove(tmp)
                raise
            images += len(arrays["image"])
            bar.update(1)
    render_s = time.perf_counter() - t0
    done = sum(os.path.isfile(shard_path(out_dir, k)) for k in range(config["num_shards"]))
    return {"out_dir": os.path.abspath(out_dir), "num_shards": config["num_shards"], "shards_rendered": len(todo),
            "shards_kept": kept, "complete": done == config["num_shards"], "images_rendered": images,
            "render_s": round(render_s, 3), "images_per_s": round(images / render_s, 3) if images else None}


def _atomic_write(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def load_pretrain_dataset(path: str, allow_incomplete: bool = False) -> dict:
    """All shards of a dataset -> {'image': uint8 [N, R, R, 3], 'depth': float16 [N, R, R], 'mask': uint8
    [N, R, R], 'label': float32 [N, 25], 'identity': int32 [N], 'scene': int32 [N], 'view': int32 [N],
    'expression': float32 [N, 10], 'pose': float32 [N, 6], 'part_labels': uint8 [N, R, R] (version 2 on; absent
    from a version-1 data set), 'metadata': dataset.json's dict plus
    'shards_present', 'complete' and 'identity_vectors' float32 [num_identities, IDENTITY_DIM]}.

    Missing shards raise ValueError unless allow_incomplete (then the present ones are returned).
    """
    with open(os.path.join(path, "dataset.json")) as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}/dataset.json is not a {FORMAT_NAME} dataset")
    present = [k for k in range(meta["num_shards"]) if os.path.isfile(shard_path(path, k))]
    if len(present) != meta["num_shards"] and not allow_incomplete:
        missing = sorted(set(range(meta["num_shards"])) - set(present))
        raise ValueError(f"{path}: {len(missing)} of {meta['num_shards']} shards are missing (first: {missing[0]}); "
                         "rerun the command that made it to finish it")
    keys = ARRAY_KEYS_V1 if meta.get("version", 1) < 2 else ARRAY_KEYS
    parts = {k: [] for k in keys}
    for k in present:
        with np.load(shard_path(path, k)) as data:
            for key in keys:
                parts[key].append(data[key])
    r = meta["resolution"]
    empty = {"image": (0, r, r, 3), "depth": (0, r, r), "mask": (0, r, r), "label": (0, 25), "expression": (0, 10),
             "pose": (0, 6), "part_labels": (0, r, r)}
    dtypes = {"image": np.uint8, "depth": np.float16, "mask": np.uint8, "label": np.float32,
              "expression": np.float32, "pose": np.float32, "part_labels": np.uint8}
    out = {k: np.concatenate(v) if v else np.zeros(empty.get(k, (0,)), dtypes.get(k, np.int32))
           for k, v in parts.items()}
    meta = dict(meta, shards_present=present, complete=len(present) == meta["num_shards"],
                identity_vectors=P.identity_matrix([P.sample_identity(s) for s in meta["identity_seeds"]]))
    out["metadata"] = meta
    return out


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(NAME, description="Render many pretraining identities x expressions x views of the head "
                                             "world (resumable: rerun the same command to finish an interrupted run).")
    p.add_argument("out_dir", type=cli.path)
    p.add_argument("--identities", type=cli.int_in(1, limits.MAX_IDENTITIES), required=True, help="number of pretraining identities")
    p.add_argument("--first-identity", type=cli.int_in(P.PRETRAIN_IDENTITY_SEED_START, P.MAX_IDENTITY_SEED), default=P.PRETRAIN_IDENTITY_SEED_START,
                   help=f"first identity seed (>= {P.PRETRAIN_IDENTITY_SEED_START})")
    p.add_argument("--scenes", type=cli.int_in(1, 1000), required=True, help="scenes (expression + head pose) per identity")
    p.add_argument("--views", type=cli.int_in(1, 100), required=True, help="camera views per scene")
    p.add_argument("--resolution", type=cli.resolution, default=128)
    p.add_argument("--seed", type=cli.seed, default=0, help="seed of the scenes and cameras")
    p.add_argument("--quiet", action="store_true")
    return p


def _main(args) -> int:
    summary = make_pretrain_dataset(args.out_dir, default_identity_seeds(args.identities, args.first_identity),
                                    args.scenes, args.views, args.resolution, args.seed, progress=not args.quiet)
    cli.print_json(summary)


main = cli.entry_point(NAME, build_parser, _main)


if __name__ == "__main__":
    cli.exit(main())
