"""Fixtures for the avatar_data tests."""

import pytest

from avatar_synthetic import synthetic_audio, synthetic_expressions, synthetic_frames, synthetic_labels


@pytest.fixture
def video():
    """10 frames of 32x32 with labels, expressions and audio."""
    n = 10
    return {
        "frames": synthetic_frames(n, 32),
        "labels": synthetic_labels(n),
        "expressions": synthetic_expressions(n),
        "audio": synthetic_audio(n),
    }
