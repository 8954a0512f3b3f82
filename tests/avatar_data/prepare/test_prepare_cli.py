"""Bad input to ``python -m avatar_data.prepare``: one-line errors, exit code 2, nothing left behind."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from avatar_data.prepare import PrepareOptions, check_out_dir, is_video_file, prepare_video
from avatar_data.prepare.__main__ import main

from prepare_fixtures import face_picture, leftovers, requires_mediapipe, write_video

PREFIX = "avatar_data.prepare: error: "


def _run_main(capsys, argv):
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.err.strip().splitlines()


def _assert_one_line_error(rc, err_lines, fragment):
    assert rc == 2
    assert len(err_lines) == 1 and err_lines[0].startswith(PREFIX), err_lines
    assert fragment in err_lines[0], err_lines[0]


def test_not_a_video_through_the_real_command(tmp_path):
    bogus = tmp_path / "clip.mp4"
    bogus.write_text("this is text")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "avatar_data.prepare", str(bogus), str(out), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    _assert_one_line_error(proc.returncode, proc.stderr.strip().splitlines(), "not a video")
    assert leftovers(str(tmp_path), "out") == []
    assert not is_video_file(bogus)


@pytest.mark.parametrize("kind", ["missing", "still image", "directory"])
def test_other_non_videos(tmp_path, capsys, kind):
    path = tmp_path / "input"
    if kind == "still image":
        path = tmp_path / "face.png"
        Image.fromarray(face_picture()).save(path)
    elif kind == "directory":
        path.mkdir()
    rc, err = _run_main(capsys, [str(path), str(tmp_path / "out"), "--quiet"])
    _assert_one_line_error(rc, err, "no such file" if kind != "still image" else "not a video")
    assert leftovers(str(tmp_path), "out") == []


def test_bad_options(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["a.mp4", str(tmp_path / "out"), "--background", "green"])
    # A usage error prints the usage, then the one error line (the project's CLI contract, hfagp_common.cli).
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("usage: python -m avatar_data.prepare")
    _assert_one_line_error(exit_info.value.code, [line for line in lines if "error:" in line], "--background")
    with pytest.raises(SystemExit) as exit_info:
        main(["a.mp4", str(tmp_path / "out"), "--test-fraction", "1.5"])
    lines = capsys.readouterr().err.strip().splitlines()
    _assert_one_line_error(exit_info.value.code, [line for line in lines if "error:" in line], "--test-fraction")
    # The library checks what the command line cannot: a test fraction of 1 leaves no training frames.
    with pytest.raises(ValueError, match="test fraction"):
        PrepareOptions(test_fraction=1.0).validate()


def test_refuses_to_replace_a_directory_that_is_not_a_prepared_video(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    rc, err = _run_main(capsys, [str(tmp_path / "any.mp4"), str(out), "--overwrite", "--quiet"])
    _assert_one_line_error(rc, err, "not a prepared video")
    assert os.listdir(out) == ["precious.txt"]
    with pytest.raises(ValueError, match="not a prepared video"):
        check_out_dir(str(out), overwrite=True)


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    face = face_picture()
    grey = np.full_like(face, 128)
    noise = np.random.default_rng(0).integers(0, 255, face.shape, dtype=np.uint8)
    return {
        "short": write_video(str(root / "short.mp4"), [face] * 10, audio_seconds=0.5),
        "no_face": write_video(str(root / "no_face.mp4"), [grey if i % 2 else noise for i in range(60)]),
        "lost": write_video(str(root / "lost.mp4"), [grey if 20 <= i < 35 else face for i in range(50)]),
        # Two people, the larger on the left; no audio track.
        "two_faces": write_video(str(root / "two.mp4"), [
            np.where(face_picture(scale=0.3, centre=(250, 120)) != 128, face_picture(scale=0.3, centre=(250, 120)),
                     face_picture(scale=0.6, centre=(100, 120)))] * 30),
    }


@requires_mediapipe
def test_too_short_through_the_real_command(bad_videos, tmp_path):
    # After MediaPipe has started (its native start-up log lines are kept off stderr) and with a progress bar.
    proc = subprocess.run([sys.executable, "-m", "avatar_data.prepare", bad_videos["short"], str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.strip() and "frames:" not in line]
    _assert_one_line_error(proc.returncode, lines, "too short: 10 frames")
    assert leftovers(str(tmp_path), "out") == []


@requires_mediapipe
def test_no_face_in_the_first_seconds(bad_videos, tmp_path, capsys):
    rc, err = _run_main(capsys, [bad_videos["no_face"], str(tmp_path / "out"), "--quiet"])
    _assert_one_line_error(rc, err, "no face found in the first 2 s (50 frames")
    assert leftovers(str(tmp_path), "out") == []


@requires_mediapipe
def test_face_lost_for_too_many_frames_lists_them(bad_videos, tmp_path, capsys):
    rc, err = _run_main(capsys, [bad_videos["lost"], str(tmp_path / "out"), "--quiet"])
    _assert_one_line_error(rc, err, "no face in 15 of 50 frames (30.0% > 5%): no_face: 20-34")
    assert leftovers(str(tmp_path), "out") == []
    # Allowed with a higher threshold: the frames are dropped and reported.
    meta = prepare_video(bad_videos["lost"], tmp_path / "lenient", PrepareOptions(max_lost_fraction=0.5))
    assert meta["counts"]["kept"] == 35 and [d["frame"] for d in meta["dropped"]] == list(range(20, 35))
    assert {d["reason"] for d in meta["dropped"]} == {"no_face"}
    with open(tmp_path / "lenient" / "report" / "report.md") as f:
        assert "no_face: 15 frames (20-34)" in f.read()


@requires_mediapipe
def test_several_faces_and_no_audio_are_reported(bad_videos, tmp_path, capsys):
    out = tmp_path / "two"
    rc, err = _run_main(capsys, [bad_videos["two_faces"], str(out), "--quiet"])
    assert rc == 0, err
    with open(out / "prepare.json") as f:
        meta = json.load(f)
    assert meta["tracking"]["max_faces"] == 2
    assert any("several faces" in w for w in meta["warnings"])
    assert any("no audio stream" in w for w in meta["warnings"])
    assert not (out / "aud.npy").exists() and not (out / "audio.wav").exists()
    with open(out / "report" / "report.md") as f:
        text = f.read()
    assert "several faces" in text and "no audio stream" in text
    # The larger face (left, centred at x = 100) is the one tracked.
    centre = np.load(out / "crop_transform.npy")[:, 0]
    assert np.all(np.abs(centre - 100) < 20)

    # A second run refuses to replace it unless asked to.
    rc, err = _run_main(capsys, [bad_videos["two_faces"], str(out), "--quiet"])
    _assert_one_line_error(rc, err, "already holds a prepared video")
    rc, err = _run_main(capsys, [bad_videos["two_faces"], str(out), "--quiet", "--overwrite"])
    assert rc == 0 and leftovers(str(tmp_path), "two") == ["two"]
