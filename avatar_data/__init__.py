"""Video datasets for HFA-GP: readers for EG3D / NeRFACE / AD-NeRF folders, camera conventions, writers,
a tfds builder (array_record, no TensorFlow) and grain pipelines.

Importing the package loads only numpy/PIL code; `avatar_data.tfds_builder` needs tensorflow-datasets and
`avatar_data.pipeline` needs grain.
"""

from avatar_data import cameras
from avatar_data.array_source import ArraySource
from avatar_data.readers import (
    DatasetError,
    VideoClip,
    audio_windows,
    clip_arrays,
    read_adnerf_folder,
    read_clip,
    read_eg3d_folder,
    read_nerface_folder,
)
from avatar_data.writers import write_adnerf_folder, write_eg3d_folder, write_nerface_folder

__all__ = ["ArraySource", "DatasetError", "VideoClip", "audio_windows", "cameras", "clip_arrays", "read_adnerf_folder",
           "read_clip", "read_eg3d_folder", "read_nerface_folder", "write_adnerf_folder", "write_eg3d_folder",
           "write_nerface_folder"]
