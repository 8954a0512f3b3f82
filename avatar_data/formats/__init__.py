"""The three video dataset layouts, one module each with its reader, writer and tfds hooks (see
`avatar_data/README.md` for examples): `eg3d` (images + a labels file), `nerface` (transforms files with
expressions), `adnerf` (transforms files with audio features). Every reader returns a
`common.VideoClip` with EG3D-convention labels (`avatar_data.cameras`); `common` holds what the layouts share.
"""

from avatar_data.formats import adnerf, eg3d, nerface
from avatar_data.formats.common import DatasetError, Format, VideoClip

FORMATS = {f.name: f for f in (eg3d.FORMAT, nerface.FORMAT, adnerf.FORMAT)}


def format_of(source_format: str) -> Format:
    """The hooks of the layout named `source_format` ('eg3d', 'nerface' or 'adnerf')."""
    if source_format not in FORMATS:
        raise DatasetError(f"unknown source format '{source_format}', expected one of {tuple(FORMATS)}")
    return FORMATS[source_format]


def read_clip(source_format: str, folder: str, **kwargs) -> VideoClip:
    """The reader of the layout named `source_format` on `folder` (keyword arguments: that reader's)."""
    return format_of(source_format).read(folder, **kwargs)


__all__ = ["FORMATS", "format_of", "read_clip"]
