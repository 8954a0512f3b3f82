"""The float32 precision policy: names, the context it applies, and every entry point applying it."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hfagp import precision


def _dot_and_conv(x, w, k):
    y = jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y.reshape(-1, y.shape[-1]) @ w


def _lowered_text(name):
    x, w, k = jnp.ones((1, 4, 4, 3)), jnp.ones((5, 2)), jnp.ones((3, 3, 3, 5))
    with precision.matmul_precision(name):
        return jax.jit(_dot_and_conv).lower(x, w, k).as_text()


def test_names_map_to_xla_precisions_on_matmuls_and_convolutions():
    assert _lowered_text("highest").count("HIGHEST") >= 2
    high = _lowered_text("tf32")
    assert "HIGH" in high and "HIGHEST" not in high
    assert "HIGH" not in _lowered_text("default")


def test_unknown_names_and_configs():
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.check("fp32")
    with pytest.raises(ValueError):
        with precision.matmul_precision("tensorfloat32"):  # JAX's spelling is not one of the names
            pass
    assert precision.of_config({}) == "highest"  # runs trained before the knob existed
    assert precision.of_config({"precision": "tf32"}) == "tf32"


def test_the_context_is_scoped_and_jit_keys_its_cache_on_it():
    before = jax.config.jax_default_matmul_precision
    f = jax.jit(lambda a: a @ a)
    a = jnp.ones((8, 8))
    with precision.matmul_precision("tf32"):
        assert jax.config.jax_default_matmul_precision == "tensorfloat32"
        f(a)
    with precision.matmul_precision("highest"):
        f(a)
    assert jax.config.jax_default_matmul_precision == before
    assert f._cache_size() == 2


def test_cpu_computes_float32_whatever_the_setting():
    """XLA:CPU ignores the precision (documented in README and hfagp/precision.py): the values are equal."""
    if jax.default_backend() != "cpu":
        pytest.skip("a statement about XLA:CPU")
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 16, 16, 8)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 8, 16)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((16, 32)), jnp.float32)
    value_and_grads = jax.jit(jax.value_and_grad(lambda x, w, k: jnp.sum(jnp.sin(_dot_and_conv(x, w, k))),
                                                 argnums=(0, 1, 2)))
    outs = {}
    for name in precision.PRECISIONS:
        with precision.matmul_precision(name):
            outs[name] = [np.asarray(a) for a in jax.tree_util.tree_leaves(value_and_grads(x, w, k))]
    for name in ("tf32", "default"):
        for got, want in zip(outs[name], outs["highest"]):
            np.testing.assert_array_equal(got, want)


def test_describe_names_the_setting_and_the_device():
    line = precision.describe("tf32", "bfloat16")
    assert line.startswith("precision: tf32: ") and "bfloat16" in line and jax.default_backend() in line


def test_the_paper_configs_use_highest_and_validation_rejects_bad_values():
    from configs.common import VARIANTS, make_config
    from hfagp.train import validate
    from hfagp_common.cli import ConfigError

    for encoder in ("rgb", "expression", "audio"):
        for variant in VARIANTS:
            assert make_config(encoder, variant).precision == "highest"
    cfg = make_config("rgb", "cpu")
    validate.check_config(cfg)
    cfg.precision = "fast"
    with pytest.raises(ConfigError, match="precision must be one of"):
        validate.check_config(cfg)


def test_training_runs_under_the_configs_precision(monkeypatch, tmp_path):
    from configs.common import make_config
    from hfagp.train import loop

    monkeypatch.setattr(loop, "_train_and_evaluate", lambda config, workdir: jax.config.jax_default_matmul_precision)
    cfg = make_config("rgb", "cpu")
    cfg.precision = "tf32"
    assert loop.train_and_evaluate(cfg, str(tmp_path / "run")) == "tensorfloat32"
    cfg.precision = "highest"
    assert loop.train_and_evaluate(cfg, str(tmp_path / "run")) == "highest"


@pytest.fixture
def fake_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"generator": {}, "model": {}, "data": {}, "loss": {},
                                                 "precision": "tf32"}))
    return run


@pytest.mark.parametrize("command", ["eval", "render"])
def test_eval_and_render_use_the_runs_precision_unless_told(command, fake_run, monkeypatch, capsys):
    if command == "eval":
        from hfagp.eval import __main__ as cli_module

        inner, argv = "_evaluate", [str(fake_run)]
    else:
        from hfagp.render import __main__ as cli_module

        inner, argv = "_render", ["orbit", str(fake_run)]
    seen = []
    monkeypatch.setattr(cli_module, inner, lambda args: seen.append(jax.config.jax_default_matmul_precision) or 0)
    assert cli_module.main(argv) == 0
    assert cli_module.main(argv + ["--precision", "highest"]) == 0
    assert seen == ["tensorfloat32", "highest"]
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("precision: tf32: ") and err[1].startswith("precision: highest: ")
