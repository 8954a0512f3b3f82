"""Shared test set-up: fixture locations and converted fixture generators (converted once per session)."""

from __future__ import annotations

import os
import tempfile

# Persistent XLA compilation cache shared by the tests and the training subprocesses they start
# (set before jax is imported): repeated compiles of the same programs become disk loads.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "hfagp-jax-test-xla-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "2")

import jax  # noqa: E402
import pytest  # noqa: E402

# Parity tests need true float32 matmuls/convs (GPUs/TPUs would otherwise use TF32/bf16 passes).
jax.config.update("jax_default_matmul_precision", "highest")

from shared_fixtures import require_fixtures  # noqa: E402


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
