"""Session fixtures of the prepare tests: one known-motion video of a real photo, prepared once."""

import pytest

from prepare_fixtures import mediapipe_problem

MOTION_FRAMES = 100   # 4 s at 25 fps: more than a full period of the +-20 degree roll (3 s)


@pytest.fixture(scope="session")
def motion_video(tmp_path_factory):
    """(path, MotionTruth) of the astronaut photo under a known roll (+-20 deg), scale and shift, with audio."""
    from avatar_data.prepare import evaluate

    path = str(tmp_path_factory.mktemp("motion") / "motion.mp4")
    truth = evaluate.make_motion_video(path, num_frames=MOTION_FRAMES)
    return path, truth


@pytest.fixture(scope="session")
def prepared_motion(motion_video, tmp_path_factory):
    """(out_dir, prepare.json dict, MotionTruth) of the motion video prepared with the default options."""
    if mediapipe_problem():
        pytest.skip(f"needs mediapipe 0.10.14: {mediapipe_problem()}")
    from avatar_data.prepare import PrepareOptions, prepare_video

    path, truth = motion_video
    out = str(tmp_path_factory.mktemp("prepared") / "motion")
    meta = prepare_video(path, out, PrepareOptions())
    return out, meta, truth
