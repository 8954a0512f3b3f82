"""Video datasets for HFA-GP: readers and writers of EG3D / NeRFACE / AD-NeRF folders (`formats`), camera
conventions, a tfds builder (array_record, no TensorFlow) and grain pipelines, and the worlds with ground truth
(`worlds`).

Importing the package loads only numpy/PIL code; `avatar_data.tfds_builder` needs tensorflow-datasets,
`avatar_data.pipeline` needs grain, and the worlds' renderers need JAX.
"""

from avatar_data import cameras
from avatar_data.array_source import ArraySource
from avatar_data.formats import read_clip
from avatar_data.formats.adnerf import read_adnerf_folder, write_adnerf_folder
from avatar_data.formats.common import DatasetError, VideoClip, audio_windows, clip_arrays
from avatar_data.formats.eg3d import read_eg3d_folder, write_eg3d_folder
from avatar_data.formats.nerface import read_nerface_folder, write_nerface_folder

__all__ = ["ArraySource", "DatasetError", "VideoClip", "audio_windows", "cameras", "clip_arrays", "read_adnerf_folder",
           "read_clip", "read_eg3d_folder", "read_nerface_folder", "write_adnerf_folder", "write_eg3d_folder",
           "write_nerface_folder"]
