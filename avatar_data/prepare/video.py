"""Video and audio decoding with the ffmpeg binary of the imageio-ffmpeg wheel.

`probe` reads a file's header (streams, size, frame rate, duration); `decode_frames` yields RGB frames
resampled to a fixed frame rate by ffmpeg's ``fps`` filter (frame t is the source frame shown at t / fps);
`extract_audio` writes the first audio stream as 16 kHz mono 16-bit PCM wav; `encode_video` writes frames
(and optionally a wav) as H.264 + AAC, for test videos.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from typing import Iterator, Optional

import numpy as np

AUDIO_RATE = 16000

# ffmpeg demuxers of single images / image sequences: such files are pictures, not videos.
_IMAGE_DEMUXERS = ("image2", "_pipe", "gif", "apng", "webp")


class VideoError(ValueError):
    """A file that cannot be read as a video (the message names the file and the reason)."""


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_version() -> str:
    out = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "unknown"


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg's header says about a file. size: (width, height) after rotation metadata; fps: the
    video stream's frame rate (0 if unknown); duration: seconds (0 if unknown)."""

    path: str
    demuxer: str
    video_codec: str
    size: tuple[int, int]
    fps: float
    duration: float
    audio_codec: Optional[str]


def _header(path: str) -> str:
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", path], capture_output=True, text=True,
                          errors="replace")
    return proc.stderr


def probe(path: str) -> VideoInfo:
    """Header of a video file -> `VideoInfo`; VideoError if it is missing, unreadable or has no video."""
    if not os.path.isfile(path):
        raise VideoError(f"{path}: no such file")
    text = _header(path)
    m = re.search(r"Input #0, ([^\s]+), from", text)
    if m is None:
        reason = text.strip().splitlines()[-1] if text.strip() else "ffmpeg cannot read it"
        raise VideoError(f"{path}: not a video ({reason.split(': ')[-1]})")
    demuxer = m.group(1).rstrip(",")
    video = re.search(r"Stream #0:\d+[^:]*: Video: ([^\s,]+).*?(\d{2,5})x(\d{2,5})", text)
    if video is None:
        raise VideoError(f"{path}: not a video (no video stream)")
    if any(demuxer.endswith(d) or demuxer == d for d in _IMAGE_DEMUXERS):
        raise VideoError(f"{path}: not a video (a still image, {demuxer})")
    width, height = int(video.group(2)), int(video.group(3))
    if re.search(r"rotate\s*:\s*-?(90|270)", text) or re.search(r"rotation of -?(90|270)", text):
        width, height = height, width
    fps_m = re.search(r"(\d+(?:\.\d+)?) fps", text) or re.search(r"(\d+(?:\.\d+)?) tbr", text)
    dur_m = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    duration = 0.0
    if dur_m:
        duration = int(dur_m.group(1)) * 3600 + int(dur_m.group(2)) * 60 + float(dur_m.group(3))
    audio = re.search(r"Stream #0:\d+[^:]*: Audio: ([^\s,]+)", text)
    return VideoInfo(path=path, demuxer=demuxer, video_codec=video.group(1), size=(width, height),
                     fps=float(fps_m.group(1)) if fps_m else 0.0, duration=duration,
                     audio_codec=audio.group(1) if audio else None)


def is_video_file(path) -> bool:
    """True for a regular file in which ffmpeg finds a video stream (not a still image)."""
    try:
        probe(os.fspath(path))
    except (VideoError, OSError):
        return False
    return True


def decode_frames(path: str, fps: float, size: tuple[int, int],
                  max_frames: Optional[int] = None) -> Iterator[np.ndarray]:
    """RGB uint8 [H, W, 3] frames at ``fps`` (ffmpeg's fps filter), in order; ``size`` from `probe`."""
    width, height = size
    cmd = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", path, "-map", "0:v:0",
           "-vf", f"fps={fps:g}", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"]
    if max_frames is not None:
        cmd[-1:-1] = ["-frames:v", str(int(max_frames))]
    frame_bytes = width * height * 3
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=frame_bytes)
    try:
        while True:
            buf = proc.stdout.read(frame_bytes)
            if not buf:
                break
            if len(buf) != frame_bytes:
                raise VideoError(f"{path}: truncated frame from ffmpeg ({len(buf)} of {frame_bytes} bytes)")
            yield np.frombuffer(buf, np.uint8).reshape(height, width, 3)
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        rc = proc.wait()
    if rc != 0:
        raise VideoError(f"{path}: ffmpeg failed to decode ({err.splitlines()[-1] if err else rc})")


def extract_audio(path: str, wav_path: str, rate: int = AUDIO_RATE) -> None:
    """The first audio stream -> 16-bit PCM mono wav at ``rate`` Hz."""
    cmd = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-i", path, "-map", "0:a:0", "-vn",
           "-ac", "1", "-ar", str(int(rate)), "-c:a", "pcm_s16le", "-f", "wav", wav_path]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        raise VideoError(f"{path}: ffmpeg failed to extract the audio ({proc.stderr.strip()[-200:]})")


def encode_video(path: str, frames, fps: float, wav_path: Optional[str] = None, crf: int = 18) -> None:
    """Frames (iterable of uint8 [H, W, 3], even H and W) -> H.264 yuv420p mp4 (+ AAC audio from a wav)."""
    frames = iter(frames)
    first = np.asarray(next(frames), np.uint8)
    h, w = first.shape[:2]
    cmd = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-"]
    if wav_path is not None:
        cmd += ["-i", wav_path, "-c:a", "aac", "-b:a", "128k"]
    cmd += ["-c:v", "libx264", "-preset", "medium", "-crf", str(crf), "-pix_fmt", "yuv420p", "-threads", "1"]
    if wav_path is not None:
        cmd += ["-shortest"]
    cmd += [path]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(first.tobytes())
        for f in frames:
            proc.stdin.write(np.asarray(f, np.uint8).tobytes())
    finally:
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        rc = proc.wait()
    if rc != 0:
        raise VideoError(f"{path}: ffmpeg failed to encode ({err.strip()[-300:]})")
