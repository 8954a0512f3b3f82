"""Face tracking with MediaPipe 0.10.14's legacy solutions, offline (the wheel ships the tflite models).

Per frame (`FaceTracker.track`):

1. With a track (the previous frame's landmarks), crop a square around them (`TRACK_CROP_FACTOR` x the
   landmarks' extent), turned so that their eye line is level, and run the face mesh on the crop (on the
   motion test video, upright crops cut the expression codes' jitter by 40% and the crop jitter by a quarter
   compared with axis-aligned ones). Without a track, or when the mesh on the tracked crop fails or jumps
   (`_plausible`), run the full-range face detector on the whole frame, take the face that overlaps the last
   track most (else the largest), crop around its box (`DETECTION_CROP_FACTOR` x, not turned: the detector's
   eye keypoints are too coarse for that) and run the mesh there. The mesh graph's own short-range detector
   misses small faces; on these crops the face fills about half the picture, which it finds reliably.
2. The full-range detector also runs every ``detect_every`` frames to count the faces in view.

Landmarks are [478, 3] float64 in source pixels: x right, y down (corner origin, see
`avatar_data.prepare.alignment`), z MediaPipe's relative depth scaled like x (smaller = nearer). Points
0-467 are the face mesh, 468-477 the irises (refine_landmarks / attention model).

MediaPipe 0.10.14 calls two protobuf methods that protobuf 5 removed (``GetPrototype``); `_protobuf_compat`
adds them back as ``GetMessageClass`` so that it runs with the protobuf this project's other packages need.
The face mesh graph is driven through ``SolutionBase`` without calculator overrides (the ``FaceMesh`` class'
overrides read ``FieldDescriptor.label``, which protobuf 7 removed); its thresholds are the graph's defaults
(0.5 detection score, 0.5 face presence).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
from PIL import Image

NUM_LANDMARKS = 478
TRACK_CROP_FACTOR = 1.7
DETECTION_CROP_FACTOR = 2.2
MESH_INPUT_SIZE = 256
MIN_DETECTION_CONFIDENCE = 0.5
# A tracked face may change its size by at most this factor from one frame to the next.
MAX_SCALE_JUMP = 1.5

_FACE_MESH_GRAPH = "mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb"


def _protobuf_compat() -> None:
    from google.protobuf import message_factory, symbol_database

    def get_prototype(self, descriptor):
        return message_factory.GetMessageClass(descriptor)

    for cls in (message_factory.MessageFactory, symbol_database.SymbolDatabase):
        if not hasattr(cls, "GetPrototype"):
            cls.GetPrototype = get_prototype


def import_mediapipe():
    """``mediapipe`` (0.10.14 with its bundled models), or ImportError with what to install."""
    _protobuf_compat()
    try:
        import mediapipe as mp
        import mediapipe.python.solution_base  # noqa: F401  (the graph runner used below)

        if not hasattr(mp, "solutions"):
            raise ImportError("this mediapipe has no legacy solutions")
    except ImportError as e:
        raise ImportError(
            f"avatar_data.prepare needs mediapipe 0.10.14 with its legacy solutions ({e}); "
            "install it with `pip install --no-deps mediapipe==0.10.14` plus the `prepare` extra") from None
    return mp


@dataclasses.dataclass
class Detection:
    box: np.ndarray        # [4] x0, y0, x1, y1 source pixels
    score: float
    eyes: np.ndarray       # [2, 2] source pixels: the image-left eye (the subject's right), the image-right eye

    @property
    def angle(self) -> float:
        d = self.eyes[1] - self.eyes[0]
        return float(np.arctan2(d[1], d[0]))

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0))


@dataclasses.dataclass
class FrameTrack:
    """One frame's tracking result.

    landmarks: [478, 3] float64 source pixels, or None when no face was found. status: 'tracked' (mesh on
    the crop from the previous landmarks), 'detected' (after a detection), 'no_face' (the detector found
    none), 'mesh_failed' (a face was detected but the mesh found none on its crop). num_faces: faces the
    full-range detector saw in this frame, or None if it did not run.
    """

    landmarks: Optional[np.ndarray]
    status: str
    num_faces: Optional[int]


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks)[:468, :2]
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)])


def square_around(box: np.ndarray, factor: float) -> np.ndarray:
    """Square [4] centred on ``box`` with side ``factor`` x its longer edge."""
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    half = factor * max(box[2] - box[0], box[3] - box[1]) / 2.0
    return np.array([cx - half, cy - half, cx + half, cy + half])


def eye_angle(landmarks: np.ndarray) -> float:
    """Angle (radians) of the line from the image-left eye to the image-right eye, y down (0: upright)."""
    lm = np.asarray(landmarks)
    d = lm[[362, 263], :2].mean(axis=0) - lm[[33, 133], :2].mean(axis=0)
    return float(np.arctan2(d[1], d[0]))


def square_to_source(square: np.ndarray, angle: float, size: int) -> np.ndarray:
    """[2, 3] affine map from the pixels of a ``size`` crop of ``square`` turned by ``angle`` to source pixels.

    Crop point p maps to ``centre + rot(angle) @ (p - size / 2) * side / size``, so a face whose eye line has
    the angle ``angle`` in the source is upright in the crop.
    """
    c = np.array([(square[0] + square[2]) / 2.0, (square[1] + square[3]) / 2.0])
    k = (square[2] - square[0]) / size
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * k
    return np.concatenate([rot, (c - rot @ np.full(2, size / 2.0))[:, None]], axis=1)


def crop_square(image: np.ndarray, square: np.ndarray, size: int, angle: float = 0.0) -> np.ndarray:
    """uint8 [size, size, 3] resampling of the source square turned by ``angle`` (black outside the image).

    A square larger than ``size`` is first shrunk with an antialiasing filter (its bounding box, PIL
    ``reduce``-style box resize), then turned with bilinear interpolation.
    """
    from avatar_data.prepare.alignment import CropTransform, warp_to_crop

    m = square_to_source(square, angle, size)
    k = (square[2] - square[0]) / size
    pil = Image.fromarray(np.ascontiguousarray(image))
    if k > 1.0:
        # Shrink the square's bounding box (side * (|cos| + |sin|)) to the crop's scale first.
        half = (square[2] - square[0]) * (abs(np.cos(angle)) + abs(np.sin(angle))) / 2.0
        centre = ((square[0] + square[2]) / 2.0, (square[1] + square[3]) / 2.0)
        bound = int(np.ceil(2.0 * half / k)) + 2
        pre = CropTransform(centre=centre, scale=1.0 / k, size=bound)
        pil = Image.fromarray(warp_to_crop(image, pre, resample=Image.BOX))
        # Crop pixels -> pre-shrunk pixels: (source - corner) / k.
        m = m / k
        m[:, 2] -= np.array(pre.source_box()[:2]) / k
    # PIL maps output pixel centres (corner coordinates) to input corner coordinates with this matrix.
    return np.asarray(pil.transform((size, size), Image.AFFINE, tuple(m.reshape(-1)), resample=Image.BILINEAR,
                                    fillcolor=(0, 0, 0)))


class FaceTracker:
    """Stateful face tracker over the frames of one video (see the module docstring).

    detect_every: run the full-range detector on every n-th frame as well, to count faces (0: only when
    the track is lost).
    """

    def __init__(self, detect_every: int = 10, min_detection_confidence: float = MIN_DETECTION_CONFIDENCE):
        mp = import_mediapipe()
        from mediapipe.python.solution_base import SolutionBase

        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_detection_confidence)
        self._mesh = SolutionBase(
            binary_graph_path=_FACE_MESH_GRAPH,
            side_inputs={"num_faces": 1, "with_attention": True, "use_prev_landmarks": False},
            outputs=["multi_face_landmarks"])
        self.detect_every = int(detect_every)
        self._previous: Optional[np.ndarray] = None
        self._last_box: Optional[np.ndarray] = None
        self._frame = 0

    def close(self) -> None:
        self._detector.close()
        self._mesh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def reset(self) -> None:
        """Forget the track: the next frame starts with a detection (which prefers the last face's place)."""
        self._previous = None

    def new_shot(self) -> None:
        """Forget the track and the last face's place (at a cut): the next frame's detection takes the
        largest face, and no size jump is measured against the previous shot's face."""
        self._previous = None
        self._last_box = None

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Full-range face detections of an RGB uint8 [H, W, 3] frame, largest first."""
        h, w = image.shape[:2]
        result = self._detector.process(np.ascontiguousarray(image))
        out = []
        for d in result.detections or []:
            b = d.location_data.relative_bounding_box
            box = np.array([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h])
            kp = d.location_data.relative_keypoints
            eyes = np.array([[kp[0].x * w, kp[0].y * h], [kp[1].x * w, kp[1].y * h]])
            out.append(Detection(box=box, score=float(d.score[0]), eyes=eyes))
        return sorted(out, key=lambda d: -d.area)

    def mesh_in_square(self, image: np.ndarray, square: np.ndarray, angle: float = 0.0) -> Optional[np.ndarray]:
        """Face mesh [478, 3] (source pixels) of the face in a source square turned by ``angle``, or None."""
        crop = crop_square(image, square, MESH_INPUT_SIZE, angle)
        result = self._mesh.process({"image": crop})
        faces = result.multi_face_landmarks
        if not faces:
            return None
        lm = np.array([(p.x, p.y, p.z) for p in faces[0].landmark], np.float64) * MESH_INPUT_SIZE
        if lm.shape != (NUM_LANDMARKS, 3):
            return None
        m = square_to_source(square, angle, MESH_INPUT_SIZE)
        lm[:, :2] = lm[:, :2] @ m[:, :2].T + m[:, 2]
        lm[:, 2] *= (square[2] - square[0]) / MESH_INPUT_SIZE
        return lm

    def _plausible(self, landmarks: np.ndarray, square: np.ndarray) -> bool:
        box = landmark_box(landmarks)
        if self._last_box is not None:
            size = max(box[2] - box[0], box[3] - box[1])
            last = max(self._last_box[2] - self._last_box[0], self._last_box[3] - self._last_box[1])
            if not 1.0 / MAX_SCALE_JUMP <= size / last <= MAX_SCALE_JUMP:
                return False
        # The face must lie mostly inside the crop it was found in.
        cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
        return square[0] <= cx <= square[2] and square[1] <= cy <= square[3]

    def track(self, image: np.ndarray) -> FrameTrack:
        """Landmarks of the tracked face in the next frame (RGB uint8 [H, W, 3])."""
        image = np.ascontiguousarray(image)
        index = self._frame
        self._frame += 1
        detections = None
        if self.detect_every > 0 and index % self.detect_every == 0:
            detections = self.detect(image)
        if self._previous is not None:
            square = square_around(landmark_box(self._previous), TRACK_CROP_FACTOR)
            lm = self.mesh_in_square(image, square, eye_angle(self._previous))
            if lm is not None and self._plausible(lm, square):
                return self._keep(lm, "tracked", detections)
        if detections is None:
            detections = self.detect(image)
        if not detections:
            self.reset()
            return FrameTrack(None, "no_face", 0)
        chosen = detections[0]
        if self._last_box is not None:
            overlaps = [box_iou(d.box, self._last_box) for d in detections]
            if max(overlaps) > 0.1:
                chosen = detections[int(np.argmax(overlaps))]
        lm = self.mesh_in_square(image, square_around(chosen.box, DETECTION_CROP_FACTOR))
        if lm is None:
            self.reset()
            return FrameTrack(None, "mesh_failed", len(detections))
        return self._keep(lm, "detected", detections)

    def _keep(self, landmarks: np.ndarray, status: str, detections) -> FrameTrack:
        self._previous = landmarks
        self._last_box = landmark_box(landmarks)
        return FrameTrack(landmarks, status, None if detections is None else len(detections))


class Segmenter:
    """MediaPipe selfie segmentation (general model): person probability [H, W] float32 in [0, 1]."""

    def __init__(self):
        mp = import_mediapipe()
        self._seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return np.asarray(self._seg.process(np.ascontiguousarray(image)).segmentation_mask, np.float32)

    def close(self) -> None:
        self._seg.close()


def mediapipe_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("mediapipe")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
