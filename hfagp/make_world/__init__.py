"""Making the world with ground truth a training config names, the one explicit step before training on it.

    python -m hfagp.make_world --config=configs/rgb.py:demo --workdir=runs/demo [--config.x=y ...]

takes the same --config, overrides and --workdir as train.py and writes the world there: `data.source='heads'`
renders a head-world video (`data.heads.*`, `data.resolution`; `avatar_data.worlds.heads`), `'synthetic'` a
synthetic world rendered by the run's generator (`data.synthetic.*`, `generator.*`;
`avatar_data.worlds.synthetic`), into `data.heads.dir` / `data.synthetic.dir` or, when those are empty,
WORKDIR/head_world / WORKDIR/synthetic_world. An existing world is kept. Loading data never makes a world
(`hfagp.datasets.require_world`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from configs import common as configs_common
from hfagp import datasets as datasets_lib
from hfagp import workdir as workdir_lib
from hfagp_common import config_schema
from hfagp_common.cli import ConfigError


def make_world(config, workdir) -> Path:
    """Makes the world `config` names unless it exists; returns its directory."""
    from avatar_data.worlds.layout import is_world

    config_schema.check(config, configs_common.SCHEMA, configs_common.RELATIONS)
    world_dir = datasets_lib.world_dir_of(config, workdir)
    if world_dir is not None and Path(workdir).absolute() in Path(world_dir).absolute().parents:
        workdir_lib.check_output_dir(workdir, "train", workdir_lib.TRAINING_LAYOUT)
    if world_dir is None:
        raise ConfigError(f"data.source is {config.data.source!r}: the run reads a user's data, there is no world "
                          "to make (data.source 'synthetic' or 'heads' names one)")
    if is_world(world_dir):
        print(f"{world_dir} already holds a world; kept", file=sys.stderr)
        return world_dir
    if config.data.source == "heads":
        from avatar_data.worlds.heads.world import make_head_world

        heads = config.data.heads
        print(f"making a head world in {world_dir} (identity {heads.seed}, {heads.frames} frames)", file=sys.stderr)
        make_head_world(str(world_dir), seed=int(heads.seed), num_frames=int(heads.frames),
                        num_test_frames=int(heads.test_frames), resolution=int(config.data.resolution),
                        progress=bool(config.progress_bar))
        return world_dir
    from avatar_data.worlds.synthetic import make_synthetic_world
    from hfagp.model import build_generator

    syn_cfg = config.data.synthetic
    print(f"making a synthetic avatar world in {world_dir} ({syn_cfg.frames} frames)", file=sys.stderr)
    make_synthetic_world(
        build_generator(config.generator), world_dir, num_frames=syn_cfg.frames, num_test_frames=syn_cfg.test_frames,
        subspace_dim=syn_cfg.subspace_dim, seed=syn_cfg.seed, perturb_generator_amount=syn_cfg.perturb_generator,
        extra_formats=(), progress=bool(config.progress_bar))
    return world_dir


__all__ = ["make_world"]
