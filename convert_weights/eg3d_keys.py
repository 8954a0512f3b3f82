"""Mapping between PyTorch EG3D `state_dict` entries and the Flax variables of `eg3d_flax`.

The Flax tree mirrors the torch module tree, so a key maps by joining the path with dots
(`net_0` <-> `net.0` for the OSG decoder's `Sequential`). Layouts differ:

  conv weight   torch [O, I, kh, kw]  <->  flax [kh, kw, I, O]   (HWIO)
  dense weight  torch [out, in]       <->  flax [in, out]
  const input   torch [C, H, W]       <->  flax [H, W, C]
  everything else (biases, noise_strength, noise_const [H,W], w_avg, resample_filter [4,4]) as is.

Collections: `buffers` holds w_avg, noise_const and resample_filter (torch buffers); all torch
parameters go to `params`. `dataset_label_std`, a buffer that EG3D's training loop adds to G and
nothing reads, is skipped (reported as such).
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

import jax
import numpy as np

BUFFER_NAMES = frozenset({"w_avg", "noise_const", "resample_filter"})
IGNORED_TORCH_KEYS = frozenset({"dataset_label_std"})


class KeyMappingError(ValueError):
    """The checkpoint and the Flax tree do not correspond one to one."""


def flax_path_to_torch_key(path: Iterable[str]) -> str:
    """('backbone', 'synthesis', 'b4', 'conv1', 'weight') -> 'backbone.synthesis.b4.conv1.weight'."""
    return ".".join(re.sub(r"^net_(\d+)$", r"net.\1", p) for p in path)


# (leaf name, ndim) -> the torch axes in Flax order (the layouts of the module docstring); other leaves as is.
_TORCH_TO_FLAX_AXES = {("weight", 4): (2, 3, 1, 0), ("weight", 2): (1, 0), ("const", 3): (1, 2, 0)}


def torch_to_flax_array(name: str, array: np.ndarray) -> np.ndarray:
    """Layout transform for one leaf (`name` is the leaf's last path component)."""
    axes = _TORCH_TO_FLAX_AXES.get((name, array.ndim))
    return np.array(array, copy=True) if axes is None else np.ascontiguousarray(array.transpose(axes))


def flax_to_torch_array(name: str, array: np.ndarray) -> np.ndarray:
    """Inverse of `torch_to_flax_array`."""
    axes = _TORCH_TO_FLAX_AXES.get((name, array.ndim))
    return np.array(array, copy=True) if axes is None else np.ascontiguousarray(array.transpose(np.argsort(axes)))


def _leaves_with_keys(variables: Mapping) -> list[tuple[str, tuple[str, ...], object]]:
    """[(collection, path, leaf)] for every leaf of {'params': ..., 'buffers': ...}."""
    out = []
    for collection in ("params", "buffers"):
        flat = jax.tree_util.tree_flatten_with_path(variables.get(collection, {}))[0]
        for keypath, leaf in flat:
            out.append((collection, tuple(k.key for k in keypath), leaf))
    return out


def torch_key_manifest(variables: Mapping) -> dict[str, tuple[tuple[int, ...], str]]:
    """torch key -> (torch-layout shape, collection) for every Flax leaf (shapes only, no data)."""
    out = {}
    for collection, path, leaf in _leaves_with_keys(variables):
        shape = tuple(np.shape(leaf))
        torch_shape = flax_to_torch_array(path[-1], np.empty(shape, np.uint8)).shape
        out[flax_path_to_torch_key(path)] = (tuple(torch_shape), collection)
    return out


def state_dict_to_variables(state_dict: Mapping[str, np.ndarray], template: Mapping,
                            dtype=np.float32) -> tuple[dict, list[str]]:
    """Fill a Flax variables tree (shapes from `template`, e.g. `jax.eval_shape` of init) from a
    torch state_dict. Every torch entry must be consumed once and every leaf filled once.

    Returns (variables as nested dicts of numpy arrays, list of skipped torch keys).
    """
    state = dict(state_dict)
    skipped = [k for k in state if k in IGNORED_TORCH_KEYS]
    for k in skipped:
        state.pop(k)
    result: dict = {}
    missing, bad_shape = [], []
    for collection, path, leaf in _leaves_with_keys(template):
        key = flax_path_to_torch_key(path)
        if key not in state:
            missing.append(key)
            continue
        array = torch_to_flax_array(path[-1], np.asarray(state.pop(key)))
        if tuple(array.shape) != tuple(np.shape(leaf)):
            bad_shape.append(f"{key}: checkpoint {array.shape} vs model {tuple(np.shape(leaf))}")
            continue
        node = result.setdefault(collection, {})
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = array.astype(dtype if collection == "params" else np.float32)
    problems = []
    if missing:
        problems.append(f"{len(missing)} model entries missing from the checkpoint: {missing}")
    if state:
        problems.append(f"{len(state)} checkpoint entries not used by the model: {sorted(state)}")
    if bad_shape:
        problems.append(f"{len(bad_shape)} shape mismatches: {bad_shape}")
    if problems:
        raise KeyMappingError("; ".join(problems))
    return result, skipped


def variables_to_state_dict(variables: Mapping) -> dict[str, np.ndarray]:
    """Flax variables -> torch-layout state_dict (float32 numpy), for export back to PyTorch."""
    out = {}
    for _, path, leaf in _leaves_with_keys(variables):
        out[flax_path_to_torch_key(path)] = flax_to_torch_array(path[-1], np.asarray(leaf, np.float32))
    return out
