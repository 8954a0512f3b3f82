"""`prepare_video`: one raw video -> an HFA-GP dataset folder (EG3D layout + expressions + audio + report).

One pass over the decoded frames (`process_frames`): find the hard cuts (`shots.CutDetector`, a look-ahead
of two frames), track the face (`tracking.FaceTracker`), smooth the landmarks with a streaming
Savitzky-Golay filter (`smoothing`; a frame is released once the frames half a window after it are tracked),
and hand each smoothed frame to a thread pool that crops it with EG3D's recipe (`alignment`), solves its
head pose and EG3D label (`pose`), samples the face's colours (`persons.vertex_colours`), optionally
segments it, and writes the PNG. At every cut the tracker and the smoother start afresh, so neither a track
nor a smoothing window spans two shots. Then the shots become segments, each given a person
(`persons.group_shots`), and only the chosen person's segments are kept (`select_segments`: the person with
the most frames, or ``--person`` / ``--segment``); the other frames' files are removed. Then the bad-input
rules, the labels, the split, the expressions (`expression`), the audio features
(`avatar_data.audio_features`), the metadata and the report (`report`).

Everything is written into a temporary sibling of ``out_dir`` that is renamed into place at the end
(`hfagp_common.atomic.atomic_directory`), so ``out_dir`` either is a complete dataset or is untouched.

Layout (the synthetic world's, read by `avatar_data.formats.eg3d.read_eg3d_folder` and `hfagp.datasets.load_world`)::

    OUT_DIR/frames/00000.png ... frames/dataset.json   EG3D folder of the kept frames (named by video frame)
    OUT_DIR/split.json          {"train": [...], "test": [...]}: positions in time order, the last ones test
    OUT_DIR/expression.npy      float32 [N, 76] landmark-PCA expression codes (NOT FLAME/BFM)
    OUT_DIR/expression_pca.npz  mean [468, 3], basis [k, 468, 3], singular_values, explained_variance_ratio
    OUT_DIR/aud.npy             float32 [N, 16, 29] MFCC windows (if the video has audio)
    OUT_DIR/audio.wav           16 kHz mono PCM (if the video has audio)
    OUT_DIR/masks/00000.png     uint8 person masks of the crops (--masks / --background white)
    OUT_DIR/landmarks.npy       float32 [N, 478, 3] smoothed landmarks in crop pixels
    OUT_DIR/crop_transform.npy  float64 [N, 3] crop centre (x, y) in source pixels, crop px per source px
    OUT_DIR/prepare.json        versioned metadata (source, counts, dropped frames, timings, options, versions)
    OUT_DIR/report/             contact_sheet.png, pose.png, report.json, report.md, angles.npy
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import importlib.metadata
import json
import os
import platform
import threading
import time
from typing import Optional

import numpy as np
from PIL import Image

from avatar_data import cameras
from avatar_data.prepare import alignment, expression, persons, pose, report, shots, smoothing, tracking, video
from hfagp_common import atomic
from hfagp_common.digest import sha256_file

FORMAT_VERSION = 1
METADATA_FILE = "prepare.json"
FRAMES_DIR = "frames"
MASKS_DIR = "masks"
REPORT_DIR = "report"
SHEET_FRAMES = 24


class PrepareError(ValueError):
    """A video that cannot be prepared; the message says why (the CLI prints it on one line)."""


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    """Options of `prepare_video` (the CLI flags of ``python -m avatar_data.prepare``).

    fps: output frame rate (ffmpeg's fps filter). resolution: crop side in pixels (EG3D: 512).
    test_fraction: the last ``round(T * test_fraction)`` kept frames (at least one) are the test split.
    background: 'keep' or 'white' (white composites the crop over white with the selfie segmentation).
    masks: save the segmentation masks (implied by background='white').
    smooth_seconds / smooth_order: Savitzky-Golay window (seconds, rounded to an odd frame count) and degree.
    expression_dim: length of the expression vectors (76: the 3DMM encoder's input).
    detect_every: also run the full-range face detector every n-th frame (to count faces).
    first_face_seconds: a face must be found within this many seconds from the start.
    max_lost_fraction: more frames without a face than this fraction is an error.
    min_seconds: a video shorter than this (at ``fps``) is an error.
    jobs: threads for the crop / pose / PNG stage.
    overwrite: replace ``out_dir`` if it is an earlier prepared video (a directory with prepare.json).
    person: keep this person's segments (persons numbered by tracked frames, 0 = most); None: person 0.
    segments: keep exactly these segments (shot numbers in time order, from 0) instead of a person.
    png_compress_level: zlib level of the frame PNGs (0, as EG3D and HFA-GP write theirs: ~2 ms and 770 KB
    per 512 frame; 1: ~280 KB, ~15 ms).
    """

    fps: float = 25.0
    resolution: int = alignment.EG3D_OUTPUT_SIZE
    test_fraction: float = 0.1
    background: str = "keep"
    masks: bool = False
    smooth_seconds: float = 0.28
    smooth_order: int = 2
    expression_dim: int = expression.DEFAULT_DIM
    detect_every: int = 10
    first_face_seconds: float = 2.0
    max_lost_fraction: float = 0.05
    min_seconds: float = 1.0
    jobs: int = 1
    overwrite: bool = False
    png_compress_level: int = 0
    person: Optional[int] = None
    segments: Optional[tuple[int, ...]] = None

    def validate(self) -> None:
        if not self.fps > 0:
            raise PrepareError(f"fps must be positive, got {self.fps}")
        if self.resolution < 64 or self.resolution % 2:
            raise PrepareError(f"resolution must be an even number >= 64, got {self.resolution}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise PrepareError(f"test fraction must be in [0, 1), got {self.test_fraction}")
        if self.background not in ("keep", "white"):
            raise PrepareError(f"background must be 'keep' or 'white', got {self.background!r}")
        if not 0.0 <= self.max_lost_fraction <= 1.0:
            raise PrepareError(f"max lost fraction must be in [0, 1], got {self.max_lost_fraction}")
        if self.jobs < 1:
            raise PrepareError(f"jobs must be >= 1, got {self.jobs}")
        if self.expression_dim < 1:
            raise PrepareError(f"expression dim must be >= 1, got {self.expression_dim}")
        if not 0 <= self.png_compress_level <= 9:
            raise PrepareError(f"PNG compression level must be in 0..9, got {self.png_compress_level}")
        if self.person is not None and self.segments is not None:
            raise PrepareError("choose either a person or segments, not both")
        if self.person is not None and self.person < 0:
            raise PrepareError(f"person must be >= 0, got {self.person}")
        if self.segments is not None and (not self.segments or min(self.segments) < 0):
            raise PrepareError(f"segments must be a non-empty list of numbers >= 0, got {list(self.segments)}")


def is_video_file(path) -> bool:
    """True if ``path`` is a file with a video stream that ffmpeg can read (not a still image)."""
    return video.is_video_file(path)


def check_out_dir(out_dir: str, overwrite: bool) -> None:
    """PrepareError unless ``out_dir`` is absent, empty, or (with overwrite) an earlier prepared video."""
    out_dir = os.path.abspath(out_dir)
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise PrepareError(f"{out_dir} exists and is not a directory")
    if not os.listdir(out_dir):
        return
    if not os.path.isfile(os.path.join(out_dir, METADATA_FILE)):
        raise PrepareError(f"{out_dir} is not empty and is not a prepared video (no {METADATA_FILE}); refusing to replace it")
    if not overwrite:
        raise PrepareError(f"{out_dir} already holds a prepared video (pass --overwrite to replace it)")


def _write_json(path: str, data) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def _versions() -> dict:
    out = {"python": platform.python_version(), "ffmpeg": video.ffmpeg_version()}
    for name in ("mediapipe", "opencv-contrib-python", "opencv-python", "opencv-python-headless", "numpy",
                 "pillow", "imageio-ffmpeg", "protobuf"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=quiet, dynamic_ncols=True, leave=False)


def split_indices(num_frames: int, test_fraction: float) -> tuple[list[int], list[int]]:
    """Time split: the last ``round(T * test_fraction)`` frames (at least one if the fraction is > 0) are test."""
    n_test = int(round(num_frames * test_fraction))
    if test_fraction > 0:
        n_test = max(1, n_test)
    n_test = min(n_test, num_frames - 1)
    return list(range(num_frames - n_test)), list(range(num_frames - n_test, num_frames))


class _FrameWorker:
    """The per-frame work after tracking, run in `PrepareOptions.jobs` threads (PIL resampling, OpenCV,
    MediaPipe and PNG encoding release the GIL): EG3D crop, landmarks in the crop, PnP pose, optional
    segmentation, and the PNG files. A MediaPipe graph per thread (graphs are not shared between threads)."""

    def __init__(self, tmp: str, options: PrepareOptions):
        self.tmp, self.options = tmp, options
        self.want_masks = options.masks or options.background == "white"
        self._local = threading.local()
        self._segmenters = []
        self._lock = threading.Lock()

    def _segmenter(self):
        seg = getattr(self._local, "segmenter", None)
        if seg is None:
            seg = self._local.segmenter = tracking.Segmenter()
            with self._lock:
                self._segmenters.append(seg)
        return seg

    def close(self) -> None:
        for seg in self._segmenters:
            seg.close()

    def __call__(self, t: int, frame: np.ndarray, lm: np.ndarray) -> dict:
        res = self.options.resolution
        transform = alignment.eg3d_crop_transform(alignment.five_points(lm[:, :2]), res)
        crop = alignment.warp_to_crop(frame, transform)
        lm_crop = transform.to_crop(lm)
        rot, trans, rms = pose.solve_head_pose(lm_crop[:, :2], res)
        colours = persons.vertex_colours(crop, lm_crop)
        name = frame_name(t)
        if self.want_masks:
            mask = np.clip(self._segmenter()(crop), 0.0, 1.0)
            _save_png(os.path.join(self.tmp, MASKS_DIR, name), np.round(mask * 255.0).astype(np.uint8),
                      self.options.png_compress_level)
            if self.options.background == "white":
                crop = np.round(crop * mask[..., None] + 255.0 * (1.0 - mask[..., None])).astype(np.uint8)
        _save_png(os.path.join(self.tmp, FRAMES_DIR, name), crop, self.options.png_compress_level)
        return {"t": t, "landmarks_crop": lm_crop, "cam2world": pose.eg3d_cam2world(rot, trans), "pnp_rms": rms,
                "transform": (transform.centre[0], transform.centre[1], transform.scale), "colours": colours}


def frame_name(t: int) -> str:
    """File name of video frame t (the natural sort of the names is time order)."""
    return f"{t:05d}.png"


def _save_png(path: str, image: np.ndarray, level: int) -> None:
    """uint8 [H, W] or [H, W, 3] RGB -> PNG with OpenCV's encoder (it releases the GIL).

    Level 0 (stored, as EG3D's) without row filters is a copy: ~2 ms for 512 x 512 instead of ~12 ms with
    the default adaptive filters, same bytes size. Higher levels use the 'up' filter: ~40% faster than the
    adaptive choice at the same size.
    """
    import cv2

    image = np.ascontiguousarray(image[..., ::-1] if image.ndim == 3 else image)
    row_filter = cv2.IMWRITE_PNG_FILTER_NONE if level == 0 else cv2.IMWRITE_PNG_FILTER_UP
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, int(level), cv2.IMWRITE_PNG_FILTER, row_filter])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def process_frames(video_path: str, info: video.VideoInfo, options: PrepareOptions, tmp: str,
                   quiet: bool = True) -> dict:
    """One pass over the decoded video: track, smooth (streaming Savitzky-Golay), crop / pose / write.

    Returns per decoded frame ``status`` [T] str, ``num_faces`` [T] int (-1: not counted) and ``lost`` [T]
    bool (no face), the ``cuts`` (first frames of the shots after the first) and the cut ``scores`` [T], and
    per tracked frame (``kept`` [N] frame indices) the smoothed landmarks ``smoothed`` [N, 478, 3],
    ``landmarks_crop`` [N, 478, 3], ``cam2world`` [N, 4, 4], ``pnp_rms`` [N], ``transform`` [N, 3] (crop
    centre x, y in source pixels, crop pixels per source pixel) and ``colours`` [N, 468, 3]
    (`persons.vertex_colours`).
    """
    expected = int(np.ceil(info.duration * options.fps)) if info.duration else None
    first_face_frames = int(np.ceil(options.first_face_seconds * options.fps))
    window = smoothing.window_frames(options.smooth_seconds, options.fps)
    smoother = smoothing.StreamingSavgol(window, options.smooth_order)
    status, faces, lost = [], [], []
    smoothed, results = {}, {}
    worker = _FrameWorker(tmp, options)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=options.jobs)
    in_flight = collections.deque()
    cuts = shots.CutDetector(options.fps)

    def submit(ready):
        for t, lm, frame in ready:
            smoothed[t] = lm
            in_flight.append(pool.submit(worker, t, frame, lm))
        while len(in_flight) > 2 * options.jobs + 2:   # bound the decoded frames held in memory
            r = in_flight.popleft().result()
            results[r["t"]] = r

    try:
        with tracking.FaceTracker(detect_every=options.detect_every) as tracker, \
                _progress(expected, "frames", quiet) as bar:
            for t, frame, cut in shots.with_cuts(video.decode_frames(video_path, options.fps, info.size), cuts):
                if cut:
                    submit(smoother.end_run())
                    tracker.new_shot()
                r = tracker.track(frame)
                status.append(r.status)
                faces.append(-1 if r.num_faces is None else r.num_faces)
                lost.append(r.landmarks is None)
                if r.landmarks is None:
                    submit(smoother.end_run())
                else:
                    submit(smoother.push(t, r.landmarks, frame))
                bar.update(1)
                if t + 1 == first_face_frames and all(lost):
                    raise PrepareError(f"{video_path}: no face found in the first {options.first_face_seconds:g} s "
                                       f"({first_face_frames} frames at {options.fps:g} fps)")
            submit(smoother.end_run())
            while in_flight:
                r = in_flight.popleft().result()
                results[r["t"]] = r
    except video.VideoError as e:
        raise PrepareError(str(e)) from None
    finally:
        for f in in_flight:
            f.cancel()
        pool.shutdown(wait=True)
        worker.close()
    if not status:
        raise PrepareError(f"{video_path}: ffmpeg decoded no frames")
    kept = np.array(sorted(results), np.int64)
    return {
        "status": np.array(status), "num_faces": np.array(faces), "lost": np.array(lost, bool), "kept": kept,
        "window": window, "cuts": list(cuts.cuts), "scores": np.asarray(cuts.scores, np.float64),
        "smoothed": np.stack([smoothed[t] for t in kept]) if len(kept) else np.zeros((0, tracking.NUM_LANDMARKS, 3)),
        **{key: np.stack([np.asarray(results[t][key], np.float64) for t in kept]) if len(kept) else np.zeros(0)
           for key in ("landmarks_crop", "cam2world", "pnp_rms", "transform", "colours")},
    }


def _lost_error(path: str, lost: np.ndarray, total: int, options: PrepareOptions, reasons: np.ndarray) -> str:
    detail = "; ".join(f"{r}: {report.frame_ranges(np.flatnonzero(lost & (reasons == r)))}"
                       for r in sorted(set(reasons[lost])))
    return (f"{path}: no face in {lost.sum()} of {total} frames ({100.0 * lost.sum() / total:.1f}% > "
            f"{100.0 * options.max_lost_fraction:g}%): {detail}")


def _segment_list(indices) -> str:
    return ("segment " if len(indices) == 1 else "segments ") + ", ".join(str(i) for i in indices)


def _persons_summary(segments: list[dict]) -> str:
    """'person 0: 60 frames (segments 0, 1, 3), person 1: 15 frames (segment 2)'."""
    out = []
    for p in sorted({s["person"] for s in segments if s["person"] is not None}):
        members = [s for s in segments if s["person"] == p]
        out.append(f"person {p}: {sum(s['tracked'] for s in members)} frames "
                   f"({_segment_list([s['index'] for s in members])})")
    return ", ".join(out) if out else "no face in any segment"


def select_segments(video_path: str, frames: dict, options: PrepareOptions) -> tuple[list[dict], np.ndarray]:
    """Split the video at its cuts, give each segment a person, choose the segments to keep.

    Returns the segment records (index, start / end frame and time, frames, tracked frames, faces in view,
    person, distance to the chosen person, kept, reason) and a bool [N] mask over ``frames['kept']`` (the
    tracked frames) of the frames in kept segments. The chosen person is ``options.person`` or person 0 (the
    most frames); ``options.segments`` keeps those segments instead. PrepareError for a person or segment that
    does not exist, a chosen segment without a face, or a choice with fewer than ``min_seconds`` of frames.
    """
    total = len(frames["status"])
    fps = options.fps
    tracked = frames["kept"]
    faces = frames["num_faces"]
    shot_list = shots.shots_from_cuts(frames["cuts"], total)
    members = [np.flatnonzero((tracked >= sh.start) & (tracked < sh.stop)) for sh in shot_list]
    signatures = [persons.shot_signature(frames["smoothed"][m], frames["colours"][m]) if len(m) else None
                  for m in members]
    who = persons.group_shots(signatures, [len(m) for m in members])
    segments = []
    for sh, m, p in zip(shot_list, members, who):
        counted = faces[sh.start:sh.stop]
        counted = counted[counted >= 0]
        segments.append({"index": sh.index, "start_frame": sh.start, "end_frame": sh.stop - 1,
                         "start_s": sh.start / fps, "end_s": sh.stop / fps, "frames": sh.frames,
                         "tracked": int(len(m)), "faces_in_view": int(counted.max()) if counted.size else None,
                         "person": p})
    n_persons = len({p for p in who if p is not None})
    cuts_text = (f"{len(frames['cuts'])} cut(s) at frames {', '.join(str(c) for c in frames['cuts'])}"
                 if frames["cuts"] else "no cuts")
    summary = f"{len(segments)} segment(s), {cuts_text}; {_persons_summary(segments)}"
    if options.segments is not None:
        chosen_person = None
        for i in options.segments:
            if i >= len(segments):
                raise PrepareError(f"{video_path}: --segment {i}: no such segment (0-{len(segments) - 1}): "
                                   f"{summary}")
            if who[i] is None:
                sg = segments[i]
                raise PrepareError(f"{video_path}: --segment {i}: no face in segment {i} "
                                   f"(frames {sg['start_frame']}-{sg['end_frame']}): {summary}")
        keep = set(options.segments)
    else:
        chosen_person = 0 if options.person is None else options.person
        if n_persons == 0:
            raise PrepareError(f"{video_path}: no face in any segment ({summary})")
        if chosen_person >= n_persons:
            raise PrepareError(f"{video_path}: --person {chosen_person}: the video shows {n_persons} person(s): "
                               f"{summary}")
        keep = {i for i, p in enumerate(who) if p == chosen_person}
    for sg, sig in zip(segments, signatures):
        i, p = sg["index"], sg["person"]
        # The mean distance to the other kept segments' signatures (None without a face or another to compare).
        others = [persons.signature_distance(sig, signatures[j]) for j in sorted(keep) if j != i] if sig else []
        sg["distance_to_chosen"] = float(np.mean(others)) if others else None
        sg["kept"] = i in keep
        if p is None:
            sg["reason"] = "no face found"
        elif options.segments is not None:
            sg["reason"] = "chosen with --segment" if sg["kept"] else "not chosen with --segment"
        elif sg["kept"]:
            sg["reason"] = (f"person {p}, chosen with --person" if options.person is not None
                            else f"person {p}, the person with the most frames")
        else:
            sg["reason"] = f"another person ({p})"
        if sg["kept"] and (sg["faces_in_view"] or 0) > 1:
            sg["reason"] += (f"; {sg['faces_in_view']} faces in view: the largest face at the segment's start "
                             "was tracked, the others are not in the data set")
    mask = np.zeros(len(tracked), bool)
    for i in keep:
        mask[members[i]] = True
    min_frames = int(np.ceil(options.min_seconds * fps))
    if mask.sum() < max(min_frames, 2):
        what = (f"person {chosen_person}" if chosen_person is not None else f"--segment "
                f"{','.join(str(i) for i in options.segments)}")
        if options.person is not None or options.segments is not None:
            lead = f"{what} has too few frames"
        else:
            lead = "no single person has enough frames" if n_persons > 1 else "too few frames with a face"
        raise PrepareError(f"{video_path}: {lead}: {summary}; at least {options.min_seconds:g} s = "
                           f"{max(min_frames, 2)} frames needed (--min-seconds)")
    return segments, mask


def _keep_tracked(tmp: str, frames: dict, mask: np.ndarray) -> dict:
    """``frames`` with its per-tracked-frame arrays cut to ``mask`` [N]; the PNGs of the others are removed."""
    for t in frames["kept"][~mask]:
        for sub in (FRAMES_DIR, MASKS_DIR):
            path = os.path.join(tmp, sub, frame_name(t))
            if os.path.exists(path):
                os.remove(path)
    out = dict(frames)
    for key in ("kept", "smoothed", "landmarks_crop", "cam2world", "pnp_rms", "transform", "colours"):
        out[key] = frames[key][mask]
    return out


def prepare_video(video_path, out_dir, options: Optional[PrepareOptions] = None, quiet: bool = True) -> dict:
    """Prepare ``video_path`` into ``out_dir`` (see the module docstring); returns prepare.json's contents.

    Raises PrepareError (a ValueError) for bad input; ``out_dir`` is untouched then.
    """
    options = options or PrepareOptions()
    options.validate()
    video_path = os.fspath(video_path)
    out_dir = os.path.abspath(os.fspath(out_dir))
    check_out_dir(out_dir, options.overwrite)
    t_start = time.perf_counter()
    try:
        info = video.probe(video_path)
    except video.VideoError as e:
        raise PrepareError(str(e)) from None
    with atomic.atomic_directory(out_dir, overwrite=options.overwrite,
                                 replaceable=lambda p: (p / METADATA_FILE).is_file()) as tmp:
        tmp = str(tmp)
        os.makedirs(os.path.join(tmp, FRAMES_DIR))
        if options.masks or options.background == "white":
            os.makedirs(os.path.join(tmp, MASKS_DIR))
        t0 = time.perf_counter()
        frames = process_frames(video_path, info, options, tmp, quiet)
        timings = {"frames_s": time.perf_counter() - t0}
        _check_length(video_path, frames, options)
        segments, mask = select_segments(video_path, frames, options)
        _check_lost(video_path, frames, segments, options)
        tiles = _segment_tiles(tmp, frames, segments)
        frames = _keep_tracked(tmp, frames, mask)
        meta = _write_dataset(tmp, video_path, info, options, frames, timings, segments)
        meta["timings_s"]["total_s"] = time.perf_counter() - t_start
        meta["frames_per_second"] = meta["counts"]["decoded"] / meta["timings_s"]["total_s"]
        _write_report(tmp, meta, frames, tiles)
        _write_json(os.path.join(tmp, METADATA_FILE), meta)
    return meta


def _check_length(video_path: str, frames: dict, options: PrepareOptions) -> None:
    total = len(frames["status"])
    min_frames = int(np.ceil(options.min_seconds * options.fps))
    if total < min_frames:
        raise PrepareError(f"{video_path}: too short: {total} frames at {options.fps:g} fps "
                           f"(at least {options.min_seconds:g} s = {min_frames} frames needed)")
    if len(frames["kept"]) < 2:
        raise PrepareError(f"{video_path}: only {len(frames['kept'])} frame(s) with a face")


def _check_lost(video_path: str, frames: dict, segments: list[dict], options: PrepareOptions) -> None:
    """The lost-frame rule over the frames of the kept segments: a shot without any face (a cutaway) or of
    another person is left out and reported, not a tracking failure."""
    considered = np.zeros(len(frames["status"]), bool)
    for sg in segments:
        if sg["kept"]:
            considered[sg["start_frame"]:sg["end_frame"] + 1] = True
    lost = frames["lost"] & considered
    if lost.sum() > options.max_lost_fraction * considered.sum():
        raise PrepareError(_lost_error(video_path, lost, int(considered.sum()), options, frames["status"]))


def _segment_tiles(tmp: str, frames: dict, segments: list[dict]) -> list:
    """Per segment the crop (uint8 [R, R, 3]) and landmarks of its middle tracked frame, or None without a
    face: the contact sheet's segment strip shows the left-out segments too, whose files are removed."""
    tiles = []
    tracked = frames["kept"]
    for sg in segments:
        idx = np.flatnonzero((tracked >= sg["start_frame"]) & (tracked <= sg["end_frame"]))
        if not len(idx):
            tiles.append(None)
            continue
        i = idx[len(idx) // 2]
        crop = np.asarray(Image.open(os.path.join(tmp, FRAMES_DIR, frame_name(tracked[i]))).convert("RGB"))
        tiles.append((crop, frames["landmarks_crop"][i]))
    return tiles


def _write_dataset(tmp: str, video_path: str, info: video.VideoInfo, options: PrepareOptions, frames: dict,
                   timings: dict, segments: list[dict]) -> dict:
    """Labels, split, expressions, audio features and the metadata dict (frames are written already)."""
    kept = frames["kept"]
    n = len(kept)
    names = [frame_name(t) for t in kept]
    cam2world = frames["cam2world"]
    problems = {names[i]: p for i in range(n)
                if (p := cameras.camera_problems(cam2world[i], cameras.FFHQ_INTRINSICS))}
    if problems:
        raise PrepareError(f"{video_path}: invalid cameras: {dict(list(problems.items())[:3])}")
    _write_labels(os.path.join(tmp, FRAMES_DIR), names, pose.eg3d_labels(cam2world))
    train, test = split_indices(n, options.test_fraction)
    _write_json(os.path.join(tmp, "split.json"), {"train": train, "test": test})
    np.save(os.path.join(tmp, "landmarks.npy"), frames["landmarks_crop"].astype(np.float32))
    np.save(os.path.join(tmp, "crop_transform.npy"), frames["transform"])

    # Expressions: PCA fitted on the training frames.
    t0 = time.perf_counter()
    shapes = expression.normalise_pose(frames["smoothed"])
    pca = expression.fit_pca(shapes[train], options.expression_dim)
    codes = expression.project(shapes, pca)
    np.save(os.path.join(tmp, "expression.npy"), codes)
    np.savez(os.path.join(tmp, "expression_pca.npz"), mean=pca.mean.astype(np.float32),
             basis=pca.basis.astype(np.float32), singular_values=pca.singular_values,
             explained_variance_ratio=pca.explained_variance_ratio)
    timings["expression_s"] = time.perf_counter() - t0

    # Audio.
    t0 = time.perf_counter()
    warn = []
    audio_meta = None
    status = frames["status"]
    if info.audio_codec is None:
        warn.append("no audio stream: aud.npy and audio.wav are not written")
    else:
        from avatar_data import audio_features

        wav = os.path.join(tmp, "audio.wav")
        try:
            video.extract_audio(video_path, wav)
        except video.VideoError as e:
            raise PrepareError(str(e)) from None
        feats = audio_features.wav_features(wav, num_frames=len(status), fps=options.fps)[kept]
        np.save(os.path.join(tmp, "aud.npy"), feats)
        waveform, rate = audio_features.read_wav(wav)
        audio_meta = {"codec": info.audio_codec, "sample_rate": rate, "seconds": len(waveform) / rate,
                      "features": "MFCC windows (avatar_data.audio_features), not DeepSpeech",
                      "shape": list(feats.shape)}
    timings["audio_s"] = time.perf_counter() - t0

    faces = frames["num_faces"]
    counted = faces[faces >= 0]
    several = int((counted > 1).sum())
    if several:
        warn.append(f"several faces in view ({several} of {len(counted)} sampled frames, at most "
                    f"{int(counted.max())}): tracked the largest at the start of each segment (then the one that "
                    f"overlaps the track)")
    warn += _segment_warnings(segments)
    lost = frames["lost"]
    dropped = [{"frame": int(t), "reason": str(status[t])} for t in np.flatnonzero(lost)]
    statuses, counts = np.unique(status, return_counts=True)
    want_masks = options.masks or options.background == "white"
    return {
        "format": "avatar_data.prepare",
        "version": FORMAT_VERSION,
        "source": {"path": os.path.abspath(video_path), "bytes": os.path.getsize(video_path),
                   "sha256": sha256_file(video_path), "demuxer": info.demuxer, "video_codec": info.video_codec,
                   "size": list(info.size), "fps": info.fps, "duration_s": info.duration,
                   "audio_codec": info.audio_codec},
        "fps": options.fps,
        "resolution": options.resolution,
        "counts": {"decoded": int(len(status)), "kept": n, "dropped": int(lost.sum()),
                   "excluded": int(len(status) - n - lost.sum()), "train": len(train), "test": len(test),
                   "segments": len(segments), "segments_kept": sum(sg["kept"] for sg in segments)},
        "frame_index": [int(t) for t in kept],
        "dropped": dropped,
        "segments": segments,
        "shots": {"method": "hard cuts: HSV content difference of 80-pixel-wide thumbnails, a spike over its "
                            "neighbours (avatar_data.prepare.shots)",
                  "cuts": [int(c) for c in frames["cuts"]], "min_score": shots.MIN_SCORE, "ratio": shots.RATIO,
                  "window": shots.WINDOW, "min_shot_seconds": shots.MIN_SHOT_SECONDS,
                  "persons": "per-segment signature (upper-face shape, luminance pattern, chromaticity; "
                             "avatar_data.prepare.persons)",
                  "same_person_below": persons.SAME_PERSON,
                  "persons_found": len({sg["person"] for sg in segments if sg["person"] is not None})},
        "tracking": {"status_counts": {str(s): int(c) for s, c in zip(statuses, counts)},
                     "max_faces": int(counted.max()) if counted.size else 0,
                     "frames_with_several_faces": several, "detect_every": options.detect_every,
                     "landmarks": "MediaPipe face mesh with attention (478 points: 468 mesh + 10 iris)",
                     "smoothing": {"method": "savitzky-golay", "window_frames": frames["window"],
                                   "order": options.smooth_order}},
        "camera": {"convention": "EG3D label: OpenCV cam2world (16, row-major) + normalised intrinsics (9)",
                   "intrinsics": cameras.FFHQ_INTRINSICS.reshape(-1).tolist(),
                   "method": "cv2.solvePnP (SQPnP + LM) of the 468 mesh points against MediaPipe's canonical "
                             "face in the crop; EG3D 3dface2idr_mat.py + fix_pose_orig conversion",
                   "pnp_rms_px": {"mean": float(frames["pnp_rms"].mean()), "max": float(frames["pnp_rms"].max())},
                   "optical_axis_to_pivot_mean": float(pose.look_at_distance(cam2world).mean())},
        "crop": {"recipe": "EG3D crop_images_in_the_wild.py + Deep3DFaceRecon align_img (1024 / 300 / 700 -> "
                           f"{options.resolution})",
                 "five_point_mesh_ids": [list(ids) for ids in alignment.FIVE_POINT_MESH_IDS]},
        "expression": {"file": "expression.npy", "shape": list(codes.shape), "basis_file": "expression_pca.npz",
                       "kind": "pose-normalised MediaPipe landmark PCA (cm on the canonical face); NOT FLAME/BFM",
                       "fitted_on": "train", "num_directions": int(pca.basis.shape[0]),
                       "explained_variance_ratio_top10": [float(v) for v in pca.explained_variance_ratio[:10]]},
        "audio": audio_meta,
        "warnings": warn,
        "options": dataclasses.asdict(options),
        "timings_s": timings,
        "versions": _versions(),
        "files": {"frames": f"{FRAMES_DIR}/dataset.json", "split": "split.json", "expression": "expression.npy",
                  "expression_basis": "expression_pca.npz", "landmarks": "landmarks.npy",
                  "crop_transform": "crop_transform.npy",
                  "audio_features": "aud.npy" if audio_meta else None, "audio": "audio.wav" if audio_meta else None,
                  "masks": MASKS_DIR if want_masks else None, "report": f"{REPORT_DIR}/report.md"},
    }


def _segment_warnings(segments: list[dict]) -> list[str]:
    """Warnings about the segments: persons left out, segments without a face, several persons kept
    (--segment), kept segments with several faces."""
    warn = []
    left = [sg for sg in segments if not sg["kept"] and sg["person"] is not None]
    if left:
        kept = [sg for sg in segments if sg["kept"]]
        warn.append(f"{len(segments)} segments: kept {_segment_list([sg['index'] for sg in kept])} "
                    f"({sum(sg['tracked'] for sg in kept)} frames); left out "
                    f"{_segment_list([sg['index'] for sg in left])} ({sum(sg['tracked'] for sg in left)} frames of "
                    f"person(s) {', '.join(str(p) for p in sorted({sg['person'] for sg in left}))})")
    empty = [sg for sg in segments if sg["person"] is None]
    if empty:
        warn.append(f"no face in {_segment_list([sg['index'] for sg in empty])} "
                    f"({sum(sg['frames'] for sg in empty)} frames): left out")
    kept_persons = sorted({sg["person"] for sg in segments if sg["kept"]})
    if len(kept_persons) > 1:
        warn.append(f"the kept segments show {len(kept_persons)} persons ({', '.join(map(str, kept_persons))}), "
                    "as chosen with --segment")
    for sg in segments:
        if sg["kept"] and (sg["faces_in_view"] or 0) > 1:
            warn.append(f"segment {sg['index']} (frames {sg['start_frame']}-{sg['end_frame']}): "
                        f"{sg['faces_in_view']} faces in view; tracked the largest face at the segment's start, "
                        "the others are not in the data set")
    return warn


def _write_labels(frames_dir: str, names, labels: np.ndarray) -> None:
    """dataset.json in the format of `avatar_data.formats.eg3d.write_eg3d_folder` (whose frames-in-memory
    interface does not fit a streaming writer)."""
    _write_json(os.path.join(frames_dir, "dataset.json"),
                {"labels": [[name, [float(v) for v in lab]] for name, lab in zip(names, labels)]})


def _write_report(tmp: str, meta: dict, frames: dict, tiles: list) -> None:
    """report/: contact_sheet.png (the segment strip over 24 kept crops), pose.png, report.json, report.md,
    angles.npy ([N, 3] yaw/pitch/roll deg). ``tiles``: per segment its crop and landmarks (`_segment_tiles`)."""
    rep_dir = os.path.join(tmp, REPORT_DIR)
    os.makedirs(rep_dir)
    kept = frames["kept"]
    angles = pose.camera_angles(frames["cam2world"])
    order = sorted(set(np.linspace(0, len(kept) - 1, min(SHEET_FRAMES, len(kept))).round().astype(int).tolist()))
    crops = [np.asarray(Image.open(os.path.join(tmp, FRAMES_DIR, frame_name(kept[i]))).convert("RGB"))
             for i in order]
    segments = meta["segments"]
    starts = np.array([sg["start_frame"] for sg in segments])
    titles = [f"S{np.searchsorted(starts, kept[i], side='right') - 1} frame {kept[i]}  roll {angles[i, 2]:+.1f}"
              for i in order]
    sheet = report.contact_sheet(crops, [frames["landmarks_crop"][i] for i in order], titles, meta["resolution"])
    strip = report.segment_strip(segments, tiles, meta["resolution"], sheet.width)
    report.stack([strip, sheet]).save(os.path.join(rep_dir, "contact_sheet.png"))
    dropped = [d["frame"] for d in meta["dropped"]]
    report.pose_plot(kept, angles, meta["fps"], dropped, cuts=meta["shots"]["cuts"]).save(
        os.path.join(rep_dir, "pose.png"))
    rep = {
        "source": meta["source"]["path"], "fps": meta["fps"], "resolution": meta["resolution"],
        "counts": meta["counts"], "dropped": meta["dropped"], "warnings": meta["warnings"],
        "cuts": meta["shots"]["cuts"], "segments": segments,
        "tracking": {"summary": ", ".join(f"{k} {v}" for k, v in meta["tracking"]["status_counts"].items()),
                     "max_faces": meta["tracking"]["max_faces"],
                     "frames_with_several_faces": meta["tracking"]["frames_with_several_faces"]},
        "pose": {name: {"mean": float(angles[:, j].mean()), "min": float(angles[:, j].min()),
                        "max": float(angles[:, j].max())} for j, name in enumerate(("yaw", "pitch", "roll"))},
        "pnp_rms_px": meta["camera"]["pnp_rms_px"],
        "seconds": meta["timings_s"]["total_s"], "frames_per_second": meta["frames_per_second"],
    }
    _write_json(os.path.join(rep_dir, "report.json"), rep)
    with open(os.path.join(rep_dir, "report.md"), "w") as f:
        f.write(report.markdown(rep))
    np.save(os.path.join(rep_dir, "angles.npy"), angles.astype(np.float32))
