"""The talking-head video world: one procedural person talking, with ground truth (see the package docstring).

`video_parameters` makes the per-frame expression [T, 10] and head pose [T, 6] from a seed and a speech
waveform; `make_head_world` renders them (frames, and novel views of every test frame) and writes the
world in the layout of `avatar_data.worlds.layout`, so that training and evaluation read it unchanged.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Sequence

import numpy as np

from avatar_data import audio_features, cameras
from avatar_data.worlds import layout, writer
from avatar_data.worlds.heads import params as P
from avatar_data.worlds.heads import speech as S
from avatar_data.worlds.writer import random_trajectory
from hfagp_common import limits

FORMAT_NAME = layout.HEAD_WORLD_FORMAT
FORMAT_VERSION = 2  # 2 added part labels and face points (layout.FACE_TRUTH_VERSION)
FPS = 25.0
DEFAULT_NOVEL_VIEWS = ((20.0, 0.0), (-20.0, 0.0), (35.0, 0.0), (-35.0, 0.0), (0.0, 15.0), (0.0, -15.0))
SUPERSAMPLE = 2
# Memory held per rendered pixel until the world is written: RGB uint8 (3), depth and mask float32 (8), the part
# label (1), and the depth and mask as float16 while they are saved (4).
BYTES_PER_PIXEL = 16
SPEECH_FILE = "speech.wav"
EXPRESSION_FILE_DIM = 76
EXPRESSION_SLOTS = tuple(range(P.EXPRESSION_DIM))  # expression.npy[:, k] is the k-th of EXPRESSION_NAMES
TRACKER_NOISE = 0.02
TRACKER_NOISE_CORRELATION = 0.6  # AR(1) coefficient of the noise from frame to frame

# Head motion amplitudes: yaw, pitch, roll in degrees, translation in world units. The smooth motion is
# rescaled so that its largest excursion within the video reaches them (clips too short to swing past half
# of them are scaled by 2 at most).
HEAD_MOTION = {"yaw_deg": 13.0, "pitch_deg": 6.5, "roll_deg": 3.0, "tx": 0.012, "ty": 0.008, "tz": 0.01}

# Speech -> mouth in the training frames; the test frames add the `TEST_EVENTS` peaks on top.
JAW_GAIN, JAW_TRAIN_MAX = 0.75, 0.7
TEST_EVENTS = (("jaw_open", 0.95), ("smile", 0.85), ("brow_raise", 0.9))


def _bump(t: np.ndarray, centre: float, half_width: float) -> np.ndarray:
    """cos^2 bump of peak 1 at `centre` and zero beyond `half_width` frames."""
    u = np.clip((t - centre) / half_width, -1.0, 1.0)
    return np.cos(0.5 * np.pi * u) ** 2


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average over `width` (odd) frames, edges padded with the end values; same length as x."""
    h = width // 2
    return np.convolve(np.pad(x, h, mode="edge"), np.ones(width) / width, mode="valid")


def _blinks(gen: np.random.Generator, num_frames: int, fps: float) -> np.ndarray:
    """[T, 2] (left, right) blink closures: pulses of 0.16-0.24 s every 2.5-5 s; 15% of them one eye only."""
    out = np.zeros((num_frames, 2))
    t = np.arange(num_frames)
    start = gen.uniform(0.5, 3.0) * fps
    while start < num_frames + fps:
        half = gen.uniform(0.08, 0.12) * fps
        pulse = np.where(np.abs(t - start) < half, np.cos(0.5 * np.pi * (t - start) / half) ** 2, 0.0)
        eyes = (1.0, 1.0) if gen.random() > 0.15 else ((1.0, 0.0) if gen.random() < 0.5 else (0.0, 1.0))
        out = np.maximum(out, pulse[:, None] * np.asarray(eyes)[None])
        start += gen.uniform(2.5, 5.0) * fps
    return out


def _events(gen: np.random.Generator, num_frames: int, fps: float, every: tuple, length: tuple,
            height: tuple) -> np.ndarray:
    """[T] sum of cos^2 bumps at random intervals `every` (s), lengths `length` (s), heights `height`."""
    out = np.zeros(num_frames)
    t = np.arange(num_frames)
    start = gen.uniform(*every) * fps * 0.5
    while start < num_frames:
        out = np.maximum(out, gen.uniform(*height) * _bump(t, start, 0.5 * gen.uniform(*length) * fps))
        start += gen.uniform(*every) * fps
    return out


def load_speech(seed: int, duration_s: float, source: str) -> dict:
    """'synthetic', 'espeak' or a wav path -> {'waveform', 'sample_rate', ...} (`avatar_data.worlds.heads.speech`)."""
    if source == "synthetic":
        return S.synthetic_speech(P.rng(seed, "speech"), duration_s)
    if source == "espeak":
        return S.espeak_speech(P.rng(seed, "speech"), duration_s)
    if not os.path.isfile(source):
        raise S.SpeechError(f"--speech must be 'synthetic', 'espeak' or a .wav file; {source!r} is none of them")
    return S.wav_speech(source, duration_s)


def video_parameters(seed: int, num_frames: int, num_test_frames: int, speech: str = "synthetic",
                     fps: float = FPS) -> dict:
    """Per-frame parameters of the talking video of identity `seed`.

    Returns {'expression': float32 [T, 10], 'pose': float32 [T, 6], 'speech': load_speech's dict,
    'mouth': mouth_signals' dict, 'test_events': [(name, frame, peak)]}. The training frames (all but the last
    `num_test_frames`) keep jaw_open <= JAW_TRAIN_MAX and smaller smiles and brow raises than the peaks of
    `TEST_EVENTS`, which are added in the test frames only.
    """
    sp = load_speech(seed, num_frames / fps, speech)
    mouth = S.mouth_signals(sp["waveform"], sp["sample_rate"], num_frames, fps)
    loud, rnd = mouth["loudness"], mouth["roundness"]
    t = np.arange(num_frames)
    idx = P.EXPRESSION_INDEX
    e = np.zeros((num_frames, P.EXPRESSION_DIM))

    drift = random_trajectory(P.rng(seed, "drift"), 6, 1.0, min_period=60.0, max_period=260.0)(t)
    e[:, idx["jaw_open"]] = np.clip(JAW_GAIN * loud, 0.0, JAW_TRAIN_MAX)
    e[:, idx["smile"]] = 0.1 + 0.12 * drift[:, 0] + 0.15 * np.maximum(-rnd, 0.0) * loud
    e[:, idx["pucker"]] = 0.45 * np.maximum(rnd, 0.0) * loud
    e[:, idx["brow_raise"]] = 0.05 + 0.18 * drift[:, 1] + 0.15 * _smooth(loud, 9)
    e[:, idx["brow_furrow"]] = 0.25 * np.maximum(drift[:, 2], 0.0)
    blinks = _blinks(P.rng(seed, "blinks"), num_frames, fps)
    e[:, idx["blink_l"]], e[:, idx["blink_r"]] = blinks[:, 0], blinks[:, 1]
    gen = P.rng(seed, "saccade")
    saccades = np.zeros((num_frames, 2))
    start, target = 0, gen.uniform(-0.3, 0.3, 2)
    while start < num_frames:
        stop = start + int(gen.uniform(1.0, 3.0) * fps)
        saccades[start:stop] = target
        start, target = stop, gen.uniform(-0.3, 0.3, 2)
    saccades = np.stack([_smooth(s, 3) for s in saccades.T], axis=1)
    e[:, idx["gaze_x"]] = saccades[:, 0] + 0.15 * drift[:, 3]
    e[:, idx["gaze_y"]] = 0.6 * saccades[:, 1] + 0.1 * drift[:, 4]
    e[:, idx["cheek_puff"]] = _events(P.rng(seed, "cheek"), num_frames, fps, (5.0, 9.0), (0.6, 1.2), (0.3, 0.6))

    n_train = num_frames - num_test_frames
    events = []
    if num_test_frames > 0:
        for k, (name, peak) in enumerate(TEST_EVENTS):
            centre = n_train + round((k + 1) * (num_test_frames - 1) / (len(TEST_EVENTS) + 1))
            half = max(2.0, num_test_frames / 4.0)
            col = idx[name]
            bump = peak * _bump(t, centre, half) * (t >= n_train)
            e[:, col] = np.maximum(e[:, col], bump)
            events.append((name, int(centre), float(peak)))
    e = P.clip_expression(e)

    motion = random_trajectory(P.rng(seed, "pose"), 6, 1.0, min_period=40.0, max_period=160.0)(t)
    # Reach the full amplitudes within the video (a short clip, whose motion is small, is scaled at most 2x).
    motion = motion / np.maximum(np.abs(motion).max(axis=0), 0.5)
    scale = np.array([np.radians(HEAD_MOTION["yaw_deg"]), np.radians(HEAD_MOTION["pitch_deg"]),
                      np.radians(HEAD_MOTION["roll_deg"]), HEAD_MOTION["tx"], HEAD_MOTION["ty"], HEAD_MOTION["tz"]])
    return {"expression": e.astype(np.float32), "pose": (motion * scale).astype(np.float32), "speech": sp,
            "mouth": mouth, "test_events": events}


def tracked_expressions(seed: int, expression: np.ndarray) -> tuple[np.ndarray, dict]:
    """What a face tracker would report: float32 [T, 76]; columns `EXPRESSION_SLOTS` hold the true values,
    the other 66 a fixed linear mix of them (stream 'mix'), and every column AR(1) noise of std
    `TRACKER_NOISE`. Returns (values, {'matrix': [10, 66], 'bias': [66]})."""
    gen = P.rng(seed, "mix")
    extra = EXPRESSION_FILE_DIM - P.EXPRESSION_DIM
    mix = {"matrix": gen.standard_normal((P.EXPRESSION_DIM, extra)) / np.sqrt(P.EXPRESSION_DIM),
           "bias": 0.1 * gen.standard_normal(extra)}
    clean = np.concatenate([expression, expression @ mix["matrix"] + mix["bias"]], axis=1)
    gen = P.rng(seed, "tracker")
    white = gen.standard_normal(clean.shape)
    noise = np.zeros_like(white)
    rho = TRACKER_NOISE_CORRELATION
    for i in range(len(white)):
        noise[i] = (rho * noise[i - 1] if i else 0.0) + np.sqrt(1.0 - rho * rho) * white[i]
    return (clean + TRACKER_NOISE * noise).astype(np.float32), mix


def head_frame_labels(labels: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """EG3D labels [N, 25] of the same cameras seen from the head's rest frame (the rigid head pose undone):
    what an EG3D pipeline that folds head motion into the camera would use."""
    c2w, k = cameras.split_eg3d_label(np.asarray(labels, np.float64))
    rot = P.rotation_matrix(pose[:, 0], pose[:, 1], pose[:, 2])
    pivot = np.asarray(P.HEAD_PIVOT)
    out = c2w.copy()
    out[:, :3, :3] = np.swapaxes(rot, 1, 2) @ c2w[:, :3, :3]
    centre = c2w[:, :3, 3] - pivot - np.asarray(pose[:, 3:6], np.float64)
    out[:, :3, 3] = np.einsum("nji,nj->ni", rot, centre) + pivot
    return cameras.eg3d_label(out, k)


def save_npz_deterministic(path: str, arrays: dict, compress: bool = False) -> None:
    """Like np.savez / np.savez_compressed (readable by np.load), but with fixed zip timestamps and sorted
    entries, so that equal arrays give equal bytes."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            zf.writestr(info, buf.getvalue())


def check_identity_seed(seed: int, allow_pretrain_identity: bool) -> None:
    """ValueError unless `seed` is an evaluation identity (or a pretraining one, when allowed)."""
    if P.is_evaluation_identity(seed):
        return
    if P.is_pretrain_identity(seed):
        if allow_pretrain_identity:
            return
        raise ValueError(f"seed {seed} is a pretraining identity (>= {P.PRETRAIN_IDENTITY_SEED_START}), which an EG3D "
                         "prior may have seen; evaluation worlds use seeds "
                         f"{P.EVALUATION_IDENTITY_SEEDS.start}..{P.EVALUATION_IDENTITY_SEEDS.stop - 1} "
                         "(pass --allow-pretrain-identity to render it anyway)")
    raise ValueError(f"seed {seed} is outside the identity seeds ({P.EVALUATION_IDENTITY_SEEDS.start}.."
                     f"{P.EVALUATION_IDENTITY_SEEDS.stop - 1} for evaluation, {P.PRETRAIN_IDENTITY_SEED_START}.."
                     f"{P.MAX_IDENTITY_SEED} for pretraining)")


def _ranges(values: np.ndarray) -> dict:
    return {n: [round(float(values[:, i].min()), 4), round(float(values[:, i].max()), 4)]
            for i, n in enumerate(P.EXPRESSION_NAMES)} if len(values) else {}


def make_head_world(
    out_dir: str,
    *,
    seed: int = 0,
    num_frames: int = 200,
    num_test_frames: int | None = None,
    resolution: int = 128,
    novel_views: Sequence[tuple[float, float]] = DEFAULT_NOVEL_VIEWS,
    speech: str = "synthetic",
    allow_pretrain_identity: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Render the talking-head world of identity `seed` into `out_dir` (atomically); returns world.json's dict.

    num_test_frames: the last frames, held out (default 10% of num_frames, at least 1). novel_views: (yaw,
    pitch) camera offsets in degrees from frontal (positive pitch = camera lower) at which every test frame
    is also rendered, head pose as in that frame. speech: 'synthetic', 'espeak' or a wav path.
    """
    from avatar_data.worlds.heads import model, render

    check_identity_seed(seed, allow_pretrain_identity)
    if resolution < 8:
        raise ValueError(f"resolution must be at least 8, got {resolution}")
    held_out = num_test_frames if num_test_frames is not None else max(1, num_frames // 10)
    limits.check_fits_in_memory((num_frames + held_out * len(novel_views)) * resolution**2 * BYTES_PER_PIXEL,
                                f"a head world of {num_frames} frames at {resolution} px")
    with writer.writing_world(out_dir, num_frames=num_frames, num_test_frames=num_test_frames,
                              novel_views=novel_views, overwrite=overwrite) as w:
        n_train, n_test = w.num_train_frames, w.num_test_frames
        identity = P.sample_identity(seed)
        video = video_parameters(seed, num_frames, n_test, speech)
        expression, pose = video["expression"], video["pose"]
        # The audio features are those of speech.wav as stored (16-bit), so they can be recomputed from it.
        speech_path = w.path / SPEECH_FILE
        audio_features.write_wav(str(speech_path), video["speech"]["waveform"], video["speech"]["sample_rate"])
        waveform, rate = audio_features.read_wav(str(speech_path))
        audio = audio_features.frame_features(waveform, rate, num_frames, fps=FPS)
        tracked, mix = tracked_expressions(seed, expression)
        # The video is filmed by a fixed frontal camera while the head moves; the labels a face tracker reports
        # are that camera in the head's rest frame (head motion folded into the camera, as EG3D's poses).
        world_labels = np.repeat(cameras.frontal_camera()[None], num_frames, axis=0)
        labels = head_frame_labels(world_labels, pose)
        novel_frame, novel_view = w.novel_frame_index, w.novel_view_index
        novel_world_labels = cameras.yaw_pitch_cameras(*np.radians(np.asarray(w.novel_views).T))[novel_view] \
            if w.novel_views else np.zeros((0, cameras.LABEL_DIM), np.float32)
        novel_labels = head_frame_labels(novel_world_labels, pose[novel_frame])
        w.mark("signals_s")

        with w.timed("render_frames_s"):
            frames = render.render(identity.vector, expression, pose, world_labels, resolution=resolution,
                                   supersample=SUPERSAMPLE, progress=progress, desc="frames")
        with w.timed("render_novel_views_s"):
            novel = render.render(identity.vector, expression[novel_frame], pose[novel_frame], novel_world_labels,
                                  resolution=resolution, supersample=SUPERSAMPLE, progress=progress,
                                  desc="novel views")

        train_range, test_range = _ranges(expression[:n_train]), _ranges(expression[n_train:])
        beyond = {n: {"train": train_range[n], "test": test_range[n]} for n in P.EXPRESSION_NAMES
                  if test_range[n][1] > train_range[n][1] + 1e-3 or test_range[n][0] < train_range[n][0] - 1e-3}

        with w.timed("write_s"):
            w.write_video(frames["rgb"], labels, tracked, audio, novel["rgb"], novel_labels)
            save_npz_deterministic(str(w.path / layout.GROUND_TRUTH_FILE), {
                "identity": identity.vector, "identity_layout": np.array(json.dumps(P.IDENTITY_LAYOUT)),
                "expression_names": np.array(P.EXPRESSION_NAMES), "expression": expression, "pose": pose,
                "pose_names": np.array(P.POSE_NAMES), "labels": labels, "world_labels": world_labels,
                "depth": frames["depth"].astype(np.float16), "mask": frames["mask"].astype(np.float16),
                "novel_labels": novel_labels, "novel_world_labels": novel_world_labels,
                "novel_frame_index": novel_frame, "novel_view_index": novel_view,
                "novel_depth": novel["depth"].astype(np.float16), "novel_mask": novel["mask"].astype(np.float16),
                "expression_mix_matrix": mix["matrix"].astype(np.float32),
                "expression_mix_bias": mix["bias"].astype(np.float32),
                "nose_tip": np.stack([_nose_tip(identity.vector, e, p) for e, p in zip(expression, pose)]),
                "part_labels": frames["part"], "novel_part_labels": novel["part"],
                "face_point_names": np.array(model.FACE_POINT_NAMES),
                "face_points": face_points_px(identity.vector, expression, pose, world_labels, resolution),
                "novel_face_points": face_points_px(identity.vector, expression[novel_frame], pose[novel_frame],
                                                    novel_world_labels, resolution),
            })
        sp = video["speech"]
        world = w.finish(FORMAT_NAME, FORMAT_VERSION, FPS, resolution, {
            "supersample": SUPERSAMPLE,
            "seed": int(seed),
            "identity": identity.summary(),
            "identity_split": {"evaluation_seeds": [P.EVALUATION_IDENTITY_SEEDS.start,
                                                    P.EVALUATION_IDENTITY_SEEDS.stop - 1],
                               "pretrain_seeds_from": P.PRETRAIN_IDENTITY_SEED_START,
                               "is_pretrain_identity": P.is_pretrain_identity(seed)},
            "speech": {"source": speech if speech in ("synthetic", "espeak") else os.path.abspath(speech),
                       "sample_rate": int(rate), "seconds": round(len(waveform) / rate, 4),
                       **({"syllables": len(sp["syllables"]), "f0_hz": round(sp["f0"], 2)} if "f0" in sp else {}),
                       **({"text": sp["text"]} if "text" in sp else {})},
            "camera": {"radius": cameras.EG3D_RADIUS, "pivot": list(cameras.EG3D_PIVOT),
                       "intrinsics": cameras.FFHQ_INTRINSICS.tolist(),
                       "video": "a fixed frontal camera films the moving head; the labels (frames/, novel_views/, "
                                "ground_truth labels) are the cameras in the head's rest frame, as a face tracker "
                                "reports them; world_labels / novel_world_labels are the cameras in the world"},
            "head_motion": HEAD_MOTION,
            "novel_views_deg": [list(v) for v in w.novel_views],
            "expression": {"file_dim": EXPRESSION_FILE_DIM, "true_slots": list(EXPRESSION_SLOTS),
                           "names": list(P.EXPRESSION_NAMES),
                           "ranges": {n: list(P.EXPRESSION_RANGES[n]) for n in P.EXPRESSION_NAMES},
                           "tracker_noise_std": TRACKER_NOISE,
                           "tracker_noise_correlation": TRACKER_NOISE_CORRELATION},
            "test_expressions": {"events": [{"name": n, "frame": f, "peak": v} for n, f, v in video["test_events"]],
                                 "beyond_training_range": beyond, "train_range": train_range,
                                 "test_range": test_range},
            "audio": {"shape": list(audio_features.FEATURE_SHAPE), "features": "MFCC (avatar_data.audio_features)"},
            "depth": "euclidean distance from the camera centre along the unit pixel ray; 0 where mask is 0",
            "part_names": list(model.PART_NAMES),
            "part_labels": "uint8 [T, R, R] / [V, R, R] (part_labels, novel_part_labels): the part (index into "
                           "part_names) that the pixel's centre ray hits",
            "face_point_names": list(model.FACE_POINT_NAMES),
            "face_points": "float32 [T, 3, 2] / [V, 3, 2] (face_points, novel_face_points): pixel (column, row) "
                           "of the mouth centre and the eyes, pixel i's centre at i",
        }, extra_files={"speech": SPEECH_FILE})
    return world


def _nose_tip(identity: np.ndarray, expression: np.ndarray, pose: np.ndarray) -> np.ndarray:
    from avatar_data.worlds.heads.model import nose_tip

    return nose_tip(identity, expression, pose).astype(np.float32)


def face_points_px(identity: np.ndarray, expression: np.ndarray, pose: np.ndarray, world_labels: np.ndarray,
                   resolution: int) -> np.ndarray:
    """Pixel positions float32 [N, 3, 2] (column, row; `cameras.project_to_pixels`) of `model.face_points` of N
    images: identity [IDENTITY_DIM], expression [N, 10], pose [N, 6], world cameras [N, 25]."""
    from avatar_data.worlds.heads import model

    points = np.stack([model.face_points(identity, e, p) for e, p in zip(expression, pose)]) if len(pose) else \
        np.zeros((0, len(model.FACE_POINT_NAMES), 3))
    return cameras.project_to_pixels(world_labels, points, resolution).astype(np.float32)
