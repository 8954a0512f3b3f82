"""The pretraining dataset of the head world: resumable shards, the identity split, the loader's arrays."""

import json
import os

import numpy as np
import pytest

from avatar_data import cameras
from avatar_data.worlds.heads import dataset
from avatar_data.worlds.heads import params as P

RES = 32  # the same program as the world tests
IDENTITIES = dataset.default_identity_seeds(2)
SCENES, VIEWS = 3, 2


@pytest.fixture
def small_shards(monkeypatch):
    """4 scenes per shard: 2 identities x 3 scenes make 2 shards (4 + 2 scenes)."""
    monkeypatch.setattr(dataset, "SHARD_SCENES", 4)


def test_interrupted_run_resumes_without_rewriting_finished_shards(tmp_path, small_shards):
    out = tmp_path / "ds"
    first = dataset.make_pretrain_dataset(str(out), IDENTITIES, SCENES, VIEWS, RES, progress=False, max_new_shards=1)
    assert first["shards_rendered"] == 1 and not first["complete"]
    shard0 = out / "shard_00000.npz"
    stat0, bytes0 = os.stat(shard0), shard0.read_bytes()
    with pytest.raises(ValueError, match="shards are missing"):
        dataset.load_pretrain_dataset(str(out))
    (out / ".shard_00001.tmp-left-by-a-killed-run").write_bytes(b"partial")

    second = dataset.make_pretrain_dataset(str(out), IDENTITIES, SCENES, VIEWS, RES, progress=False)
    assert second["shards_kept"] == 1 and second["shards_rendered"] == 1 and second["complete"]
    assert os.stat(shard0).st_mtime_ns == stat0.st_mtime_ns and shard0.read_bytes() == bytes0
    assert sorted(os.listdir(out)) == ["dataset.json", "shard_00000.npz", "shard_00001.npz"]
    third = dataset.make_pretrain_dataset(str(out), IDENTITIES, SCENES, VIEWS, RES, progress=False)
    assert third["shards_rendered"] == 0 and third["complete"]

    fresh = tmp_path / "fresh"
    dataset.make_pretrain_dataset(str(fresh), IDENTITIES, SCENES, VIEWS, RES, progress=False)
    for name in ("dataset.json", "shard_00000.npz", "shard_00001.npz"):
        assert (fresh / name).read_bytes() == (out / name).read_bytes(), name

    with pytest.raises(ValueError, match="another configuration"):
        dataset.make_pretrain_dataset(str(out), IDENTITIES, SCENES + 1, VIEWS, RES, progress=False)


def test_loaded_arrays(tmp_path, small_shards):
    out = tmp_path / "ds"
    dataset.make_pretrain_dataset(str(out), IDENTITIES, SCENES, VIEWS, RES, progress=False)
    data = dataset.load_pretrain_dataset(str(out))
    n = len(IDENTITIES) * SCENES * VIEWS
    shapes = {"image": ((n, RES, RES, 3), np.uint8), "depth": ((n, RES, RES), np.float16),
              "mask": ((n, RES, RES), np.uint8), "label": ((n, 25), np.float32), "identity": ((n,), np.int32),
              "scene": ((n,), np.int32), "view": ((n,), np.int32), "expression": ((n, 10), np.float32),
              "pose": ((n, 6), np.float32), "part_labels": ((n, RES, RES), np.uint8)}
    for key, (shape, dtype) in shapes.items():
        assert data[key].shape == shape and data[key].dtype == dtype, key
    # Part labels (of each pixel's centre ray, the mask from its supersampled rays): background where no ray hit,
    # a part where every ray did (but for the odd silhouette pixel); skin in every image, the face's parts in most
    # (closed eyes and views up to 40 deg away hide some at this resolution).
    names = data["metadata"]["part_names"]
    background = data["part_labels"] == names.index("background")
    assert np.mean(background[data["mask"] == 0]) > 0.99 and np.mean(~background[data["mask"] == 255]) > 0.99
    shown = lambda part: np.any(data["part_labels"] == names.index(part), axis=(1, 2))
    assert np.all(shown("skin"))
    for part in ("eyes", "lips", "nose", "hair"):
        assert np.mean(shown(part)) > 0.5, (part, shown(part))
    np.testing.assert_array_equal(data["scene"], np.repeat(np.arange(len(IDENTITIES) * SCENES), VIEWS))
    np.testing.assert_array_equal(data["identity"], np.repeat(np.arange(len(IDENTITIES)), SCENES * VIEWS))
    np.testing.assert_array_equal(data["view"], np.tile(np.arange(VIEWS), len(IDENTITIES) * SCENES))
    # One scene = one expression and head pose seen from several cameras.
    for s in range(len(IDENTITIES) * SCENES):
        rows = data["scene"] == s
        assert len(np.unique(data["expression"][rows], axis=0)) == 1
        assert len(np.unique(data["label"][rows], axis=0)) == VIEWS
    assert len(np.unique(data["expression"], axis=0)) == len(IDENTITIES) * SCENES
    meta = data["metadata"]
    assert meta["identity_seeds"] == IDENTITIES and meta["complete"]
    assert meta["identity_vectors"].shape == (len(IDENTITIES), P.IDENTITY_DIM)
    for label in data["label"]:
        c2w, k = cameras.split_eg3d_label(label.astype(np.float64))
        assert cameras.camera_problems(c2w, k) == []
        centre = c2w[:3, 3]
        assert abs(np.degrees(np.arctan2(centre[0], centre[2]))) <= dataset.MAX_YAW_DEG + 1e-3
    depth, mask = data["depth"].astype(np.float32), data["mask"]
    assert np.all(depth[mask == 0] == 0) and depth[mask > 0].min() >= 2.25 and depth[mask > 0].max() <= 3.3
    frontal = data["label"][data["view"] == 0]
    yaw0 = np.degrees(np.arctan2(frontal[:, 3], frontal[:, 11]))
    assert np.abs(yaw0).max() <= 5.0 + 1e-3


def test_identity_split_never_overlaps_evaluation(tmp_path):
    seeds = dataset.default_identity_seeds(50)
    assert all(P.is_pretrain_identity(s) and not P.is_evaluation_identity(s) for s in seeds)
    assert not set(P.EVALUATION_IDENTITY_SEEDS) & set(range(P.PRETRAIN_IDENTITY_SEED_START, 10 ** 4))
    for bad in ([3, 1000], [999]):
        with pytest.raises(ValueError, match="not pretraining identities"):
            dataset.make_pretrain_dataset(str(tmp_path / "x"), bad, 1, 1, RES, progress=False)
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit) as e:
        dataset.main([str(tmp_path / "y"), "--identities", "2", "--scenes", "1"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:  # an evaluation identity is refused at parsing
        dataset.main([str(tmp_path / "y"), "--identities", "1", "--first-identity", "12", "--scenes", "1",
                      "--views", "1", "--resolution", str(RES), "--quiet"])
    assert e.value.code == 2


def test_cli_writes_a_loadable_dataset(tmp_path, capsys):
    out = tmp_path / "cli"
    assert dataset.main([str(out), "--identities", "2", "--scenes", "2", "--views", "2", "--resolution", str(RES),
                         "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] and summary["images_rendered"] == 8
    assert len(dataset.load_pretrain_dataset(str(out))["image"]) == 8


def test_a_version_1_data_set_is_finished_and_loaded_without_part_labels(tmp_path, small_shards):
    """A data set begun before part labels (version 1) is finished in its own layout and loads without them."""
    out = tmp_path / "ds"
    dataset.make_pretrain_dataset(str(out), IDENTITIES, SCENES, VIEWS, RES, progress=False, max_new_shards=1)
    meta = json.loads((out / "dataset.json").read_text())
    meta.update(version=1, arrays=list(dataset.ARRAY_KEYS_V1))
    meta.pop("part_names")
    (out / "dataset.json").write_text(json.dumps(meta))
    shard = out / "shard_00000.npz"
    with np.load(shard) as data:
        arrays = {k: data[k] for k in dataset.ARRAY_KEYS_V1}
    np.savez(shard, **arrays)

    summary = dataset.make_pretrain_dataset(str(out), IDENTITIES, SCENES, VIEWS, RES, progress=False)
    assert summary["shards_rendered"] == 1 and summary["complete"]
    with np.load(out / "shard_00001.npz") as data:
        assert sorted(data.files) == sorted(dataset.ARRAY_KEYS_V1)
    data = dataset.load_pretrain_dataset(str(out))
    assert "part_labels" not in data and len(data["image"]) == len(IDENTITIES) * SCENES * VIEWS
    with pytest.raises(ValueError, match="another configuration"):
        dataset.make_pretrain_dataset(str(out), IDENTITIES, SCENES, VIEWS + 1, RES, progress=False)
