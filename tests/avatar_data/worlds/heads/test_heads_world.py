"""The talking-head world (avatar_data.worlds.heads): one tiny world written through the CLI, checked file by file,
read back through the three readers, compared byte for byte with a second run, and its renders checked
against the model's geometry. Every render here is 32x32 (one compiled program for the whole file)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from avatar_data import audio_features, cameras
from avatar_data.formats import adnerf, common, eg3d, nerface
from avatar_data.worlds.heads import params as P
from avatar_data.worlds.heads import render, world
from avatar_data.worlds.heads import speech as speech_module
from avatar_data.worlds.heads.__main__ import ERROR_PREFIX, main

RES, FRAMES, TEST, SEED = 32, 8, 3, 4
VIEWS = [(20.0, 0.0), (-35.0, 0.0), (0.0, 15.0)]


def _argv(out, seed=SEED, *extra):
    return [str(out), "--seed", str(seed), "--frames", str(FRAMES), "--test-frames", str(TEST), "--resolution",
            str(RES), "--novel-views", ",".join(f"{y:g}:{p:g}" for y, p in VIEWS), "--quiet", *extra]


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("heads") / "w"
    assert main(_argv(out)) == 0
    return out


@pytest.fixture(scope="module")
def truth(world_dir):
    with np.load(world_dir / "ground_truth.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def info(world_dir):
    return json.loads((world_dir / "world.json").read_text())


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_layout(world_dir, info, truth):
    files = set(_files(world_dir))
    for name in ("frames/dataset.json", "split.json", "expression.npy", "aud.npy", "speech.wav",
                 "novel_views/dataset.json", "novel_views/views.json", "ground_truth.npz", "world.json",
                 "nerface/transforms_train.json", "nerface/transforms_test.json", "adnerf/transforms_train.json",
                 "adnerf/transforms_val.json", "adnerf/aud.npy"):
        assert name in files, name
    assert sum(f.startswith("frames/") and f.endswith(".png") for f in files) == FRAMES
    assert sum(f.startswith("novel_views/") and f.endswith(".png") for f in files) == TEST * len(VIEWS)
    assert info["format"] == world.FORMAT_NAME and info["num_frames"] == FRAMES and info["resolution"] == RES
    split = json.loads((world_dir / "split.json").read_text())
    assert split == {"train": list(range(FRAMES - TEST)), "test": list(range(FRAMES - TEST, FRAMES))}
    assert np.load(world_dir / "expression.npy").shape == (FRAMES, 76)
    assert np.load(world_dir / "aud.npy").shape == (FRAMES, 16, 29)
    assert truth["expression"].shape == (FRAMES, 10) and truth["pose"].shape == (FRAMES, 6)
    assert truth["depth"].shape == (FRAMES, RES, RES) and truth["depth"].dtype == np.float16
    assert truth["novel_depth"].shape == (TEST * len(VIEWS), RES, RES)
    assert list(truth["expression_names"]) == list(P.EXPRESSION_NAMES)
    wave, rate = audio_features.read_wav(world_dir / "speech.wav")
    assert rate == 16000 and len(wave) == FRAMES * 16000 // 25


def test_same_seed_is_byte_identical_and_another_seed_differs(world_dir, info, tmp_path):
    again = tmp_path / "again"
    assert main(_argv(again)) == 0
    assert _files(again) == _files(world_dir)
    for name in _files(world_dir):
        a, b = (world_dir / name).read_bytes(), (again / name).read_bytes()
        if name == "world.json":  # its timings differ from run to run, nothing else does
            ja, jb = json.loads(a), json.loads(b)
            ja.pop("timing_s"), jb.pop("timing_s")
            assert ja == jb
        else:
            assert a == b, name
    other = tmp_path / "other"
    assert main(_argv(other, seed=SEED + 1)) == 0
    assert (other / "frames/00000.png").read_bytes() != (world_dir / "frames/00000.png").read_bytes()
    assert json.loads((other / "world.json").read_text())["identity"] != info["identity"]


def test_readers_round_trip(world_dir, truth):
    eg3d_clip = eg3d.read_eg3d_folder(str(world_dir / "frames"))
    frames = common.clip_arrays(eg3d_clip)["image"]
    assert frames.shape == (FRAMES, RES, RES, 3)
    np.testing.assert_allclose(eg3d_clip.labels, truth["labels"], atol=1e-6)
    nerface_clip = nerface.read_nerface_folder(str(world_dir / "nerface"))
    np.testing.assert_allclose(nerface_clip.expressions, np.load(world_dir / "expression.npy"), atol=1e-6)
    np.testing.assert_allclose(nerface_clip.labels, truth["labels"], atol=1e-5)
    np.testing.assert_array_equal(common.clip_arrays(nerface_clip)["image"], frames)
    adnerf_clip = adnerf.read_adnerf_folder(str(world_dir / "adnerf"))
    np.testing.assert_array_equal(adnerf_clip.audio, np.load(world_dir / "aud.npy"))
    np.testing.assert_allclose(adnerf_clip.labels, truth["labels"], atol=1e-5)
    np.testing.assert_array_equal(common.clip_arrays(adnerf_clip)["image"], frames)


def test_tracked_expressions_hold_the_true_values_in_their_slots(world_dir, truth):
    tracked = np.load(world_dir / "expression.npy")
    slots = list(world.EXPRESSION_SLOTS)
    assert np.abs(tracked[:, slots] - truth["expression"]).max() < 6 * world.TRACKER_NOISE
    mixed = truth["expression"] @ truth["expression_mix_matrix"] + truth["expression_mix_bias"]
    assert np.abs(tracked[:, len(slots):] - mixed).max() < 6 * world.TRACKER_NOISE


def test_novel_views_depth_and_masks(world_dir, truth):
    entries = json.loads((world_dir / "novel_views/views.json").read_text())["views"]
    index = json.loads((world_dir / "novel_views/dataset.json").read_text())["labels"]
    labels = {name: np.asarray(label) for name, label in index}
    assert sorted((e["frame_index"], e["view_index"]) for e in entries) == \
        [(f, v) for f in range(FRAMES - TEST, FRAMES) for v in range(len(VIEWS))]
    names = [f"{f:05d}_view{v}.png" for f, v in zip(truth["novel_frame_index"], truth["novel_view_index"])]
    np.testing.assert_allclose(np.stack([labels[n] for n in names]), truth["novel_labels"], atol=1e-6)
    world_labels = dict(zip(names, truth["novel_world_labels"]))
    for e in entries:
        assert (e["yaw_offset_deg"], e["pitch_offset_deg"]) == VIEWS[e["view_index"]]
        c2w, _ = cameras.split_eg3d_label(world_labels[e["name"]].astype(np.float64))
        centre = c2w[:3, 3]
        yaw = math.degrees(math.atan2(centre[0], centre[2]))
        assert yaw == pytest.approx(VIEWS[e["view_index"]][0], abs=1e-3)
        assert (world_dir / "novel_views" / e["name"]).is_file()
    for depth, mask in ((truth["depth"], truth["mask"]), (truth["novel_depth"], truth["novel_mask"])):
        depth, mask = depth.astype(np.float32), mask.astype(np.float32)
        assert mask.min() >= 0 and mask.max() <= 1 and (mask == 1).mean() > 0.2 and (mask == 0).mean() > 0.2
        assert np.all(depth[mask == 0] == 0)
        covered = depth[mask > 0]
        assert covered.min() >= render.T_NEAR and covered.max() <= render.T_FAR
    # Each novel view shows the same person in the same frame: the test frame's own render differs from the
    # views, the views differ from each other.
    for f in range(FRAMES - TEST, FRAMES):
        masks = truth["novel_mask"][truth["novel_frame_index"] == f]
        assert len(masks) == len(VIEWS)
        assert not np.array_equal(masks[0], masks[1])


def test_surfaces_stay_in_the_eg3d_box(truth):
    for labels, depth in ((truth["world_labels"], truth["depth"]), (truth["novel_world_labels"], truth["novel_depth"])):
        for label, d in zip(labels, depth.astype(np.float32)):
            origin, direction = render.pixel_rays(label.astype(np.float64), RES, 1, xp=np)
            points = np.asarray(origin)[:, None] + np.stack(direction) * d.reshape(-1)[None]
            inside = points[:, d.reshape(-1) > 0]
            assert np.abs(inside).max() <= 0.5


def test_camera_labels_are_valid(truth):
    for label in np.concatenate([truth["labels"], truth["novel_labels"], truth["world_labels"],
                                 truth["novel_world_labels"]]):
        c2w, k = cameras.split_eg3d_label(label.astype(np.float64))
        assert cameras.camera_problems(c2w, k) == []


def test_head_frame_labels_undo_the_head_pose(truth):
    """A point fixed on the head projects to the same pixel through the world camera (head posed) and through
    the head-frame camera (head at rest)."""
    rest = np.array([0.03, 0.02, 0.15])
    for label, head_label, pose in zip(truth["world_labels"], truth["labels"], truth["pose"]):
        posed = P.head_to_world(rest / P.HEAD_SCALE, pose)
        unposed = P.head_to_world(rest / P.HEAD_SCALE, np.zeros(6))
        np.testing.assert_allclose(_project(label, posed), _project(head_label, unposed), atol=1e-5)


def test_part_labels_and_face_points(world_dir, info, truth):
    from avatar_data.worlds import layout
    from avatar_data.worlds.heads import model

    assert info["version"] == 2 and info["part_names"] == list(model.PART_NAMES)
    assert truth["part_labels"].shape == (FRAMES, RES, RES) and truth["part_labels"].dtype == np.uint8
    assert truth["novel_part_labels"].shape == (TEST * len(VIEWS), RES, RES)
    # Labels (of the centre ray) and coverage (of the sub-rays at edges) agree but at a few silhouette pixels.
    hit = truth["part_labels"] > 0
    assert np.mean(hit == (truth["mask"] >= 0.5)) > 0.97  # 32 x 32: silhouettes are a large share
    assert truth["face_points"].shape == (FRAMES, 3, 2) and truth["novel_face_points"].shape == (TEST * len(VIEWS), 3, 2)
    # The points are the model's, projected by the world camera; the eyes lie on eyes or eyelids.
    for i in range(FRAMES):
        world_points = model.face_points(truth["identity"], truth["expression"][i], truth["pose"][i])
        for p in range(3):
            np.testing.assert_allclose(truth["face_points"][i, p],
                                       _project(truth["world_labels"][i], world_points[p]) * RES - 0.5, atol=1e-3)
    face = layout.read_face_truth(world_dir)
    assert face["part_names"] == list(model.PART_NAMES) and face["face_point_names"] == list(model.FACE_POINT_NAMES)


def test_a_world_without_part_labels_says_to_remake_it(world_dir, tmp_path):
    import shutil

    from avatar_data.worlds import layout

    old = tmp_path / "old"
    shutil.copytree(world_dir, old)
    with np.load(old / "ground_truth.npz") as gt:
        kept = {k: gt[k] for k in gt.files if "part_labels" not in k and "face_point" not in k}
    world.save_npz_deterministic(str(old / "ground_truth.npz"), kept)
    info = json.loads((old / "world.json").read_text())
    info["version"] = 1
    (old / "world.json").write_text(json.dumps(info))
    with pytest.raises(layout.NoFaceTruth, match="older version.*remake it with `python -m hfagp.make_world"):
        layout.read_face_truth(old)


def _project(label, point):
    c2w, k = cameras.split_eg3d_label(np.asarray(label, np.float64))
    cam = c2w[:3, :3].T @ (np.asarray(point) - c2w[:3, 3])
    return np.array([k[0, 0] * cam[0] / cam[2] + k[0, 2], k[1, 1] * cam[1] / cam[2] + k[1, 2]])


def test_test_frames_hold_expressions_beyond_the_training_range(info, truth):
    declared = info["test_expressions"]["beyond_training_range"]
    assert {"jaw_open", "smile", "brow_raise"} <= set(declared)
    n_train = FRAMES - TEST
    for name, ranges in declared.items():
        col = truth["expression"][:, P.EXPRESSION_INDEX[name]]
        train_lo, train_hi = col[:n_train].min(), col[:n_train].max()
        test_lo, test_hi = col[n_train:].min(), col[n_train:].max()
        assert test_hi > train_hi + 1e-3 or test_lo < train_lo - 1e-3, name
        assert ranges["train"] == pytest.approx([train_lo, train_hi], abs=1e-3)
    for name, peak in world.TEST_EVENTS:
        assert truth["expression"][n_train:, P.EXPRESSION_INDEX[name]].max() == pytest.approx(peak, abs=1e-6)
    assert truth["expression"][:n_train, P.EXPRESSION_INDEX["jaw_open"]].max() <= world.JAW_TRAIN_MAX + 1e-6


def test_pixel_rays_pass_through_pixel_centres():
    """A camera looking at the nose tip from off-axis, zoomed so the tip spans many pixels, with an off-centre
    principal point: the depth minimum (sub-pixel, from a parabola fit) lies where the label's intrinsics
    project the tip's closest point, and its depth is that point's distance."""
    ident = P.sample_identity(SEED).vector
    expr, pose = P.expression(smile=0.3), P.pose(yaw=0.15, pitch=-0.05, roll=0.04, translation=(0.005, 0, 0))
    tip = world._nose_tip(ident, expr, pose).astype(np.float64)
    # The tip is the front pole of a sphere of radius nose_r[1] (head-local) about this centre.
    from avatar_data.worlds.heads import model

    d = model.derive(ident.astype(np.float64), expr.astype(np.float64), pose.astype(np.float64))
    centre = P.head_to_world(np.array(d["nose_b"]), pose)
    radius = P.HEAD_SCALE * d["nose_r"][1]
    origin = centre + 2.5 * np.array([0.25, 0.1, 0.96]) / np.linalg.norm([0.25, 0.1, 0.96])
    c2w = cameras.cam2world_from_forward(centre - origin, origin)
    k = np.array([[32.0, 0.0, 0.46], [0.0, 32.0, 0.53], [0.0, 0.0, 1.0]])
    label = cameras.eg3d_label(c2w, k)
    out = render.render(ident, expr[None], pose[None], label[None], resolution=RES, supersample=2)
    depth, mask = out["depth"][0], out["mask"][0]
    closest = centre + radius * (origin - centre) / np.linalg.norm(origin - centre)
    expected = _project(label, closest) * RES - 0.5  # OpenCV pixel coordinates: centre of pixel i at i
    z = np.where(mask == 1, depth, np.inf)
    row, col = np.unravel_index(np.argmin(z), z.shape)
    assert 2 <= row < RES - 2 and 2 <= col < RES - 2

    def vertex(a, b, c):
        return 0.5 * (a - c) / (a - 2 * b + c)

    sub = np.array([col + vertex(z[row, col - 1], z[row, col], z[row, col + 1]),
                    row + vertex(z[row - 1, col], z[row, col], z[row + 1, col])])
    np.testing.assert_allclose(sub, expected, atol=0.05)
    assert z[row, col] == pytest.approx(np.linalg.norm(origin - closest), abs=2e-3)
    assert np.linalg.norm(tip - centre) == pytest.approx(radius, rel=1e-6)


def test_render_is_independent_of_the_batch_company():
    ident = P.sample_identity(SEED).vector
    exprs = np.stack([P.expression(jaw_open=0.5), P.expression(smile=1.0), P.expression(blink_l=1.0)])
    labels = cameras.yaw_pitch_cameras(np.radians([0.0, 20.0, -30.0]), np.radians([0.0, 5.0, -10.0]))
    poses = np.zeros((3, 6), np.float32)
    together = render.render(ident, exprs, poses, labels, resolution=RES)
    alone = render.render(ident, exprs[1:2], poses[1:2], labels[1:2], resolution=RES)
    for key in ("rgb", "depth", "mask"):
        np.testing.assert_array_equal(together[key][1], alone[key][0])
    assert not np.array_equal(together["rgb"][0], together["rgb"][1])


@pytest.mark.parametrize("argv_extra, message", [
    (["--frames", "1"], "--frames: must be in [2, 100000]"),
    (["--seed", "1000"], "pretraining identity"),
    (["--seed", "-3"], "--seed: must be in [0, "),
    (["--speech", "/no/such/file.wav"], "--speech must be"),
    (["--test-frames", "8"], "need 0 < test frames < frames"),
    (["--novel-views", "20"], "bad novel view"),
    (["--resolution", "abc"], "--resolution: expected an integer"),
])
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys, argv_extra, message):
    argv = _argv(tmp_path / "w") + argv_extra
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(ERROR_PREFIX) and message in err[-1]
    assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "w").exists()


def test_cli_refuses_to_overwrite_a_directory_that_is_not_a_world(tmp_path, capsys):
    target = tmp_path / "data"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    assert main(_argv(target, SEED, "--overwrite")) == 2
    assert "is not a world (no world.json)" in capsys.readouterr().err
    assert (target / "precious.txt").read_text() == "keep me"


def test_espeak_without_the_binary_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(_argv(tmp_path / "w", SEED, "--speech", "espeak")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "espeak-ng" in err[0] and err[0].startswith(ERROR_PREFIX)


def test_importing_avatar_data_and_the_parameters_loads_no_jax():
    code = "import sys, avatar_data, avatar_data.worlds.heads.params, avatar_data.worlds.layout, avatar_data.worlds.writer; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_speech_from_a_wav_file_drives_the_world(tmp_path):
    rate = 22050
    t = np.arange(int(0.5 * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 220.0 * t) * (np.sin(2 * np.pi * 4.0 * t) > 0)
    source = tmp_path / "talk.wav"
    audio_features.write_wav(source, tone, rate)
    out = tmp_path / "w"
    assert main(_argv(out, SEED, "--speech", str(source), "--novel-views", "none")) == 0
    info = json.loads((out / "world.json").read_text())
    assert info["speech"]["source"] == str(source.resolve()) and info["speech"]["sample_rate"] == 16000
    wave, _rate_out = audio_features.read_wav(out / "speech.wav")
    expected = speech_module.resample(audio_features.read_wav(source)[0], rate, 16000)
    np.testing.assert_allclose(wave, speech_module.fit_length(expected, len(wave)), atol=2 / 32767)
    np.testing.assert_allclose(np.load(out / "aud.npy"), audio_features.frame_features(wave, 16000, FRAMES),
                               atol=1e-3)
    assert json.loads((out / "novel_views/views.json").read_text()) == {"views": []}


def test_a_pretraining_identity_only_when_allowed(tmp_path, capsys):
    out = tmp_path / "w"
    assert main(_argv(out, P.PRETRAIN_IDENTITY_SEED_START)) == 2
    assert "--allow-pretrain-identity" in capsys.readouterr().err and not out.exists()
    seed = P.PRETRAIN_IDENTITY_SEED_START + 7
    assert main(_argv(out, seed, "--allow-pretrain-identity", "--novel-views", "none")) == 0
    info = json.loads((out / "world.json").read_text())
    assert info["identity"]["seed"] == seed and info["identity_split"]["is_pretrain_identity"]
