"""mp4 writing through the imageio-ffmpeg binary, audio muxing, frame folders."""

from __future__ import annotations

import wave

import numpy as np
import pytest

pytest.importorskip("imageio_ffmpeg")

from hfagp.render import video  # noqa: E402


def make_wav(path, seconds: float, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).tobytes())


def ramp_frames(n: int, h: int, w: int) -> np.ndarray:
    """Smooth frames whose mean brightness encodes the frame index (survives lossy coding)."""
    base = np.linspace(0, 40, w, dtype=np.float32)[None, :, None]
    return np.stack([np.broadcast_to(base + 10 * i, (h, w, 3)) for i in range(n)]).astype(np.uint8)


def test_write_and_read_back(tmp_path):
    frames = ramp_frames(17, 32, 48)
    path = video.write_video(tmp_path / "a.mp4", frames, fps=25)
    assert video.read_video_info(path) == (17, 48, 32, False)
    decoded = video.read_video(path)
    assert decoded.shape == (17, 32, 48, 3)
    np.testing.assert_allclose(decoded.mean(axis=(1, 2, 3)), frames.mean(axis=(1, 2, 3)), atol=3.0)
    assert not list(tmp_path.glob("*.log")), "the ffmpeg log is removed after success"


def test_odd_sizes_are_padded_to_even(tmp_path):
    path = video.write_video(tmp_path / "odd.mp4", ramp_frames(3, 31, 45), fps=10)
    assert video.read_video_info(path) == (3, 46, 32, False)
    assert video.even_size(31, 45) == (32, 46)


@pytest.mark.parametrize("seconds", [3.0, 0.2])
def test_audio_is_muxed_and_video_length_kept(tmp_path, seconds):
    """A longer wav is cut, a shorter one padded with silence: the frames all stay either way."""
    wav = tmp_path / "speech.wav"
    make_wav(wav, seconds)
    path = video.write_video(tmp_path / "with_audio.mp4", ramp_frames(20, 32, 32), fps=25, audio=wav)
    assert video.read_video_info(path) == (20, 32, 32, True)


def test_png_frames(tmp_path):
    frames = ramp_frames(4, 16, 24)
    folder = video.write_frames(tmp_path / "frames", frames)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{i:05d}.png" for i in range(4)]
    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(folder / "00002.png")), frames[2])


def test_bad_input_errors(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        video.write_video(tmp_path / "f.mp4", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="frame 1 is"):
        video.write_video(tmp_path / "s.mp4", [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)])
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        video.VideoWriter(tmp_path / "w.mp4", audio=tmp_path / "missing.wav")
    with pytest.raises(ValueError, match="no frames"):
        video.write_video(tmp_path / "empty.mp4", [])
    with pytest.raises(FileNotFoundError):
        video.read_video_info(tmp_path / "nothing.mp4")
