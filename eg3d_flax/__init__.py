"""EG3D (Chan et al., CVPR 2022) tri-plane generator in JAX/Flax, faithful to NVIDIA's PyTorch code.

Public surface:
  load_generator(dir) -> Generator        a converted checkpoint (see `convert_weights`)
  random_generator(config, seed)          untrained weights with the reference initialisation
  preset(name) / GeneratorConfig          'ffhq512-128', 'small512', 'tiny128'
"""

from eg3d_flax.config import PRESETS, GeneratorConfig, preset
from eg3d_flax.generator import (Generator, TriPlaneGenerator, count_parameters, init_variables,
                                 random_generator)
from eg3d_flax.rendering import RenderOptions


def load_generator(path, dtype=None, config_overrides=None) -> Generator:
    """Load a generator written by `python -m convert_weights` (or saved with `save_generator`).

    config_overrides: run-time options of `GeneratorConfig` to change (compute_dtype, remat, kernels, ...)."""
    from eg3d_flax.checkpoint import load_generator as _load
    return _load(path, dtype=dtype, config_overrides=config_overrides)


def save_generator(generator: Generator, path, **kwargs):
    from eg3d_flax.checkpoint import save_generator as _save
    return _save(generator, path, **kwargs)


__all__ = ["Generator", "GeneratorConfig", "PRESETS", "RenderOptions", "TriPlaneGenerator", "count_parameters",
           "init_variables", "load_generator", "preset", "random_generator", "save_generator"]
