"""On-disk generator format: `<dir>/generator.json` (config + provenance) and `<dir>/variables/`
(an orbax checkpoint of {'params', 'buffers'}).

Directories are written atomically (`hfagp_common.atomic`): everything goes to a temporary sibling which
is renamed into place only when complete, so an interrupted write never leaves a directory that looks valid.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from eg3d_flax.config import GeneratorConfig
from hfagp_common import atomic
from hfagp_common.cli import UserError
from eg3d_flax.generator import Generator, init_variables

CONFIG_FILE = "generator.json"
VARIABLES_DIR = "variables"
FORMAT_VERSION = 1


class GeneratorCheckpointError(UserError, RuntimeError):
    """A generator directory is missing, incomplete or inconsistent."""


def variables_template(config: GeneratorConfig) -> Any:
    """Shapes/dtypes of the variables tree for `config`, without computing anything."""
    return jax.eval_shape(lambda k: init_variables(config, k), jax.random.PRNGKey(0))


def non_separable_filters(variables: dict, rtol: float = 1e-5) -> list[str]:
    """Paths of `resample_filter` buffers that are not rank-1 (outer products of 1-D taps).

    The port's FIR up-sampling runs as two 1-D passes (`ops.upfirdn2d_separable`), which is exact
    only for separable filters; every StyleGAN2/EG3D checkpoint uses outer([1,3,3,1])/64.
    """
    bad = []
    flat = jax.tree_util.tree_flatten_with_path(variables.get("buffers", {}))[0]
    for path, leaf in flat:
        keys = [getattr(k, "key", str(k)) for k in path]
        if keys[-1] != "resample_filter":
            continue
        s = np.linalg.svd(np.asarray(leaf, np.float64), compute_uv=False)
        if s.size > 1 and s[1] > rtol * s[0]:
            bad.append("/".join(map(str, keys)))
    return bad


def _json_default(obj):
    """numpy scalars/arrays in metadata (e.g. checkpoint kwargs) -> plain JSON values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def _cast_params(variables: dict, dtype) -> dict:
    out = dict(variables)
    out["params"] = jax.tree_util.tree_map(lambda x: np.asarray(x).astype(dtype), variables["params"])
    return out


def write_generator_dir(path: os.PathLike, config: GeneratorConfig, variables: dict,
                        metadata: Optional[dict] = None, overwrite: bool = False) -> Path:
    """Atomically write a generator directory. `variables` leaves may be numpy or jax arrays.

    Everything is written to a temporary sibling `.<name>.tmp-*` which replaces `path` only when
    complete; on any failure the sibling is removed and an existing `path` is left untouched.
    """
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FileExistsError(f"{path} already exists (pass overwrite=True / --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.make_sibling_dir(path, "tmp")
    try:
        tree = jax.tree_util.tree_map(np.asarray, variables)
        ckptr = ocp.StandardCheckpointer()
        ckptr.save(tmp / VARIABLES_DIR, tree)
        ckptr.wait_until_finished()
        dtypes = sorted({str(np.asarray(x).dtype) for x in jax.tree_util.tree_leaves(tree["params"])})
        # Kernels are a property of the machine that runs the generator, not of the checkpoint.
        stored = config.replace(conv_impl="auto", upconv_impl="auto")
        doc = {"format_version": FORMAT_VERSION, "config": stored.to_dict(), "params_dtype": dtypes,
               "metadata": metadata or {}}
        text = json.dumps(doc, indent=2, sort_keys=True, default=_json_default) + "\n"
        with open(tmp / CONFIG_FILE, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if not overwrite:
            os.rename(tmp, path)  # Fails (ENOTEMPTY/EEXIST) rather than replace a non-empty newcomer.
        else:
            atomic.replace_directory(tmp, path)
    except BaseException:
        atomic.remove(tmp)
        raise
    return path


def read_generator_config(path: os.PathLike) -> tuple[GeneratorConfig, dict]:
    path = Path(path)
    cfg_file = path / CONFIG_FILE
    if not cfg_file.is_file():
        raise GeneratorCheckpointError(
            f"{path} is not a generator directory (no {CONFIG_FILE}); make one with "
            f"`python -m convert_weights CHECKPOINT.pkl {path}`")
    try:
        doc = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GeneratorCheckpointError(f"{cfg_file} is not valid JSON ({e}); the generator directory is damaged: "
                                       f"convert the checkpoint again") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise GeneratorCheckpointError(f"{cfg_file} is not a generator config (a JSON object with 'config')")
    if doc.get("format_version") != FORMAT_VERSION:
        raise GeneratorCheckpointError(f"{cfg_file}: unsupported format_version {doc.get('format_version')!r}")
    return GeneratorConfig.from_dict(doc["config"]), doc


def load_generator(path: os.PathLike, dtype=None, config_overrides: Optional[dict] = None) -> Generator:
    """Load a generator directory. Parameters are cast to `dtype` (default float32)."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    config, doc = read_generator_config(path)
    if config_overrides:
        config = config.replace(**config_overrides)
    if not (path / VARIABLES_DIR).is_dir():
        raise GeneratorCheckpointError(f"{path}: missing {VARIABLES_DIR}/ (incomplete generator directory)")
    stored_dtype = jnp.dtype(doc.get("params_dtype", ["float32"])[0])
    template = variables_template(config)
    target = dict(template)
    target["params"] = jax.tree_util.tree_map(
        lambda s: jax.ShapeDtypeStruct(s.shape, stored_dtype), template["params"])
    try:
        variables = ocp.StandardCheckpointer().restore(path / VARIABLES_DIR, target)
    except Exception as e:  # orbax raises several types for tree/shape mismatches
        raise GeneratorCheckpointError(f"{path}: variables do not match the stored config: {e}") from e
    bad = non_separable_filters(variables)
    if bad:
        raise GeneratorCheckpointError(f"{path}: resample_filter buffers are not separable (rank-1): {bad[:3]}")
    variables = _cast_params(variables, np.dtype(dtype or np.float32))
    variables = jax.tree_util.tree_map(jnp.asarray, variables)
    return Generator(config, variables)


def save_generator(generator: Generator, path: os.PathLike, metadata: Optional[dict] = None,
                   overwrite: bool = False) -> Path:
    return write_generator_dir(path, generator.config, generator.variables, metadata, overwrite)
