"""Shared test set-up: fixture locations and converted fixture generators (converted once per session)."""

from __future__ import annotations

import os
import tempfile

# Persistent XLA compilation cache shared by the tests and the training subprocesses they start
# (set before jax is imported): repeated compiles of the same programs become disk loads.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "hfagp-jax-test-xla-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "2")
# XLA:CPU without LLVM optimisation (JAX's flag for smoke tests; the training subprocesses inherit it, so they
# share the cache): most of the suite is compilation of programs that then run a few steps. Measured with a cold
# cache on 2 busy cores, CPU seconds: tests/hfagp/train/test_step.py (two step compilations) 126 -> 75; the fault
# suite's 12-step train.py run 131 -> 95 (from a warm cache, where only the slower code counts: 38 -> 54). Results
# differ in the last bits (that run's step-12 loss by 1e-6 relative).
# HFAGP_TEST_OPTIMIZED=1 keeps XLA's default (production) optimisation. Modules marked `optimized` spend their time
# running compiled steps instead, and compile with the optimisations (`_xla_optimisations_for_marked_modules`):
# tests/pretrained/test_heads128.py (an inversion of 150 steps) took 113 s without them and 79 s with them, the tiny
# experiment (tests/hfagp/experiments/) about 520 s and 342 s; tests/hfagp/eval/test_pti.py (few steps, large
# programs) 125 s and 160 s, so it stays unmarked.
OPTIMISATIONS_DISABLED = os.environ.get("HFAGP_TEST_OPTIMIZED", "") in ("", "0")
if OPTIMISATIONS_DISABLED:
    os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

# Parity tests need true float32 matmuls/convs (GPUs/TPUs would otherwise use TF32/bf16 passes).
jax.config.update("jax_default_matmul_precision", "highest")

from shared_fixtures import require_fixtures  # noqa: E402

# The fault suite's closing summary: a plugin here, at the top, so that pytest-xdist's controller (which loads only
# this conftest) adds up and prints the workers' counts.
pytest_plugins = ("faults.summary",)


@pytest.fixture(autouse=True, scope="module")
def _xla_optimisations_for_marked_modules(request):
    """A module marked `optimized` (`pytestmark`) compiles with XLA's optimisations, in this process and in the
    processes its tests start; the rest of the suite without them (above)."""
    if not OPTIMISATIONS_DISABLED or request.node.get_closest_marker("optimized") is None:
        yield
        return
    jax.config.update("jax_disable_most_optimizations", False)
    saved = os.environ.pop("JAX_DISABLE_MOST_OPTIMIZATIONS", None)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", True)
        if saved is not None:
            os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = saved


@pytest.fixture(scope="session")
def converted_dirs(tmp_path_factory):
    """{'tiny128': dir, 'small512': dir}: the fixture pickles converted through the CLI entry point."""
    from convert_weights.__main__ import main

    fixtures = require_fixtures()
    out = {}
    root = tmp_path_factory.mktemp("converted")
    for name in ("tiny128", "small512"):
        rc = main([str(fixtures / f"{name}.pkl"), str(root / name), "--quiet"])
        assert rc == 0, f"conversion of {name}.pkl failed"
        out[name] = root / name
    return out


@pytest.fixture(scope="session")
def fixture_generators(converted_dirs):
    import eg3d_flax

    return {name: eg3d_flax.load_generator(path) for name, path in converted_dirs.items()}


def train_tiny_run(root, encoder: str = "rgb", steps: int = 12, tuning_start=None, world=None):
    """Train a tiny run (random tiny128 generator, 32x32 neural rendering, k=8;
    the same step programs as tests/hfagp/train/test_loop.py, so the persistent XLA cache serves both) into `root`/<encoder>.

    `world`: an existing synthetic world dir; if None one with 16 frames (4 test) is made in `root`.
    tuning_start: first generator-tuning step (default: 8 for RGB; expression/audio runs stay in stage 1,
    as in test_train.py, which saves a compilation).
    Returns the workdir. Used by the inference, evaluation and rendering tests.
    """
    from pathlib import Path

    import eg3d_flax
    from avatar_data.worlds.synthetic import make_synthetic_world
    from configs.common import make_config
    from hfagp.train.loop import train_and_evaluate

    root = Path(root)
    if world is None:
        world = root / "world"
        if not (world / "world.json").is_file():
            G = eg3d_flax.random_generator(eg3d_flax.preset("tiny128", neural_rendering_resolution=32), seed=0)
            make_synthetic_world(G, world, num_frames=16, num_test_frames=4, subspace_dim=4, seed=0, progress=False)
    cfg = make_config(encoder, "cpu")
    cfg.progress_bar = False
    cfg.data.synthetic.dir = str(world)
    cfg.schedule.total_steps = steps
    if tuning_start is None:
        tuning_start = 8 if encoder == "rgb" else steps
    cfg.schedule.generator_tuning_start = tuning_start
    cfg.log_every = steps
    cfg.eval_every = 10 ** 6
    cfg.eval.max_frames = 0
    cfg.checkpoint.every = 10 ** 6
    workdir = root / encoder
    train_and_evaluate(cfg, str(workdir))
    return workdir


@pytest.fixture(scope="session")
def tiny_head_world(tmp_path_factory):
    """A 6-frame, 48 px head world (shared_fixtures.TINY_HEAD_WORLD) with its part labels and face points."""
    from avatar_data.worlds.heads import world as heads_world
    from shared_fixtures import TINY_HEAD_WORLD

    out = tmp_path_factory.mktemp("head_world") / "w"
    heads_world.make_head_world(str(out), progress=False, **TINY_HEAD_WORLD)
    return out


@pytest.fixture(scope="session")
def tiny_run_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_runs")


@pytest.fixture(scope="session")
def tiny_rgb_run(tiny_run_root):
    """Workdir of a 12-step RGB run on a 16-frame synthetic world (stage 2 from step 8). The expression and
    audio runs below share its world and train stage 1 only."""
    return train_tiny_run(tiny_run_root, "rgb")


@pytest.fixture(scope="session")
def tiny_expression_run(tiny_run_root):
    return train_tiny_run(tiny_run_root, "expression")


@pytest.fixture(scope="session")
def tiny_audio_run(tiny_run_root):
    return train_tiny_run(tiny_run_root, "audio")


HEAVY_VARIABLE = "HFAGP_HEAVY_TESTS"


# The longest test files, in seconds of one CI run (cold XLA cache, two workers on the 2 cores). scripts/test.sh
# hands whole files to the pytest-xdist workers in collection order (--dist loadfile --no-loadscope-reorder), and
# `pytest_collection_modifyitems` puts these first, longest first, so that the long files start at once and the
# short ones fill the gaps at the end (longest-processing-time-first scheduling: the two workers finish within
# about one short file of each other instead of one waiting for the other's last long file). A file not listed
# runs after them; the numbers only need to keep their order roughly right.
LONG_FILES = {
    "tests/hfagp/train/test_loop.py": 800,
    "tests/faults/test_training_faults.py": 500,
    "tests/faults/test_bad_inputs.py": 260,
    "tests/hfagp/experiments/test_tiny_experiment.py": 250,
    "tests/hfagp/eval/test_pti.py": 240,
    "tests/hfagp/render/test_render_cli.py": 220,
    "tests/hfagp/pretrain/test_pretrain.py": 190,
    "tests/eg3d_flax/test_generator_parity.py": 180,
    "tests/benchmarks/test_device_check.py": 160,
    "tests/eg3d_flax/test_structure.py": 150,
    "tests/hfagp/train/test_training_options.py": 100,
    "tests/pretrained/test_heads128.py": 90,
    "tests/hfagp/train/test_audio_smoothing.py": 80,
    "tests/hfagp/train/test_step.py": 70,
    "tests/hfagp/eval/test_evaluate.py": 60,
}


def pytest_collection_modifyitems(config, items):
    """The long files first (`LONG_FILES`; the sort is stable, so tests keep their order within a file); tests
    marked `heavy` run only with HFAGP_HEAVY_TESTS=1 (they would take CI past its budget)."""
    items.sort(key=lambda item: -LONG_FILES.get(item.nodeid.split("::")[0], 0))
    if os.environ.get(HEAVY_VARIABLE) == "1":
        return
    skip = pytest.mark.skip(reason=f"heavy: set {HEAVY_VARIABLE}=1 to run it (minutes of CPU)")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)
