"""The dataset layouts (avatar_data.formats): round trips through the writers for each layout, and bad input
reported with file and index."""

import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from avatar_data import cameras
from avatar_data.formats import adnerf, common, eg3d, nerface
from avatar_data.formats.common import DatasetError
from avatar_synthetic import frame_colour, synthetic_audio, synthetic_frames, synthetic_labels


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f)


def _frames_of(clip, resolution=None):
    return common.clip_arrays(clip, resolution)["image"]


# ---------------------------------------------------------------------------------------------- EG3D


def test_eg3d_folder_roundtrip_in_natural_order(tmp_path, video):
    names = [f"{t}.png" for t in range(10)]  # '10' must not sort before '2'
    eg3d.write_eg3d_folder(str(tmp_path), video["frames"], video["labels"], names)
    clip = eg3d.read_eg3d_folder(str(tmp_path))
    assert clip.source_format == "eg3d" and clip.num_frames == 10
    assert list(clip.names) == names
    np.testing.assert_array_equal(clip.labels, video["labels"])  # labels reach us unchanged
    np.testing.assert_array_equal(_frames_of(clip), video["frames"])
    np.testing.assert_array_equal(clip.frame_index, np.arange(10))


def test_eg3d_hfagp_style_jpg_frames_keyed_by_png(tmp_path, video):
    labels_path = eg3d.write_eg3d_folder(str(tmp_path), video["frames"], video["labels"],
                                            [f"{t:05d}.png" for t in range(10)],
                                            labels_filename="test.json", image_ext=".jpg")
    assert not any(f.endswith(".png") for f in os.listdir(tmp_path))
    clip = eg3d.read_eg3d_folder(str(tmp_path))
    assert clip.metadata["labels_file"] == labels_path
    assert clip.frame_paths[3].endswith("00003.jpg")
    frames = _frames_of(clip)
    for t in range(10):  # JPEG: compare the frame's colour away from the marker pixel
        np.testing.assert_allclose(frames[t, 8:, 8:].mean(axis=(0, 1)), frame_colour(t), atol=3)


def test_eg3d_missing_image_names_file_and_index(tmp_path, video):
    path = eg3d.write_eg3d_folder(str(tmp_path), video["frames"], video["labels"])
    os.remove(tmp_path / "img00000004.png")
    with pytest.raises(DatasetError, match=r"labels\[4\] \('img00000004.png'\): image not found"):
        eg3d.read_eg3d_folder(str(tmp_path))
    assert os.path.isfile(path)


@pytest.mark.parametrize("bad, message", [
    (list(range(24)), r"labels\[2\] \('img00000002.png'\): label has 24 values"),
    ([float("nan")] + [0.0] * 24, r"labels\[2\] .*non-finite values"),
    ("abc", r"labels\[2\] .*not a list of numbers"),
])
def test_eg3d_bad_label(tmp_path, video, bad, message):
    path = eg3d.write_eg3d_folder(str(tmp_path), video["frames"], video["labels"])
    data = _read_json(path)
    data["labels"][2][1] = bad
    _write_json(path, data)
    with pytest.raises(DatasetError, match=message):
        eg3d.read_eg3d_folder(str(tmp_path))


def test_eg3d_non_rigid_camera_and_structure_errors(tmp_path, video):
    path = eg3d.write_eg3d_folder(str(tmp_path), video["frames"], video["labels"])
    data = _read_json(path)
    data["labels"][1][1][0] *= 3.0
    _write_json(path, data)
    with pytest.raises(DatasetError, match=r"labels\[1\].*not orthonormal"):
        eg3d.read_eg3d_folder(str(tmp_path))
    _write_json(path, {"labels": None})
    with pytest.raises(DatasetError, match="labels=null"):
        eg3d.read_eg3d_folder(str(tmp_path))


def test_eg3d_unlabeled_images_are_reported(tmp_path, video):
    eg3d.write_eg3d_folder(str(tmp_path), video["frames"], video["labels"])
    Image.fromarray(video["frames"][0]).save(tmp_path / "extra.png")
    with pytest.raises(DatasetError, match=r"1 image\(s\) have no label.*extra.png"):
        eg3d.read_eg3d_folder(str(tmp_path))
    clip = eg3d.read_eg3d_folder(str(tmp_path), ignore_unlabeled_images=True)
    assert clip.num_frames == 10


def test_frame_size_checks(tmp_path, video):
    frames = synthetic_frames(3, 16)
    frames = np.concatenate([frames, frames[:, :4]], axis=1)  # 20x16: not square
    eg3d.write_eg3d_folder(str(tmp_path), frames, video["labels"][:3])
    clip = eg3d.read_eg3d_folder(str(tmp_path))
    with pytest.raises(DatasetError, match=r"frame 0 \('img00000000.png'\).*16x20, not square"):
        common.clip_frame(clip, 0)


def test_resize_to_resolution(tmp_path, video):
    eg3d.write_eg3d_folder(str(tmp_path), video["frames"], video["labels"])
    clip = eg3d.read_eg3d_folder(str(tmp_path))
    small = common.clip_frame(clip, 5, 16)
    assert small.shape == (16, 16, 3) and small.dtype == np.uint8
    np.testing.assert_array_equal(small[8, 8], frame_colour(5))


# ---------------------------------------------------------------------------------------------- NeRFACE


def _nerface_labels(n, width, height):
    """Labels whose intrinsics NeRFACE can store: fx != fy, off-centre principal point."""
    k = cameras.focal_pixels_to_normalized_intrinsics((70.0, 72.0), width, height, cx=0.47 * width, cy=0.52 * height)
    return synthetic_labels(n, k)


def test_nerface_roundtrip_concatenates_splits_in_order(tmp_path, video):
    labels = _nerface_labels(10, 32, 32)
    nerface.write_nerface_folder(str(tmp_path), video["frames"], labels, video["expressions"],
                                 split_sizes={"train": 6, "val": 1, "test": 3})
    clip = nerface.read_nerface_folder(str(tmp_path), splits=("train", "val", "test"))
    assert clip.metadata["source_splits"] == {"train": 6, "val": 1, "test": 3}
    assert clip.names[6] == "val/f_0006" and clip.image_size == (32, 32)
    np.testing.assert_allclose(clip.labels, labels, atol=2e-6)
    np.testing.assert_array_equal(clip.expressions, video["expressions"])
    np.testing.assert_array_equal(_frames_of(clip), video["frames"])
    only_train = nerface.read_nerface_folder(str(tmp_path), splits=("train",))
    assert only_train.num_frames == 6


def test_nerface_transform_matrix_is_converted_from_opengl(tmp_path, video):
    # Hand-written transforms file: identity OpenGL camera at (0, 0, 4), camera_angle_x only.
    nerface.write_nerface_folder(str(tmp_path), video["frames"][:1], video["labels"][:1], video["expressions"][:1])
    path = tmp_path / "transforms_train.json"
    meta = _read_json(path)
    gl = np.eye(4)
    gl[2, 3] = 4.0
    angle = 2 * math.atan(16 / 40.0)  # focal 40 px for a 32 px wide frame
    meta = {"camera_angle_x": angle, "frames": [dict(meta["frames"][0], transform_matrix=gl.tolist())]}
    _write_json(path, meta)
    clip = nerface.read_nerface_folder(str(tmp_path), splits=("train",))
    c2w, k = cameras.split_eg3d_label(clip.labels[0])
    np.testing.assert_allclose(c2w, [[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 4], [0, 0, 0, 1]], atol=1e-7)
    # NeRFACE's default principal point is pixel W/2 with integer pixel centres: (16 + 0.5)/32.
    np.testing.assert_allclose(k, [[40 / 32, 0, 16.5 / 32], [0, 40 / 32, 16.5 / 32], [0, 0, 1]], atol=1e-6)
    assert clip.metadata["intrinsics_source"] == {"train": "camera_angle_x"}


def _edit_frame(path, index, **changes):
    meta = _read_json(path)
    meta["frames"][index].update(changes)
    _write_json(path, meta)


def test_nerface_bad_expression_and_missing_image(tmp_path, video):
    nerface.write_nerface_folder(str(tmp_path), video["frames"], video["labels"], video["expressions"],
                                 split_sizes={"train": 7, "test": 3})
    train_json = str(tmp_path / "transforms_train.json")
    good = _read_json(train_json)
    nan_expr = list(video["expressions"][5].astype(float))
    nan_expr[10] = float("nan")
    _edit_frame(train_json, 5, expression=nan_expr)
    with pytest.raises(DatasetError, match=r"transforms_train.json: frames\[5\].*expression has non-finite.*\[10\]"):
        nerface.read_nerface_folder(str(tmp_path))
    _write_json(train_json, good)
    _edit_frame(train_json, 2, expression=[0.0] * 75)
    with pytest.raises(DatasetError, match=r"frames\[2\].*expression has 75 values, expected 76"):
        nerface.read_nerface_folder(str(tmp_path))
    _write_json(train_json, good)
    os.remove(tmp_path / "test" / "f_0008.png")
    with pytest.raises(DatasetError, match=r"transforms_test.json: frames\[1\] \('./test/f_0008'\): image not found"):
        nerface.read_nerface_folder(str(tmp_path))


def test_nerface_with_hfagp_eg3d_labels(tmp_path, video):
    # HFA-GP: cropped frames + EG3D cameras in <split>/cropped_images/test.json; expressions from transforms.
    nerface.write_nerface_folder(str(tmp_path), video["frames"], _nerface_labels(10, 32, 32), video["expressions"],
                                 split_sizes={"train": 7, "test": 3})
    crops = 255 - video["frames"]
    eg3d_labels = {}
    for split, ts in (("train", range(7)), ("test", range(7, 10))):
        eg3d_labels[split] = eg3d.write_eg3d_folder(
            str(tmp_path / split / "cropped_images"), crops[list(ts)], video["labels"][list(ts)],
            [f"f_{t:04d}.png" for t in ts], labels_filename="test.json")
    clip = nerface.read_nerface_folder(str(tmp_path), eg3d_labels=eg3d_labels)
    np.testing.assert_array_equal(clip.labels, video["labels"])
    np.testing.assert_array_equal(_frames_of(clip), crops)
    np.testing.assert_array_equal(clip.expressions, video["expressions"])
    assert clip.metadata["camera_source"] == "eg3d_labels"


# ---------------------------------------------------------------------------------------------- AD-NeRF


def test_adnerf_roundtrip_audio_follows_aud_id(tmp_path, video):
    audio = synthetic_audio(12)
    aud_ids = [t + 2 for t in range(10)]  # audio offset by two rows
    adnerf.write_adnerf_folder(str(tmp_path), video["frames"], video["labels"], audio, aud_ids=aud_ids,
                                img_ids=[100 + t for t in range(10)], split_sizes={"train": 8, "val": 2},
                                image_ext=".png")
    clip = adnerf.read_adnerf_folder(str(tmp_path))
    assert clip.names[0] == "100" and clip.metadata["source_splits"] == {"train": 8, "val": 2}
    np.testing.assert_array_equal(clip.audio, audio[2:12])
    np.testing.assert_allclose(clip.labels, video["labels"], atol=2e-6)
    np.testing.assert_array_equal(_frames_of(clip), video["frames"])


def test_adnerf_audio_count_mismatch(tmp_path, video):
    adnerf.write_adnerf_folder(str(tmp_path), video["frames"], video["labels"], synthetic_audio(8),
                                split_sizes={"train": 8, "val": 2}, image_ext=".png")
    with pytest.raises(DatasetError, match=r"transforms_val.json: frames\[0\] \(img_id 8\): aud_id 8 is out of "
                                           r"range for .*aud.npy with 8 frames"):
        adnerf.read_adnerf_folder(str(tmp_path))
    clip = adnerf.read_adnerf_folder(str(tmp_path), clamp_audio_index=True)  # AD-NeRF's min(aud_id, N-1)
    assert clip.metadata["clamped_audio_frames"] == 2
    np.testing.assert_array_equal(clip.audio[8], clip.audio[7])


def test_adnerf_bad_audio_file_and_values(tmp_path, video):
    audio = synthetic_audio(10)
    adnerf.write_adnerf_folder(str(tmp_path), video["frames"], video["labels"], audio, image_ext=".png")
    audio[6, 3, 4] = np.nan
    np.save(tmp_path / "aud.npy", audio)
    with pytest.raises(DatasetError, match=r"aud.npy: row 6 \(used by frame 6, img_id 6\) has non-finite"):
        adnerf.read_adnerf_folder(str(tmp_path), splits=("train",))
    np.save(tmp_path / "aud.npy", np.zeros((10, 16, 28), np.float32))
    with pytest.raises(DatasetError, match=r"aud.npy: shape \(10, 16, 28\)"):
        adnerf.read_adnerf_folder(str(tmp_path), splits=("train",))


def test_adnerf_missing_image_and_size_mismatch(tmp_path, video):
    adnerf.write_adnerf_folder(str(tmp_path), video["frames"], video["labels"], synthetic_audio(10))
    os.remove(tmp_path / "head_imgs" / "3.jpg")
    with pytest.raises(DatasetError, match=r"frames\[3\] \(img_id 3\): image not found: .*head_imgs/3.jpg"):
        adnerf.read_adnerf_folder(str(tmp_path), splits=("train",))
    Image.fromarray(synthetic_frames(1, 40)[0]).save(tmp_path / "head_imgs" / "3.jpg")
    clip = adnerf.read_adnerf_folder(str(tmp_path), splits=("train",))
    with pytest.raises(DatasetError, match=r"frame 3 \('3'\).*40x40, but the clip's intrinsics were computed "
                                           r"for 32x32"):
        common.clip_arrays(clip, 32)


def test_audio_windows_zero_padded_and_centred():
    audio = synthetic_audio(5)
    win = common.audio_windows(audio, 4)
    assert win.shape == (5, 4, 16, 29)
    np.testing.assert_array_equal(win[:, 2], audio)  # centre = the frame's own features
    np.testing.assert_array_equal(win[0, 0], 0)  # t - 2 < 0
    np.testing.assert_array_equal(win[0, 1], 0)
    np.testing.assert_array_equal(win[3, 0], audio[1])
    np.testing.assert_array_equal(win[4, 3], 0)  # t + 1 = 5 is past the end
    np.testing.assert_array_equal(win[3, 3], audio[4])


def test_nerface_camera_normalization_recovers_eg3d_scene(tmp_path, video):
    # The tracker's world: EG3D scene scaled by 10 and shifted by (1, 2, 3).
    c2w, k = cameras.split_eg3d_label(video["labels"].astype(np.float64))
    tracker = c2w.copy()
    tracker[:, :3, 3] = 10.0 * c2w[:, :3, 3] + [1.0, 2.0, 3.0]
    nerface.write_nerface_folder(str(tmp_path), video["frames"], cameras.eg3d_label(tracker, k), video["expressions"])
    raw = nerface.read_nerface_folder(str(tmp_path), splits=("train",))
    assert raw.metadata["normalization"] == {}  # off by default
    np.testing.assert_allclose(raw.labels[:, 3], tracker[:, 0, 3], rtol=1e-5)
    dist = np.linalg.norm(c2w[:, :3, 3] - [0, 0, 0.2], axis=-1).mean()
    clip = nerface.read_nerface_folder(str(tmp_path), splits=("train",),
                                       normalization=cameras.CameraNormalization(distance=dist))
    np.testing.assert_allclose(clip.labels, video["labels"], atol=2e-5)
    assert clip.metadata["normalization"]["scale"] == pytest.approx(0.1)
    np.testing.assert_allclose(clip.metadata["normalization"]["lookat"], [1.0, 2.0, 5.0], atol=1e-4)


def test_in_memory_clip(video):
    clip = common.VideoClip(source_format="synthetic", root="memory", labels=video["labels"],
                             names=tuple(str(t) for t in range(10)), frames=video["frames"])
    arrays = common.clip_arrays(clip, 16)
    assert arrays["image"].shape == (10, 16, 16, 3)
    np.testing.assert_array_equal(arrays["image"][4, 8, 8], frame_colour(4))
    with pytest.raises(DatasetError, match=r"labels has shape \(9, 25\), expected \(10, 25\)"):
        common.VideoClip(source_format="synthetic", root="memory", labels=video["labels"][:9],
                          names=tuple(str(t) for t in range(10)), frames=video["frames"])
    with pytest.raises(DatasetError, match="exactly one of frame_paths and frames"):
        common.VideoClip(source_format="synthetic", root="memory", labels=video["labels"],
                          names=tuple(str(t) for t in range(10)))
