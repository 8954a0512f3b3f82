"""EG3D snapshot pickle -> generator directory (orbax variables + generator.json).

The architecture is read from the checkpoint itself (init kwargs of the TriPlaneGenerator and
its `neural_rendering_resolution` attribute); every state_dict entry must map to exactly one
Flax leaf and vice versa, else nothing is written.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from convert_weights.snapshot_reader import SnapshotError, load_network

DTYPES = ("float32", "bfloat16")


class ConversionError(RuntimeError):
    """The checkpoint was read but cannot be turned into a generator."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_snapshot(
    input_path: os.PathLike,
    output_dir: os.PathLike,
    network: str = "G_ema",
    dtype: str = "float32",
    overwrite: bool = False,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> dict:
    """Convert one network of an EG3D snapshot. Returns a summary dict (also stored in generator.json).

    Raises SnapshotError (unreadable/unsafe input), ConversionError (unsupported architecture or
    key mismatch) or FileExistsError; in every failure case no output directory is created.
    """
    import jax

    from eg3d_flax import torch_keys
    from eg3d_flax.checkpoint import variables_template, write_generator_dir
    from eg3d_flax.config import GeneratorConfig

    if dtype not in DTYPES:
        raise ConversionError(f"--dtype must be one of {DTYPES}, got {dtype!r}")
    input_path, output_dir = Path(input_path), Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f"output directory {output_dir} already exists (use --overwrite to replace it)")
    t0 = time.time()
    log(f"[1/4] reading {input_path} (network {network!r}, no code from the pickle is executed)")
    snap = load_network(input_path, network)
    attrs = snap.root.attributes
    if "neural_rendering_resolution" not in attrs:
        raise ConversionError(f"{input_path}: {network} has no neural_rendering_resolution attribute")
    try:
        config = GeneratorConfig.from_eg3d_kwargs(snap.root.init_kwargs, attrs["neural_rendering_resolution"])
    except (KeyError, ValueError) as e:
        raise ConversionError(f"{input_path}: unsupported generator configuration: {e}") from e
    log(f"[2/4] config: {config.img_resolution}px, {config.sr_module}, channel_base={config.channel_base}, "
        f"channel_max={config.channel_max}, neural rendering {config.neural_rendering_resolution}px, "
        f"{config.render.depth_resolution}+{config.render.depth_resolution_importance} samples/ray")
    template = variables_template(config)
    np_dtype = np.float32 if dtype == "float32" else jax.numpy.bfloat16
    try:
        variables, skipped = torch_keys.state_dict_to_variables(snap.state_dict, template, dtype=np_dtype)
    except torch_keys.KeyMappingError as e:
        raise ConversionError(f"{input_path}: {e}") from e
    n_params = int(sum(np.size(x) for x in jax.tree_util.tree_leaves(variables["params"])))
    n_buffers = int(sum(np.size(x) for x in jax.tree_util.tree_leaves(variables["buffers"])))
    log(f"[3/4] mapped {len(snap.state_dict) - len(skipped)} tensors: {n_params:,} parameters, "
        f"{n_buffers:,} buffer elements" + (f"; skipped {skipped}" if skipped else ""))
    summary = {
        "source": str(input_path.resolve()),
        "source_sha256": _sha256(input_path),
        "network": network,
        "params_dtype": dtype,
        "num_tensors": len(snap.state_dict) - len(skipped),
        "num_parameters": n_params,
        "num_buffer_elements": n_buffers,
        "skipped_keys": skipped,
        "eg3d_init_kwargs": snap.root.init_kwargs,
    }
    out = write_generator_dir(output_dir, config, variables, metadata=summary, overwrite=overwrite)
    log(f"[4/4] wrote {out} in {time.time() - t0:.1f}s")
    summary["output"] = str(out)
    return summary


__all__ = ["ConversionError", "SnapshotError", "convert_snapshot"]
