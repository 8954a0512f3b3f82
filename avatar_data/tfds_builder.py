"""A tensorflow-datasets builder (no TensorFlow needed) that prepares a video folder as array_record files.

    config = AvatarVideoConfig(name="person3_512", source_dir=".../person_3", source_format="nerface",
                               resolution=512, test_fraction=0.1)
    builder = prepare_dataset(config, data_dir="/data/tfds")   # reads, validates, writes once
    train = open_split(builder.data_dir, "train")              # random-access source for grain

Examples (features are ``tfds.features.Tensor``, so building and reading need no TensorFlow):

* ``image``: uint8 [R, R, 3] (resized with PIL LANCZOS when the source size differs from ``resolution``)
* ``label``: float32 [25], EG3D convention (`avatar_data.cameras`)
* ``frame_index``: int32, position of the frame in the whole video (train frames come first)
* ``expression``: float32 [E] (NeRFACE only), ``audio``: float32 [16, 29] (AD-NeRF only) and
  ``audio_window``: float32 [W, 16, 29] (AD-NeRF, W = ``audio_window`` > 0), as the official audio trainer
  windows: a training frame's window stays within the training split (zeros past its end, as the official
  training sampler pads at ``len(train)``), a test frame's reads the preceding frames of the whole video
  (zeros only before the video's start or after its end)

Split by time: the last ``num_test_frames`` (or ``round(T * test_fraction)``) frames form ``test``, the rest
``train``; or ``test_source_split="test"`` uses a trailing source split file as the test set. Examples are
written in time order (``disable_shuffling``), and ``frame_index`` still identifies each frame. The
frame names and the reader's provenance are in ``builder.info.metadata``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from avatar_data import cameras, formats
from avatar_data.formats.common import EXPRESSION_DIM, DatasetError, Format, VideoClip, clip_frame


@dataclasses.dataclass(eq=False, kw_only=True)
class AvatarVideoConfig(tfds.core.BuilderConfig):
    """Where the video comes from and how to prepare it. ``name`` names the prepared dataset variant.

    source_dir / source_format: the folder and its layout ('eg3d', 'nerface', 'adnerf').
    reader_kwargs: extra keyword arguments of the reader (e.g. splits, labels_file, eg3d_labels, image_dir,
      clamp_audio_index); ``normalization`` is given separately.
    resolution: output frame size R (frames are square).
    test_fraction / num_test_frames / test_source_split: the time split (see module docstring).
    audio_window: AD-NeRF smoothing window size (0: no ``audio_window`` feature).
    normalization: optional `cameras.CameraNormalization` for transform_matrix cameras (off by default).
    """

    source_dir: str = ""
    source_format: str = "eg3d"
    reader_kwargs: dict = dataclasses.field(default_factory=dict)
    resolution: int = 512
    test_fraction: float = 0.1
    num_test_frames: Optional[int] = None
    test_source_split: Optional[str] = None
    audio_window: int = 8
    normalization: Optional[cameras.CameraNormalization] = None
    expression_dim: int = EXPRESSION_DIM


def time_split(num_frames: int, test_fraction: float = 0.1, num_test_frames: Optional[int] = None) -> int:
    """Number of training frames: the first ones in time; the remaining ones are the test split."""
    n_test = int(round(num_frames * test_fraction)) if num_test_frames is None else int(num_test_frames)
    if not 0 < n_test < num_frames:
        raise DatasetError(f"time split leaves {num_frames - n_test} train and {n_test} test frames out of "
                           f"{num_frames}; both must be >= 1 (test_fraction={test_fraction}, "
                           f"num_test_frames={num_test_frames})")
    return num_frames - n_test


class AvatarVideo(tfds.core.GeneratorBasedBuilder):
    """One talking-head video -> ``train`` / ``test`` splits of frames, EG3D cameras and driving signals."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "Frames, EG3D labels, frame_index; NeRFACE expressions; AD-NeRF audio windows.",
                     "1.1.0": "Test-split audio windows read the preceding frames of the whole video."}
    BUILDER_CONFIGS = [AvatarVideoConfig(name="default")]

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        # tfds's default looks the package up with the `importlib_resources` backport, which is not
        # installed (nor needed) on Python >= 3.9; the answer is simply this file.
        return epath.Path(__file__)

    def __init__(self, *args, **kwargs):
        self._clip: Optional[VideoClip] = None  # set before super().__init__, which reads self.info
        kwargs.setdefault("file_format", "array_record")
        super().__init__(*args, **kwargs)

    @property
    def _cfg(self) -> AvatarVideoConfig:
        return self.builder_config

    @property
    def _format(self) -> Format:
        return formats.format_of(self._cfg.source_format)

    def _read_clip(self) -> VideoClip:
        if self._clip is None:
            cfg = self._cfg
            if not cfg.source_dir:
                raise DatasetError(f"builder config '{cfg.name}' has no source_dir")
            kwargs = {**self._format.reader_defaults(cfg.expression_dim), **cfg.reader_kwargs}
            if cfg.normalization is not None:
                kwargs["normalization"] = cfg.normalization
            self._clip = self._format.read(cfg.source_dir, **kwargs)
        return self._clip

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self._cfg
        r = cfg.resolution
        features = {
            # Raw bytes: the default encoding widens every uint8 to an int64 protobuf entry (~15x slower).
            "image": tfds.features.Tensor(shape=(r, r, 3), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES),
            "label": tfds.features.Tensor(shape=(cameras.LABEL_DIM,), dtype=np.float32),
            "frame_index": tfds.features.Tensor(shape=(), dtype=np.int32),
        }
        for name, spec in self._format.features(cfg.expression_dim, cfg.audio_window).items():
            encoding = tfds.features.Encoding.BYTES if spec.raw_bytes else tfds.features.Encoding.NONE
            features[name] = tfds.features.Tensor(shape=spec.shape, dtype=spec.dtype, encoding=encoding)
        metadata = tfds.core.MetadataDict()
        if self._clip is not None:
            metadata.update(self._metadata(self._clip))
        return tfds.core.DatasetInfo(
            builder=self,
            description="Frames of one monocular talking-head video with EG3D camera labels.",
            features=tfds.features.FeaturesDict(features),
            disable_shuffling=True,
            metadata=metadata,
        )

    def _metadata(self, clip: VideoClip) -> dict[str, Any]:
        return {
            "source_dir": clip.root,
            "source_format": clip.source_format,
            "names": list(clip.names),
            "num_train_frames": self._num_train(clip),
            "reader": _jsonable(dict(clip.metadata)),
            "label_convention": "EG3D: OpenCV cam2world (right, down, forward), world y-up, normalised intrinsics",
            "resize_filter": "PIL LANCZOS",
        }

    def _num_train(self, clip: VideoClip) -> int:
        cfg = self._cfg
        if cfg.test_source_split is None:
            return time_split(clip.num_frames, cfg.test_fraction, cfg.num_test_frames)
        sizes = dict(clip.metadata.get("source_splits", {}))
        names = list(sizes)
        if cfg.test_source_split not in sizes:
            raise DatasetError(f"test_source_split '{cfg.test_source_split}' is not among the source splits {names}")
        tail = names[names.index(cfg.test_source_split):]
        if tail != [cfg.test_source_split]:
            raise DatasetError(f"test_source_split '{cfg.test_source_split}' must be the last source split read "
                               f"(got order {names}) so that the test frames are the end of the video")
        return time_split(clip.num_frames, num_test_frames=sizes[cfg.test_source_split])

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        clip = self._read_clip()
        self.info.metadata.update(self._metadata(clip))
        n_train = self._num_train(clip)
        return {
            "train": self._generate_examples(clip, 0, n_train),
            "test": self._generate_examples(clip, n_train, clip.num_frames),
        }

    def _generate_examples(self, clip: VideoClip, start: int, stop: int):
        cfg = self._cfg
        signals = self._format.split_features(clip, start, stop, cfg.audio_window)
        for t in range(start, stop):
            example = {
                "image": clip_frame(clip, t, cfg.resolution),
                "label": clip.labels[t],
                "frame_index": np.int32(t),
            }
            example.update({name: values[t - start] for name, values in signals.items()})
            yield t, example


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def prepare_dataset(config: AvatarVideoConfig, data_dir: str) -> AvatarVideo:
    """Build (once) the prepared dataset for ``config`` under ``data_dir``; returns the builder.

    The files land in ``<data_dir>/avatar_video/<config.name>/<version>/``. If they already exist they are
    reused as is, so change ``config.name`` (or delete the folder) when the source or options change.
    """
    builder = AvatarVideo(config=config, data_dir=data_dir)
    builder.download_and_prepare()
    return builder


def open_split(prepared_dir: str, split: str):
    """Random-access source (``len``, ``[i]`` -> dict of numpy arrays) of one split of a prepared dataset.

    prepared_dir: the version folder (``builder.data_dir``); no builder config or source folder is needed.
    """
    return tfds.builder_from_directory(prepared_dir).as_data_source(split=split)


def prepared_metadata(prepared_dir: str) -> dict:
    """The metadata (frame names, provenance, num_train_frames) stored with a prepared dataset."""
    return dict(tfds.builder_from_directory(prepared_dir).info.metadata)
