"""tfds builder (array_record, no TensorFlow) and grain pipelines: alignment, time split, shuffling,
sharding, checkpointing of the iterator position, evaluation order."""

import os
import sys

import numpy as np
import pytest

from avatar_data import cameras, pipeline
from avatar_data.formats import adnerf, common, eg3d, nerface
from avatar_data.array_source import ArraySource
from avatar_data.formats.common import DatasetError
from avatar_data.tfds_builder import AvatarVideoConfig, open_split, prepare_dataset, prepared_metadata, time_split
from avatar_synthetic import frame_colour, synthetic_audio

RES = 16  # sources are 32x32: every frame is resized


def _write_source(fmt, root, video):
    if fmt == "eg3d":
        eg3d.write_eg3d_folder(root, video["frames"], video["labels"])
        return {}
    if fmt == "nerface":
        nerface.write_nerface_folder(root, video["frames"], video["labels"], video["expressions"],
                                     split_sizes={"train": 6, "test": 4})
        return {}
    audio = synthetic_audio(13)
    adnerf.write_adnerf_folder(root, video["frames"], video["labels"], audio, aud_ids=[t + 3 for t in range(10)],
                                split_sizes={"train": 8, "val": 2}, image_ext=".png")
    return {"aud_rows": np.arange(3, 13)}


def _build(fmt, tmp_path, video, **config):
    src = str(tmp_path / f"src_{fmt}")
    extra = _write_source(fmt, src, video)
    cfg = AvatarVideoConfig(name=f"tiny_{fmt}", source_dir=src, source_format=fmt, resolution=RES,
                            test_fraction=0.3, audio_window=4, **config)
    builder = prepare_dataset(cfg, str(tmp_path / "tfds"))
    return builder, extra


@pytest.mark.parametrize("fmt", ["eg3d", "nerface", "adnerf"])
def test_prepared_dataset_is_aligned_and_split_by_time(tmp_path, video, fmt):
    builder, extra = _build(fmt, tmp_path, video)
    assert "tensorflow" not in sys.modules
    train, test = open_split(builder.data_dir, "train"), open_split(builder.data_dir, "test")
    assert (len(train), len(test)) == (7, 3)
    for split, source, frames in (("train", train, range(0, 7)), ("test", test, range(7, 10))):
        records = [source[i] for i in range(len(source))]
        assert [int(r["frame_index"]) for r in records] == list(frames)  # written in time order
        for r in records:
            t = int(r["frame_index"])
            assert r["image"].dtype == np.uint8 and r["image"].shape == (RES, RES, 3)
            np.testing.assert_array_equal(r["image"][RES // 2, RES // 2], frame_colour(t))
            np.testing.assert_allclose(r["label"], video["labels"][t], atol=2e-6)
            if fmt == "nerface":
                np.testing.assert_array_equal(r["expression"], video["expressions"][t])
            else:
                assert "expression" not in r
            if fmt == "adnerf":
                audio = synthetic_audio(13)
                np.testing.assert_array_equal(r["audio"], audio[extra["aud_rows"][t]])
                # Window of 4: frames t-2 .. t+1; a training window stays within the training split (zeros
                # past its end), a test window reads the training frames before it (zeros past the video).
                last = 7 if split == "train" else 10
                for j in range(4):
                    s = t - 2 + j
                    expected = audio[extra["aud_rows"][s]] if 0 <= s < last else 0.0
                    np.testing.assert_array_equal(r["audio_window"][j], expected)
                if split == "test" and t == 7:  # the first test frame is not zero-padded on the left
                    assert np.any(r["audio_window"][0] != 0) and np.any(r["audio_window"][1] != 0)
            else:
                assert "audio" not in r
    meta = prepared_metadata(builder.data_dir)
    assert meta["num_train_frames"] == 7 and len(meta["names"]) == 10 and meta["source_format"] == fmt


def test_test_split_from_trailing_source_split(tmp_path, video):
    builder, _ = _build("nerface", tmp_path, video, test_source_split="test")
    assert len(open_split(builder.data_dir, "test")) == 4
    with pytest.raises(DatasetError, match="must be the last source split"):
        _build("nerface", tmp_path / "b", video, test_source_split="train")


def test_time_split_and_build_errors(tmp_path, video):
    assert time_split(10, 0.3) == 7
    assert time_split(10, num_test_frames=1) == 9
    with pytest.raises(DatasetError, match="both must be >= 1"):
        time_split(10, 0.0)
    src = tmp_path / "src"
    eg3d.write_eg3d_folder(str(src), video["frames"], video["labels"])
    os.remove(src / "img00000006.png")
    cfg = AvatarVideoConfig(name="broken", source_dir=str(src), source_format="eg3d", resolution=RES)
    with pytest.raises(DatasetError, match=r"labels\[6\] \('img00000006.png'\): image not found"):
        prepare_dataset(cfg, str(tmp_path / "tfds"))


def _check_batch(batch, labels, batch_size):
    assert batch["image"].dtype == np.float32 and batch["image"].shape == (batch_size, RES, RES, 3)
    assert batch["label"].dtype == np.float32 and batch["frame_index"].dtype == np.int32
    assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0
    for b, t in enumerate(batch["frame_index"]):
        expected = frame_colour(int(t)).astype(np.float32) / 127.5 - 1.0
        np.testing.assert_allclose(batch["image"][b, RES // 2, RES // 2], expected, atol=1e-6)
        np.testing.assert_allclose(batch["label"][b], labels[t], atol=2e-6)


def test_train_iterator_shuffles_repeats_shards_and_checkpoints(tmp_path, video):
    builder, _ = _build("nerface", tmp_path, video)
    train = open_split(builder.data_dir, "train")
    it = pipeline.make_train_iterator(train, 2, seed=1, shard_index=0, shard_count=1)
    batch = next(it)
    _check_batch(batch, video["labels"], 2)
    assert batch["expression"].shape == (2, 76) and batch["expression"].dtype == np.float32
    it.close()

    # Two epochs of batch 1: every frame twice, in a different order each epoch.
    it = pipeline.make_train_iterator(train, 1, seed=1, shard_index=0, shard_count=1, num_epochs=2)
    order = [int(b["frame_index"][0]) for b in it]
    assert sorted(order) == sorted(list(range(7)) * 2)
    assert sorted(order[:7]) == list(range(7)) and order[:7] != order[7:]

    # Shards are disjoint and cover the split.
    seen = []
    for shard in range(2):
        it = pipeline.make_train_iterator(train, 1, seed=0, shard_index=shard, shard_count=2, num_epochs=1)
        seen.append({int(b["frame_index"][0]) for b in it})
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(7))

    # Two processes with batch 2 each see exactly the global batches of one process with batch 4.
    single = pipeline.make_train_iterator(train, 4, seed=2, shard_index=0, shard_count=1)
    shards = [pipeline.make_train_iterator(train, 2, seed=2, shard_index=i, shard_count=2) for i in range(2)]
    for _ in range(6):
        expected = next(single)["frame_index"].tolist()
        assert next(shards[0])["frame_index"].tolist() + next(shards[1])["frame_index"].tolist() == expected

    # Checkpoint the position, continue elsewhere from the saved state.
    it = pipeline.make_train_iterator(train, 2, seed=3, shard_index=0, shard_count=1)
    for _ in range(5):
        next(it)
    state = pipeline.iterator_state(it)
    expected = [next(it)["frame_index"].tolist() for _ in range(4)]
    resumed = pipeline.make_train_iterator(train, 2, seed=3, shard_index=0, shard_count=1)
    pipeline.restore_iterator_state(resumed, state)
    assert [next(resumed)["frame_index"].tolist() for _ in range(4)] == expected
    it.close()
    resumed.close()


def test_worker_processes_give_the_same_batches_and_restore(tmp_path, video):
    builder, _ = _build("adnerf", tmp_path, video)
    train = open_split(builder.data_dir, "train")
    kwargs = dict(seed=5, shard_index=0, shard_count=1)
    reference = pipeline.make_train_iterator(train, 2, worker_count=0, **kwargs)
    ref = [next(reference) for _ in range(6)]
    workers = pipeline.make_train_iterator(train, 2, worker_count=2, **kwargs)
    got = [next(workers) for _ in range(3)]
    state = pipeline.iterator_state(workers)
    workers.close()
    for a, b in zip(ref, got):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    _check_batch(got[0], video["labels"], 2)
    assert got[0]["audio_window"].shape == (2, 4, 16, 29)
    resumed = pipeline.make_train_iterator(train, 2, worker_count=2, **kwargs)
    pipeline.restore_iterator_state(resumed, state)
    assert [next(resumed)["frame_index"].tolist() for _ in range(3)] == [b["frame_index"].tolist() for b in ref[3:]]
    resumed.close()
    reference.close()


def test_eval_frames_in_time_order(tmp_path, video):
    builder, _ = _build("eg3d", tmp_path, video)
    test = open_split(builder.data_dir, "test")
    frames = pipeline.load_eval_frames(test)
    np.testing.assert_array_equal(frames["frame_index"], [7, 8, 9])
    assert frames["image"].dtype == np.float32 and frames["image"].shape == (3, RES, RES, 3)
    np.testing.assert_allclose(frames["label"], video["labels"][7:], atol=2e-6)
    raw = pipeline.load_eval_frames(test, image_dtype=np.uint8)
    np.testing.assert_array_equal(raw["image"][:, 5, 5], [frame_colour(t) for t in (7, 8, 9)])
    batches = list(pipeline.iterate_eval_batches(test, 2))
    assert [b["frame_index"].tolist() for b in batches] == [[7, 8], [9, 9]]
    assert [b["mask"].tolist() for b in batches] == [[True, True], [True, False]]


def test_array_source_runs_the_same_pipeline_without_tfds(tmp_path, video):
    eg3d.write_eg3d_folder(str(tmp_path), video["frames"], video["labels"])
    clip = eg3d.read_eg3d_folder(str(tmp_path))
    arrays = common.clip_arrays(clip, RES)
    # Store the frames out of time order: the eval helpers must restore it from frame_index.
    perm = np.array([3, 0, 9, 1, 8, 2, 7, 4, 6, 5])
    source = ArraySource({k: v[perm] for k, v in arrays.items()})
    assert len(source) == 10 and int(source[0]["frame_index"]) == 3
    it = pipeline.make_train_iterator(source, 4, seed=0, shard_index=0, shard_count=1)
    _check_batch(next(it), video["labels"], 4)
    it.close()
    ordered = pipeline.load_eval_frames(source)
    np.testing.assert_array_equal(ordered["frame_index"], np.arange(10))
    np.testing.assert_allclose(ordered["label"], video["labels"], atol=0)
    assert ordered["image"].min() >= -1 and ordered["image"].max() == 1.0  # the white marker pixel
    with pytest.raises(ValueError, match="share their first dimension"):
        ArraySource({"image": arrays["image"], "label": arrays["label"][:3]})
    np.testing.assert_allclose(cameras.split_eg3d_label(ordered["label"])[1][:, 0, 0], cameras.FFHQ_FOCAL, atol=1e-6)
