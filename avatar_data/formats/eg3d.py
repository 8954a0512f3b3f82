"""The EG3D layout: a folder of images plus a labels file ``{"labels": [[filename, [25 floats]], ...]}``.

EG3D's ``dataset.json``; HFA-GP's preprocessing writes the same as ``cropped_images/test.json``, keyed by the
``.png`` name even when the frame is a ``.jpg``, so a missing exact name falls back to the same stem. Time order
is the natural sort order of the file names (``2.png`` before ``10.png``). The NeRFACE and AD-NeRF readers take
their cameras from such a labels file when given one (`labels_by_stem`). The layout carries no driving signal.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from avatar_data import cameras
from avatar_data.formats.common import (
    IMAGE_EXTENSIONS,
    DatasetError,
    Format,
    VideoClip,
    check_camera,
    check_frames_labels,
    first_duplicate,
    float_vector,
    load_json,
    natural_sort_key,
    no_reader_defaults,
    resolve_image,
    save_image,
    write_json,
)

LabelsArg = Union[None, str, Mapping[str, str]]


def read_eg3d_labels_file(path: str) -> list[tuple[str, np.ndarray]]:
    """Parse ``{"labels": [[filename, [25 floats]], ...]}`` -> [(filename, float64 [25])], file order.

    Checks: structure, 25 finite numbers, a rigid cam2world and sane intrinsics, no duplicate names.
    """
    data = load_json(path)
    entries = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: expected an object with a 'labels' list, got {type(data).__name__}"
                           + (" with labels=null" if isinstance(data, dict) and "labels" in data else ""))
    out, seen = [], {}
    for i, entry in enumerate(entries):
        where = f"{path}: labels[{i}]"
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)):
            raise DatasetError(f"{where}: expected [filename, [25 floats]], got {str(entry)[:80]}")
        name = entry[0]
        where = f"{where} ('{name}')"
        label = float_vector(entry[1], cameras.LABEL_DIM, "label", where)
        check_camera(label[:16].reshape(4, 4), label[16:].reshape(3, 3), where)
        if name in seen:
            raise DatasetError(f"{where}: duplicate name, also labels[{seen[name]}]")
        seen[name] = i
        out.append((name, label))
    if not out:
        raise DatasetError(f"{path}: no labels")
    return out


def time_ordered_labels(path: str) -> np.ndarray:
    """float32 [T, 25]: a labels file's cameras in the time order `read_eg3d_folder` gives its frames when the
    names are the image files' names (natural sort order), without looking at the images."""
    entries = read_eg3d_labels_file(path)
    order = sorted(range(len(entries)), key=lambda i: natural_sort_key(entries[i][0]))
    return np.stack([entries[i][1] for i in order]).astype(np.float32)


def labels_by_stem(path: str) -> dict[str, tuple[str, np.ndarray]]:
    """Labels file -> {basename stem: (name, label)}; stems must be unique."""
    out = {}
    for name, label in read_eg3d_labels_file(path):
        stem = os.path.splitext(os.path.basename(name))[0]
        if stem in out:
            raise DatasetError(f"{path}: names '{out[stem][0]}' and '{name}' share the stem '{stem}'")
        out[stem] = (name, label)
    return out


def labels_file_for(eg3d_labels: LabelsArg, split: str) -> Optional[str]:
    if eg3d_labels is None or isinstance(eg3d_labels, str):
        return eg3d_labels
    if split not in eg3d_labels:
        raise DatasetError(f"eg3d_labels has no entry for split '{split}' (has {sorted(eg3d_labels)})")
    return eg3d_labels[split]


def read_eg3d_folder(
    folder: str,
    *,
    labels_file: Optional[str] = None,
    ignore_unlabeled_images: bool = False,
) -> VideoClip:
    """EG3D / HFA-GP layout: images in ``folder`` (subfolders allowed) + a labels file.

    labels_file: path; None looks for ``dataset.json`` or ``test.json`` in ``folder`` (exactly one must
    exist). Every label must resolve to one image; every image in the folder must have a label unless
    ``ignore_unlabeled_images`` (then their number is logged). Frames are in natural sort order of the names.
    """
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise DatasetError(f"{folder}: not a directory")
    if labels_file is None:
        found = [os.path.join(folder, n) for n in ("dataset.json", "test.json")
                 if os.path.isfile(os.path.join(folder, n))]
        if len(found) != 1:
            raise DatasetError(f"{folder}: expected one labels file (dataset.json or test.json), found "
                               f"{[os.path.basename(p) for p in found] or 'none'}; pass labels_file")
        labels_file = found[0]
    entries = read_eg3d_labels_file(labels_file)
    paths = [resolve_image(folder, name, f"{labels_file}: labels[{i}] ('{name}')")
             for i, (name, _) in enumerate(entries)]
    dup = first_duplicate(paths)
    if dup is not None:
        raise DatasetError(f"{labels_file}: labels[{dup[0]}] and labels[{dup[1]}] both resolve to {paths[dup[0]]}")

    labelled = set(paths)
    unlabeled = []
    for dirpath, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(dirpath, f)
            if f.lower().endswith(IMAGE_EXTENSIONS) and p not in labelled:
                unlabeled.append(os.path.relpath(p, folder))
    if unlabeled:
        msg = f"{folder}: {len(unlabeled)} image(s) have no label in {labels_file}, e.g. {sorted(unlabeled)[:5]}"
        if not ignore_unlabeled_images:
            raise DatasetError(msg + "; pass ignore_unlabeled_images=True to leave them out")
        logging.warning("%s; left out (ignore_unlabeled_images=True)", msg)

    order = sorted(range(len(entries)), key=lambda i: natural_sort_key(os.path.relpath(paths[i], folder)))
    labels = np.stack([entries[i][1] for i in order]).astype(np.float32)
    return VideoClip(
        source_format="eg3d",
        root=folder,
        labels=labels,
        names=tuple(entries[i][0] for i in order),
        frame_paths=tuple(paths[i] for i in order),
        metadata={"labels_file": labels_file, "camera_source": "eg3d_labels"},
    )


def write_eg3d_folder(
    out_dir: str,
    frames_uint8: np.ndarray,
    labels: np.ndarray,
    names: Optional[Sequence[str]] = None,
    *,
    labels_filename: str = "dataset.json",
    image_ext: Optional[str] = None,
) -> str:
    """Write images + ``{"labels": [[name, [25 floats]], ...]}``; returns the labels file path.

    names: label keys (relative paths, default ``img{t:08d}.png``). image_ext: if set, each image is saved as
    the name's stem + image_ext while the label keeps its name (HFA-GP's ``.jpg`` frames keyed by ``.png``).
    """
    t_len, _, _ = check_frames_labels(frames_uint8, labels)
    names = list(names) if names is not None else [f"img{t:08d}.png" for t in range(t_len)]
    if len(names) != t_len:
        raise ValueError(f"{len(names)} names for {t_len} frames")
    for name, frame in zip(names, frames_uint8):
        file_name = name if image_ext is None else os.path.splitext(name)[0] + image_ext
        save_image(os.path.join(out_dir, file_name), frame)
    path = os.path.join(out_dir, labels_filename)
    write_json(path, {"labels": [[n, [float(v) for v in lab]] for n, lab in zip(names, np.asarray(labels))]})
    return path


def _no_features(expression_dim: int, audio_window: int) -> dict:
    del expression_dim, audio_window
    return {}


def _no_split_features(clip: VideoClip, start: int, stop: int, audio_window: int) -> dict:
    del clip, start, stop, audio_window
    return {}


FORMAT = Format(name="eg3d", read=read_eg3d_folder, write=write_eg3d_folder, reader_defaults=no_reader_defaults,
                features=_no_features, split_features=_no_split_features)
