"""Writing videos (mp4 through the ffmpeg binary of the `imageio-ffmpeg` wheel) and frame folders.

Frames are uint8 RGB [H, W, 3]. mp4 files are H.264 (libx264, yuv420p, so width and height must be
even: odd sizes are padded by one black row/column) with an optional AAC audio track from a wav file
(cut to the video length, or padded with silence to it: the video's frames always all stay). No system ffmpeg is needed.

    with VideoWriter("out.mp4", fps=25, audio="speech.wav") as video:
        for frame in frames:
            video.write(frame)
    frames, width, height, has_audio = read_video_info("out.mp4")
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np

PathLike = Union[str, Path]


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with the `imageio-ffmpeg` wheel."""
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise RuntimeError("writing mp4 needs the `imageio-ffmpeg` package (pip install imageio-ffmpeg), "
                           "or write png frames instead (--format png)") from e
    return imageio_ffmpeg.get_ffmpeg_exe()


def even_size(height: int, width: int) -> tuple[int, int]:
    """The (height, width) an H.264 yuv420p stream gets: each rounded up to even."""
    return height + height % 2, width + width % 2


class VideoWriter:
    """Stream uint8 RGB frames [H, W, 3] into an H.264 mp4 through an ffmpeg pipe.

    The frame size is fixed by the first frame; odd sizes are padded to even with black.
    audio: a wav (any format ffmpeg reads) muxed as AAC, cut or silence-padded to the video's length.
    crf: x264 quality (lower is better; 18 is visually lossless).
    """

    def __init__(self, path: PathLike, fps: float = 25.0, audio: Optional[PathLike] = None, crf: int = 18):
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if audio is not None and not Path(audio).is_file():
            raise FileNotFoundError(f"audio file {audio} does not exist")
        self.path = Path(path)
        self.fps = float(fps)
        self.audio = None if audio is None else Path(audio)
        self.crf = int(crf)
        self.frames_written = 0
        self._proc: Optional[subprocess.Popen] = None
        self._size: Optional[tuple[int, int]] = None
        self._log = None

    def _start(self, height: int, width: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._size = (height, width)
        out_h, out_w = even_size(height, width)
        cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{out_w}x{out_h}", "-r", f"{self.fps:g}", "-i", "-"]
        if self.audio is not None:
            cmd += ["-i", str(self.audio)]
        cmd += ["-map", "0:v:0"]
        if self.audio is not None:
            cmd += ["-map", "1:a:0", "-af", "apad", "-c:a", "aac", "-b:a", "128k", "-shortest"]
        cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(self.crf), "-preset", "medium",
                "-movflags", "+faststart", str(self.path)]
        self._log = open(self.path.with_name(self.path.name + ".ffmpeg.log"), "w+b")
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)

    def write(self, frame: np.ndarray) -> None:
        """Append one frame, uint8 [H, W, 3] (same size for every frame)."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"{self.path}: frames must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
        if self._proc is None:
            self._start(*frame.shape[:2])
        if frame.shape[:2] != self._size:
            raise ValueError(f"{self.path}: frame {self.frames_written} is {frame.shape[:2]}, "
                             f"the video is {self._size}")
        out_h, out_w = even_size(*self._size)
        if (out_h, out_w) != self._size:
            frame = np.pad(frame, ((0, out_h - frame.shape[0]), (0, out_w - frame.shape[1]), (0, 0)))
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError:
            self._fail()
        self.frames_written += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            self.write(frame)

    def _fail(self) -> None:
        self._proc.wait()
        raise RuntimeError(f"ffmpeg failed writing {self.path}: {self._read_log()}")

    def _read_log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()

    def close(self) -> None:
        if self._proc is None:
            if self.frames_written == 0:
                raise ValueError(f"{self.path}: no frames were written")
            return
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        rc = self._proc.wait()
        log = self._read_log()
        self._log.close()
        log_path = Path(self._log.name)
        self._proc = None
        if rc != 0:
            raise RuntimeError(f"ffmpeg failed writing {self.path} (exit {rc}): {log}")
        log_path.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._log.close()
            self._proc = None


def write_video(path: PathLike, frames: Iterable[np.ndarray], fps: float = 25.0,
                audio: Optional[PathLike] = None) -> Path:
    """All `frames` (uint8 [H, W, 3] each, or one [N, H, W, 3] array) into an mp4; returns the path."""
    with VideoWriter(path, fps=fps, audio=audio) as video:
        video.write_all(frames)
    return Path(path)


def write_frames(folder: PathLike, frames: Iterable[np.ndarray], prefix: str = "") -> Path:
    """Frames as `folder/<prefix>00000.png, ...`; returns the folder."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(np.asarray(frame, np.uint8)).save(folder / f"{prefix}{i:05d}.png")
    return folder


def read_video_info(path: PathLike) -> tuple[int, int, int, bool]:
    """(frames, width, height, has_audio) of a video; frames counted exactly by decoding the stream."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video {path} does not exist")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(path), "-map", "0:v:0", "-f", "rawvideo",
           "-pix_fmt", "gray", "-fps_mode", "passthrough", "-"]
    with tempfile.TemporaryFile() as log_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log_file)
        decoded = 0
        while chunk := proc.stdout.read(1 << 20):
            decoded += len(chunk)
        rc = proc.wait()
        log_file.seek(0)
        log = log_file.read().decode(errors="replace")
    if rc != 0:
        raise RuntimeError(f"ffmpeg could not decode {path}: {log.strip()}")
    size = re.search(r"Stream #0:\d+\S*: Video:.*?, (\d+)x(\d+)", log)
    if size is None:
        raise RuntimeError(f"no video stream in {path}: {log.strip()}")
    width, height = int(size.group(1)), int(size.group(2))
    has_audio = re.search(r"Stream #0:\d+\S*: Audio:", log) is not None
    return decoded // (width * height), width, height, has_audio


def read_video(path: PathLike) -> np.ndarray:
    """Decode every frame of a video -> uint8 [N, H, W, 3] (for tests and checks)."""
    n, width, height, _ = read_video_info(path)
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    return np.frombuffer(proc.stdout, np.uint8).reshape(-1, height, width, 3)


__all__ = ["VideoWriter", "even_size", "ffmpeg_exe", "read_video", "read_video_info", "write_frames",
           "write_video"]
