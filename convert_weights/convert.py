"""EG3D snapshot pickle -> generator directory (orbax variables + generator.json).

The architecture is read from the checkpoint itself (init kwargs of the TriPlaneGenerator and
its `neural_rendering_resolution` attribute); every state_dict entry must map to exactly one
Flax leaf and vice versa, else nothing is written.

Cheap checks (dtype, output directory, reading the pickle) run before JAX and orbax are
imported, so a bad input fails in well under a second.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from convert_weights.snapshot_reader import load_network
from hfagp_common.digest import sha256_file

DTYPES = ("float32", "bfloat16")

# Must equal eg3d_flax.checkpoint.CONFIG_FILE (not imported here: that module imports JAX).
GENERATOR_CONFIG_FILE = "generator.json"


class ConversionError(RuntimeError):
    """The checkpoint was read but cannot be turned into a generator."""


def check_output_dir(output_dir: Path, overwrite: bool) -> None:
    """Raises unless `output_dir` may be written: it must not exist, or with `overwrite` it must be
    an empty directory or an earlier generator directory (so a typo cannot delete other data)."""
    if not output_dir.exists() and not output_dir.is_symlink():
        return
    if not overwrite:
        raise FileExistsError(f"output {output_dir} already exists (use --overwrite to replace it)")
    if output_dir.is_symlink() or not output_dir.is_dir():
        raise ConversionError(f"refusing to replace {output_dir}: it is not a directory")
    if not (output_dir / GENERATOR_CONFIG_FILE).is_file() and any(output_dir.iterdir()):
        raise ConversionError(
            f"refusing to replace {output_dir}: it is not a generator directory (no "
            f"{GENERATOR_CONFIG_FILE}); remove it yourself or choose another output directory")


def convert_snapshot(
    input_path: os.PathLike,
    output_dir: os.PathLike,
    network: str = "G_ema",
    dtype: str = "float32",
    overwrite: bool = False,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> dict:
    """Convert one network of an EG3D snapshot. Returns a summary dict (also stored in generator.json).

    Raises SnapshotError (unreadable/unsafe input), ConversionError (unsupported architecture,
    key mismatch, or an output that --overwrite must not replace) or FileExistsError; in every
    failure case no output directory is created and an existing one is left untouched.
    """
    if dtype not in DTYPES:
        raise ConversionError(f"--dtype must be one of {DTYPES}, got {dtype!r}")
    input_path, output_dir = Path(input_path), Path(output_dir)
    check_output_dir(output_dir, overwrite)
    t0 = time.time()
    log(f"[1/4] reading {input_path} (network {network!r}, no code from the pickle is executed)")
    snap = load_network(input_path, network)
    nrr = snap.root.attributes.get("neural_rendering_resolution")
    if not isinstance(nrr, (int, np.integer)) or isinstance(nrr, bool) or nrr <= 0:
        raise ConversionError(f"{input_path}: {network} has no valid neural_rendering_resolution "
                              f"attribute (got {nrr!r:.40})")

    import jax

    from convert_weights import eg3d_keys
    from eg3d_flax.checkpoint import variables_template, write_generator_dir
    from eg3d_flax.config import GeneratorConfig

    try:
        config = GeneratorConfig.from_eg3d_kwargs(snap.root.init_kwargs, int(nrr))
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise ConversionError(f"{input_path}: unsupported generator configuration: "
                              f"{type(e).__name__}: {e}") from e
    log(f"[2/4] config: {config.img_resolution}px, {config.sr_module}, channel_base={config.channel_base}, "
        f"channel_max={config.channel_max}, neural rendering {config.neural_rendering_resolution}px, "
        f"{config.render.depth_resolution}+{config.render.depth_resolution_importance} samples/ray")
    template = variables_template(config)
    np_dtype = np.float32 if dtype == "float32" else jax.numpy.bfloat16
    try:
        variables, skipped = eg3d_keys.state_dict_to_variables(snap.state_dict, template, dtype=np_dtype)
    except eg3d_keys.KeyMappingError as e:
        raise ConversionError(f"{input_path}: {e}") from e
    from eg3d_flax.checkpoint import non_separable_filters

    bad = non_separable_filters(variables)
    if bad:
        raise ConversionError(f"{input_path}: unsupported resample_filter (not a separable 2-D FIR filter, "
                              f"which this port's up-sampling relies on): {bad[:3]}")
    n_params = int(sum(np.size(x) for x in jax.tree_util.tree_leaves(variables["params"])))
    n_buffers = int(sum(np.size(x) for x in jax.tree_util.tree_leaves(variables["buffers"])))
    log(f"[3/4] mapped {len(snap.state_dict) - len(skipped)} tensors: {n_params:,} parameters, "
        f"{n_buffers:,} buffer elements" + (f"; skipped {skipped}" if skipped else ""))
    summary = {
        "source": str(input_path.resolve()),
        "source_sha256": sha256_file(input_path),
        "network": network,
        "params_dtype": dtype,
        "num_tensors": len(snap.state_dict) - len(skipped),
        "num_parameters": n_params,
        "num_buffer_elements": n_buffers,
        "skipped_keys": skipped,
        "eg3d_init_kwargs": snap.root.init_kwargs,
    }
    check_output_dir(output_dir, overwrite)  # Again: it may have appeared while we were reading.
    out = write_generator_dir(output_dir, config, variables, metadata=summary, overwrite=overwrite)
    log(f"[4/4] wrote {out} in {time.time() - t0:.1f}s")
    summary["output"] = str(out)
    return summary


__all__ = ["ConversionError", "DTYPES", "check_output_dir", "convert_snapshot"]
