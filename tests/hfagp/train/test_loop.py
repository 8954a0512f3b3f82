"""End-to-end training on a tiny synthetic world: learning, stages, resumption, sharding, failure handling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared_fixtures import REPO_ROOT

pytestmark = pytest.mark.slow


def tiny_config(encoder="rgb", **overrides):
    from configs.common import make_config, override

    cfg = make_config(encoder, "cpu")
    cfg.progress_bar = False
    cfg.generator.neural_rendering_resolution = 32
    cfg.schedule.total_steps = 30
    cfg.schedule.generator_tuning_start = 20
    cfg.log_every = 1
    cfg.eval_every = 1000
    cfg.checkpoint.every = 1000
    cfg.eval.novel_views = 0
    cfg.eval.basis_images = False
    cfg.eval.max_frames = 8
    return override(cfg, overrides)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 36-frame world (8 test frames) from a random tiny128 generator, shared by the tests here."""
    import eg3d_flax
    from avatar_data.worlds.synthetic import make_synthetic_world

    out = tmp_path_factory.mktemp("world") / "world"
    G = eg3d_flax.random_generator(eg3d_flax.preset("tiny128", neural_rendering_resolution=32), seed=0)
    make_synthetic_world(G, out, num_frames=36, num_test_frames=8, subspace_dim=4, seed=0, progress=False)
    return out


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def test_rgb_training_improves_psnr_by_5db_and_freezes_generator_in_stage_one(world, tmp_path):
    import jax
    import orbax.checkpoint as ocp

    from hfagp.workdir import restore_params
    from hfagp.model import build_generator
    from hfagp.train.loop import train_and_evaluate

    cfg = tiny_config("rgb", **{"data.synthetic.dir": str(world), "checkpoint.every": 10})
    final = train_and_evaluate(cfg, str(tmp_path))
    initial = json.loads((tmp_path / "initial_metrics.json").read_text())
    gain = final["eval/psnr"] - initial["eval/psnr"]
    print(f"rgb: held-out PSNR {initial['eval/psnr']:.2f} -> {final['eval/psnr']:.2f} dB")
    assert gain >= 5.0
    steps = read_jsonl(tmp_path / "metrics.jsonl")
    assert [m["step"] for m in steps] == list(range(1, 31))
    assert all(np.isfinite(m["loss"]) for m in steps)
    assert (tmp_path / "checkpoints" / "30").is_dir()
    assert list((tmp_path / "tensorboard").iterdir())
    # Stage 1 (steps 1-20) leaves the generator untouched; stage 2 (21-30) tunes it.
    g0 = build_generator(cfg.generator).variables["params"]
    mngr = ocp.CheckpointManager(tmp_path / "checkpoints", item_names=("state", "data"))
    changed = {}
    for step in (20, 30):
        restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
        gen = restored["state"]["params"]["generator"]
        diffs = jax.tree_util.tree_map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), gen, g0)
        changed[step] = max(jax.tree_util.tree_leaves(diffs))
    assert changed[20] == 0.0
    assert changed[30] > 0.0
    prior = restore_params(tmp_path)[1]["model"]["prior"]
    assert prior["basis"].shape == (cfg.model.k, 14 * 512)


@pytest.mark.parametrize("encoder", ["expression", "audio"])
def test_reenactment_encoders_improve_heldout_psnr(world, tmp_path, encoder):
    from hfagp.train.loop import train_and_evaluate

    cfg = tiny_config(encoder, **{"data.synthetic.dir": str(world), "schedule.total_steps": 20,
                                  "schedule.generator_tuning_start": 20})  # stage 1 only, to save compiles
    final = train_and_evaluate(cfg, str(tmp_path))
    initial = json.loads((tmp_path / "initial_metrics.json").read_text())
    print(f"{encoder}: held-out PSNR {initial['eval/psnr']:.2f} -> {final['eval/psnr']:.2f} dB")
    assert final["eval/psnr"] > initial["eval/psnr"] + 1.0


def _train_cmd(workdir, world, extra=()):
    return [sys.executable, "train.py", "--config=configs/rgb.py:cpu", f"--workdir={workdir}",
            f"--config.data.synthetic.dir={world}", "--config.progress_bar=false",
            "--config.schedule.total_steps=12", "--config.schedule.generator_tuning_start=6",
            "--config.log_every=1", "--config.checkpoint.every=4", "--config.eval.max_frames=0",
            "--config.eval_every=1000", *extra]


def test_eight_devices_match_one_device(world, tmp_path):
    script = (
        "import json, sys\n"
        "sys.path[:0] = ['.', 'tests']\n"
        "from tests.hfagp.train.test_loop import tiny_config\n"
        "from hfagp.train.loop import train_and_evaluate\n"
        "cfg = tiny_config('rgb', **{'data.synthetic.dir': sys.argv[1], 'optim.batch_size': 8,\n"
        "    'schedule.total_steps': 3, 'schedule.generator_tuning_start': 3, 'eval.max_frames': 0})\n"
        "train_and_evaluate(cfg, sys.argv[2])\n")
    losses = {}
    for devices in (1, 8):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        out = tmp_path / f"d{devices}"
        subprocess.run([sys.executable, "-c", script, str(world), str(out)], cwd=REPO_ROOT, env=env, check=True,
                       capture_output=True)
        losses[devices] = [m["loss"] for m in read_jsonl(out / "metrics.jsonl")]
    assert len(losses[1]) == 3
    np.testing.assert_allclose(losses[8], losses[1], rtol=1e-4)


def test_nan_loss_stops_with_step_and_keeps_last_checkpoint(world, tmp_path):
    from hfagp.runtime.stopping import TrainingError
    from hfagp.train.loop import train_and_evaluate

    cfg = tiny_config("rgb", **{"data.synthetic.dir": str(world), "schedule.total_steps": 10,
                                "schedule.generator_tuning_start": 10, "checkpoint.every": 2,
                                "debug.nan_at_step": 4, "eval.max_frames": 0})
    with pytest.raises(TrainingError, match=r"non-finite loss or gradient at step 5.*last good checkpoint is step 4"):
        train_and_evaluate(cfg, str(tmp_path))
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [2, 4]


def test_bad_configs_fail_before_compiling(tmp_path):
    from hfagp_common.cli import ConfigError
    from hfagp.train.loop import train_and_evaluate

    with pytest.raises(ConfigError, match="generator.path"):
        train_and_evaluate(tiny_config("rgb", **{"generator.preset": ""}), str(tmp_path / "a"))
    with pytest.raises(ConfigError, match="not a converted generator directory"):
        train_and_evaluate(tiny_config("rgb", **{"generator.path": str(tmp_path)}), str(tmp_path / "b"))
    with pytest.raises(ConfigError, match="convert_weights.lpips"):
        train_and_evaluate(tiny_config("rgb", **{"loss.lpips_weight": 1.0}), str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="data.folder"):
        train_and_evaluate(tiny_config("rgb", **{"data.source": "folder"}), str(tmp_path / "d"))
    result = subprocess.run([sys.executable, "train.py", "--config=configs/rgb.py:cpu", f"--workdir={tmp_path}/e",
                             "--config.model.no_such_knob=1"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and "no_such_knob" in result.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_with_jax_distributed_match_one_process(world, tmp_path):
    """Two train.py processes on localhost (jax.distributed, gloo CPU collectives, one device each) give the
    losses of one process with the same global batch, through both stages and a checkpoint."""
    common = ["--config=configs/rgb.py:cpu", "--config.progress_bar=false", f"--config.data.synthetic.dir={world}",
              "--config.schedule.total_steps=4", "--config.schedule.generator_tuning_start=2",
              "--config.log_every=1", "--config.eval.max_frames=2", "--config.eval.novel_views=0",
              "--config.eval.basis_images=false", "--config.eval_every=4", "--config.checkpoint.every=2"]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    single = tmp_path / "single"
    subprocess.run([sys.executable, "train.py", f"--workdir={single}", *common], cwd=REPO_ROOT, env=env,
                   check=True, capture_output=True, timeout=600)
    multi = tmp_path / "multi"
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, "train.py", f"--workdir={multi}", *common, "--config.distributed.enabled=true",
         f"--config.distributed.coordinator_address=localhost:{port}", "--config.distributed.num_processes=2",
         f"--config.distributed.process_id={i}", "--config.distributed.cpu_collectives=true"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    ref = [m["loss"] for m in read_jsonl(single / "metrics.jsonl")]
    got = [m["loss"] for m in read_jsonl(multi / "metrics.jsonl")]
    assert len(ref) == 4 and len(got) == 4
    np.testing.assert_allclose(got, ref, rtol=1e-4)
    assert sorted(int(p.name) for p in (multi / "checkpoints").iterdir() if p.name.isdigit()) == [2, 4]
    evals = [json.loads((d / "final_metrics.json").read_text())["eval/psnr"] for d in (single, multi)]
    np.testing.assert_allclose(evals[1], evals[0], rtol=1e-4)  # in-training evaluation across processes
