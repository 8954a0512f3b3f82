"""Test videos for avatar_data.prepare, made from real photos with ffmpeg (no face video exists offline)."""

from __future__ import annotations

import functools
import importlib
import os

import numpy as np
import pytest
from PIL import Image


@functools.lru_cache(maxsize=1)
def mediapipe_problem() -> str:
    """'' if MediaPipe's face solutions can run here, else why not."""
    try:
        from avatar_data.prepare import tracking

        tracking.import_mediapipe()
        importlib.import_module("cv2")
    except ImportError as e:
        return str(e)
    return ""


requires_mediapipe = pytest.mark.skipif(
    bool(mediapipe_problem()), reason=f"needs mediapipe 0.10.14 + OpenCV: {mediapipe_problem()}")


@functools.lru_cache(maxsize=1)
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def face_picture(size=(320, 240), scale: float = 0.6, centre=None, background: int = 128) -> np.ndarray:
    """The astronaut's head scaled by ``scale`` and pasted at ``centre`` of a grey (width, height) canvas."""
    w, h = size
    head = Image.fromarray(astronaut()[20:260, 100:340])
    head = head.resize((int(240 * scale), int(240 * scale)), Image.LANCZOS)
    canvas = Image.new("RGB", size, (background,) * 3)
    cx, cy = centre if centre is not None else (w // 2, h // 2)
    canvas.paste(head, (int(cx - head.width / 2), int(cy - head.height / 2)))
    return np.asarray(canvas)


def write_video(path: str, frames, fps: float = 25.0, audio_seconds=None) -> str:
    """Frames -> H.264 mp4 (with a speech-like AAC track of ``audio_seconds`` if given)."""
    from avatar_data import audio_features
    from avatar_data.prepare import evaluate, video

    wav = None
    if audio_seconds:
        wav = os.path.splitext(path)[0] + ".wav"
        audio_features.write_wav(wav, evaluate.speech_like_audio(audio_seconds), 16000)
    video.encode_video(path, frames, fps, wav_path=wav)
    if wav:
        os.remove(wav)
    return path


def leftovers(parent: str, name: str) -> list[str]:
    """Entries of ``parent`` that belong to an attempt to write ``parent/name`` (the directory or temporaries)."""
    return [e for e in os.listdir(parent) if e == name or e.startswith(f".{name}.")]
