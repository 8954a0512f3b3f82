"""hfagp.datasets loads and never makes: a missing world is an error naming the `python -m hfagp.make_world` command
that makes it (and nothing is written); that command makes it, and the datasets and split cameras read it."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _overrides(command: str) -> dict:
    """{dotted key: value} of the --config.* flags of a command line (values as strings)."""
    out = {}
    for arg in shlex.split(command):
        if arg.startswith("--config."):
            key, value = arg[len("--config."):].split("=", 1)
            out[key] = value
    return out


@pytest.mark.parametrize("variant, kind", [("demo", "head"), ("cpu", "synthetic")])
def test_missing_world_is_an_error_naming_the_command(tmp_path, variant, kind):
    from configs.common import make_config
    from hfagp import datasets

    cfg = make_config("rgb", variant)
    workdir = tmp_path / "run"
    with pytest.raises(datasets.WorldNotFoundError) as info:
        datasets.build_datasets(cfg, workdir)
    message = str(info.value)
    assert f"no {kind} world there" in message
    command = message.split("make it first with: ", 1)[1]
    assert command.startswith(f"python -m hfagp.make_world --workdir={workdir}")
    assert tree(tmp_path) == []  # nothing written, not even the workdir
    # The command's overrides on its default config give the same world fields.
    source = cfg.data.source
    made = make_config("rgb", "cpu")
    overrides = _overrides(command)
    assert overrides.get("data.source", made.data.source) == source
    for key in datasets.WORLD_FIELDS[source]:
        value = datasets._field(made, key)
        assert overrides.get(key, str(value)) == str(datasets._field(cfg, key)), key


def test_missing_world_dir_names_it(tmp_path):
    from configs.common import make_config, override
    from hfagp import datasets

    world = tmp_path / "elsewhere" / "world"
    cfg = override(make_config("rgb", "cpu"), {"data.synthetic.dir": str(world), "data.synthetic.frames": 30})
    with pytest.raises(datasets.WorldNotFoundError, match="no synthetic world") as info:
        datasets.split_cameras(cfg, tmp_path / "run", "test")
    assert _overrides(str(info.value)) == {"data.synthetic.dir": str(world), "data.synthetic.frames": "30"}
    assert tree(tmp_path) == []


def test_make_world_then_load(tmp_path):
    """The explicit step makes the world (the tiny128 generator of tests/conftest.py's runs, 6 frames); loading
    reads it, and a split's cameras read alone equal the loaded split's."""
    from avatar_data.pipeline import load_eval_frames
    from avatar_data.worlds.layout import is_world
    from configs.common import make_config, override
    from hfagp import datasets
    from hfagp.make_world import make_world

    cfg = override(make_config("rgb", "cpu"), {"progress_bar": False, "data.synthetic.frames": 6,
                                               "data.synthetic.test_frames": 2, "data.synthetic.subspace_dim": 4})
    world = make_world(cfg, tmp_path)
    assert world == tmp_path / "synthetic_world" and is_world(world)
    assert make_world(cfg, tmp_path) == world  # kept
    data = datasets.build_datasets(cfg, tmp_path)
    assert (len(data.train), len(data.test)) == (4, 2)
    for split in ("train", "test"):
        np.testing.assert_array_equal(datasets.split_cameras(cfg, tmp_path, split),
                                      load_eval_frames(getattr(data, split))["label"])
