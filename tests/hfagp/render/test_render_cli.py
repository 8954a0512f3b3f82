"""`python -m hfagp.render`: every command on the tiny trained runs, plus the pure camera/driving helpers."""

from __future__ import annotations

import json
import re
import shutil
import types
import wave

import numpy as np
import pytest

from avatar_data import cameras
from hfagp.render import __main__ as render_cli
from hfagp.render import frames as render

BATCH = ["--batch-size", "3", "--no-progress"]   # one batch size everywhere: one synthesis compilation


# ------------------------------------------------------------------------------------------ pure helpers

def expect_cli_error(capsys, argv, pattern):
    """The render CLI exits with 2 and one line `hfagp.render: error: ...` matching `pattern`."""
    capsys.readouterr()
    assert render_cli.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("hfagp.render: error: ") and re.search(pattern, lines[-1]), lines
    assert "Traceback" not in "\n".join(lines)


def test_orbit_path_is_a_closed_loop_around_frontal():
    frontal = cameras.orbit_path(2, 0.0, 0.0)
    np.testing.assert_allclose(frontal, np.stack([cameras.yaw_pitch_cameras(
        0.0, 0.0, intrinsics=cameras.fov_to_intrinsics(cameras.EG3D_FOV_DEG))] * 2), atol=1e-6)
    path = cameras.orbit_path(8, yaw_range_deg=20.0, pitch_range_deg=10.0)
    c2w, intr = cameras.split_eg3d_label(path)
    centres = c2w[:, :3, 3]
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 2.7, atol=1e-5)
    assert centres[0, 1] > 0 and abs(centres[0, 0]) < 1e-5          # frame 0: straight above frontal
    assert centres[2, 0] == pytest.approx(2.7 * np.sin(np.deg2rad(20.0)), abs=1e-5)   # quarter loop: full yaw,
    assert abs(centres[2, 1]) < 1e-5                                                    # level
    forward = c2w[:, :3, 2]
    to_pivot = np.array([0.0, 0.0, 0.2]) - centres
    np.testing.assert_allclose(forward, to_pivot / np.linalg.norm(to_pivot, axis=1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(intr[:, 0, 0], cameras.fov_to_intrinsics(cameras.EG3D_FOV_DEG)[0, 0], rtol=1e-6)
    two = cameras.orbit_path(8, loops=2.0)
    np.testing.assert_allclose(two[:4], two[4:], atol=1e-6)


def test_bounce_goes_back_and_forth():
    labels = np.arange(4)[:, None]
    assert cameras.bounce(labels, 9)[:, 0].tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert cameras.bounce(labels[:1], 3)[:, 0].tolist() == [0, 0, 0]


def test_depth_frames_normalized_per_video():
    depth = np.stack([np.full((4, 4), 2.0), np.full((4, 4), 3.0)]).astype(np.float32)
    depth[1, 0, 0] = 2.5
    frames = render.depth_frames(depth, size=8)
    assert frames.shape == (2, 8, 8, 3) and frames.dtype == np.uint8
    assert frames[0].min() == 255 and frames[1, -1, -1, 0] == 0      # near white, far black, over the video


def test_audio_windows_for_smoothing_runs():
    from hfagp.model import ModelSpec

    spec = ModelSpec(encoder="audio", k=4, encoder_kwargs=(("smoothing_window", 4),), smoothing_start=0)
    avatar = types.SimpleNamespace(input_key=spec.input_key, spec=spec)
    audio = np.random.default_rng(0).normal(size=(5, 16, 29)).astype(np.float32)
    windows = render.driving_inputs(avatar, audio)
    assert windows.shape == (5, 4, 16, 29)
    np.testing.assert_array_equal(windows[:, 2], audio)               # centre window = the frame itself
    np.testing.assert_array_equal(windows[0, 0], 0.0)                 # zero beyond the start
    plain = types.SimpleNamespace(input_key="audio")
    assert render.driving_inputs(plain, audio).shape == (5, 16, 29)


# ------------------------------------------------------------------------------------------ on trained runs

def detach_from_dataset(workdir, root):
    """A copy of a run whose config points at a dataset that does not exist."""
    copy = root / f"{workdir.name}_detached"
    if not copy.exists():
        shutil.copytree(workdir, copy)
        config = json.loads((copy / "config.json").read_text())
        config["data"]["synthetic"]["dir"] = str(root / "no_such_world")
        (copy / "config.json").write_text(json.dumps(config))
    return copy


def make_wav(path, seconds: float) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.sin(np.arange(int(16000 * seconds)) * 0.2) * 5000).astype(np.int16).tobytes())


def read_png(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def rgb_avatar(tiny_rgb_run):
    return render_cli.load_avatar(tiny_rgb_run)


@pytest.mark.slow
def test_reconstruct_side_by_side_with_depth(tiny_rgb_run, rgb_avatar, tmp_path, capsys):
    from hfagp.inference import load_split
    from hfagp.render.video import read_video, read_video_info

    out = tmp_path / "rec.mp4"
    assert render_cli.main(["reconstruct", str(tiny_rgb_run), "--out", str(out), "--depth"] + BATCH) == 0
    assert read_video_info(out) == (4, 3 * 128, 128, False)         # input | render | depth, 4 test frames
    assert "4 frames in" in capsys.readouterr().err
    frames = read_video(out).astype(np.float32)
    inputs = (load_split(rgb_avatar, "test")["image"] + 1.0) * 127.5
    assert np.abs(frames[:, :, :128] - inputs).mean() < 6.0          # left column: the input frames
    depth = frames[:, :, 256:]
    assert np.abs(depth[..., 0] - depth[..., 1]).max() < 12 and depth.max() - depth.min() > 150


@pytest.mark.slow
def test_orbit_png_frames_and_depth_video(tiny_rgb_run, tmp_path):
    from hfagp.render.video import read_video_info

    folder = tmp_path / "orbit"
    render_cli.main(["orbit", str(tiny_rgb_run), "--frame", "1", "--frames", "5", "--format", "png",
                 "--out", str(folder)] + BATCH)
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 5 and read_png(pngs[0]).shape == (128, 128, 3)
    assert not np.array_equal(read_png(pngs[0]), read_png(pngs[1]))   # the camera moves

    out = tmp_path / "depth.mp4"
    render_cli.main(["depth", str(tiny_rgb_run), "--max-frames", "3", "--out", str(out)] + BATCH)
    assert read_video_info(out) == (3, 128, 128, False)


@pytest.mark.slow
def test_orbit_and_mesh_from_a_latent_file_without_the_dataset(tiny_rgb_run, rgb_avatar, tmp_path, capsys):
    from hfagp.render import mesh
    from hfagp.render.video import read_video_info

    run = detach_from_dataset(tiny_rgb_run, tmp_path)
    coeffs = tmp_path / "coeffs.npy"
    np.save(coeffs, np.zeros(rgb_avatar.k, np.float32))
    out = tmp_path / "orbit.mp4"
    render_cli.main(["orbit", str(run), "--latent-from", str(coeffs), "--frames", "4", "--out", str(out)] + BATCH)
    assert read_video_info(out) == (4, 128, 128, False)

    ws = tmp_path / "ws.npy"
    np.save(ws, np.asarray(rgb_avatar.latents_from_coefficients(np.zeros((1, rgb_avatar.k))))[0])
    ply = tmp_path / "avatar.ply"
    render_cli.main(["mesh", str(run), "--latent-from", str(ws), "--resolution", "32", "--threshold", "auto",
                 "--out", str(ply), "--no-progress"])
    vertices, faces = mesh.read_ply(ply)
    assert len(vertices) > 50 and len(faces) > 50
    assert faces.min() >= 0 and faces.max() < len(vertices)
    assert np.all(np.abs(vertices) <= rgb_avatar.generator.config.render.box_warp / 2 + 1e-6)
    assert mesh.closed_edge_fraction(faces) > 0.9

    render_cli.main(["mesh", str(run), "--latent-from", str(ws), "--resolution", "32", "--threshold", "auto",
                 "--out", str(tmp_path / "avatar.obj"), "--no-progress"])
    v_obj, f_obj = mesh.read_obj(tmp_path / "avatar.obj")
    np.testing.assert_array_equal(f_obj, faces)
    np.testing.assert_allclose(v_obj, vertices, atol=1e-5)

    # random weights never reach EG3D's density 10: a one-line error, no file
    expect_cli_error(capsys, ["mesh", str(run), "--latent-from", str(ws), "--resolution", "32",
                              "--out", str(tmp_path / "empty.ply"), "--no-progress"], "outside the density range")
    assert not (tmp_path / "empty.ply").exists()
    with pytest.raises(ValueError, match="neither W\\+ latents"):
        np.save(tmp_path / "bad.npy", np.zeros((3, 5), np.float32))
        render.latents_from_file(rgb_avatar, tmp_path / "bad.npy")


@pytest.mark.slow
def test_density_grid_matches_the_generator_sample(rgb_avatar):
    from hfagp.render import mesh

    ws = render.frame_latents(rgb_avatar, "test", 0)
    volume, origin, voxel = mesh.sample_density(rgb_avatar.generator, ws, resolution=6, chunk=100)
    points, _, _ = mesh.cube_grid(6, rgb_avatar.generator.config.render.box_warp)
    expected = np.asarray(rgb_avatar.generator.sample(points[None], ws)["sigma"])[0, :, 0]
    np.testing.assert_allclose(volume.reshape(-1), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_basis_grid(tiny_rgb_run, rgb_avatar, tmp_path):
    out = tmp_path / "basis.png"
    render_cli.main(["basis", str(tiny_rgb_run), "--out", str(out), "--max-vectors", "3", "--scale", "3"] + BATCH)
    grid = read_png(out).astype(int)
    assert grid.shape == (3 * 128, 3 * 128, 3)                        # rows: vectors, columns: -3, 0, +3
    centre = [grid[r * 128:(r + 1) * 128, 128:256] for r in range(3)]
    assert np.abs(centre[0] - centre[2]).max() <= 1                   # scale 0: the offset in every row
    assert np.abs(grid[:128, :128] - centre[0]).mean() > 0.5          # -3 * basis_0 changes the image


@pytest.mark.slow
def test_reenact_expression_orbit_with_audio_track(tiny_expression_run, tmp_path, capsys):
    from hfagp.render.video import read_video_info

    run = detach_from_dataset(tiny_expression_run, tmp_path)
    world = tiny_expression_run.parent / "world"
    wav = tmp_path / "speech.wav"
    make_wav(wav, 0.5)
    out = tmp_path / "reenact.mp4"
    render_cli.main(["reenact", str(run), "--expression", str(world / "expression.npy"), "--max-frames", "6",
                 "--camera", "orbit", "--wav", str(wav), "--out", str(out)] + BATCH)
    assert read_video_info(out) == (6, 128, 128, True)

    frontal = tmp_path / "frontal.mp4"
    render_cli.main(["reenact", str(run), "--expression", str(world / "expression.npy"), "--max-frames", "5",
                 "--camera", "frontal", "--depth", "--out", str(frontal)] + BATCH)
    assert read_video_info(frontal) == (5, 256, 128, False)

    bad = tmp_path / "bad_expression.npy"
    np.save(bad, np.zeros((4, 75), np.float32))
    expect_cli_error(capsys, ["reenact", str(run), "--expression", str(bad)], r"must be \[N, 76\]")
    nan = np.zeros((4, 76), np.float32)
    nan[2, 5] = np.nan
    np.save(bad, nan)
    expect_cli_error(capsys, ["reenact", str(run), "--expression", str(bad)],
                     r"non-finite values \(NaN/inf\) in frames \[2\]")
    expect_cli_error(capsys, ["reenact", str(run), "--audio", str(world / "aud.npy")],
                     "trained with the 'expression' encoder")


@pytest.mark.slow
def test_reenact_audio_with_dataset_cameras(tiny_audio_run, tmp_path):
    from hfagp.inference import load_split
    from hfagp.render.video import read_video_info

    world = tiny_audio_run.parent / "world"
    out = tmp_path / "audio.mp4"
    render_cli.main(["reenact", str(tiny_audio_run), "--audio", str(world / "aud.npy"), "--max-frames", "7",
                 "--camera", "dataset", "--out", str(out)] + BATCH)
    assert read_video_info(out) == (7, 128, 128, False)

    avatar = render_cli.load_avatar(tiny_audio_run)
    cams = render.reenactment_cameras(avatar, 7, "dataset")
    labels = load_split(avatar, "test")["label"]
    np.testing.assert_array_equal(cams, labels[[0, 1, 2, 3, 2, 1, 0]])
    bad = tmp_path / "aud_bad.npy"
    np.save(bad, np.zeros((4, 16, 30), np.float32))
    with pytest.raises(ValueError, match=r"must be \[N, 16, 29\]"):
        render.load_driving_signal(avatar, bad, "audio")
    with pytest.raises(ValueError, match="trained with the 'audio' encoder"):
        render.load_driving_signal(avatar, world / "expression.npy", "expression")
