"""Options of the method inside training: the orthogonality modes ('penalty', 'none'), the w_avg prior start,
EG3D's stochastic ray jitter, and a prior shared from another run (frozen)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

PENALTY_WEIGHT = 0.5


def _config(**changes):
    from configs.common import make_config, override

    cfg = make_config("expression", "cpu")
    cfg.model.k = 4
    return override(cfg, changes)


@pytest.fixture(scope="module")
def tiny():
    """A tiny generator, an expression model with the 'penalty' basis started at w_avg, one batch."""
    import eg3d_flax
    from avatar_data.cameras import yaw_sweep
    from hfagp import model as model_lib

    G = eg3d_flax.random_generator(eg3d_flax.preset("tiny128", neural_rendering_resolution=16), seed=0)
    cfg = _config(**{"model.orthogonality": "penalty", "model.prior_init": "w_avg",
                     "model.orthogonality_penalty_weight": PENALTY_WEIGHT})
    spec = model_lib.ModelSpec.from_config(cfg)
    model = model_lib.avatar_model(spec, G.config.num_ws, G.config.w_dim)
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.uniform(-1, 1, (2, 128, 128, 3)), jnp.float32),
             "label": jnp.asarray(yaw_sweep(2, 10.0), jnp.float32),
             "expression": jnp.asarray(rng.standard_normal((2, 76)), jnp.float32)}
    params = model_lib.init_params(model, G, batch["expression"][:1], jax.random.PRNGKey(0))
    return {"G": G, "cfg": cfg, "spec": spec, "model": model, "batch": batch, "params": params,
            "constants": {"generator_buffers": G.variables["buffers"]}}


def test_w_avg_start_puts_the_generators_w_avg_on_every_layer(tiny):
    w_avg = np.asarray(tiny["G"].variables["buffers"]["backbone"]["mapping"]["w_avg"])
    offset = np.asarray(tiny["params"]["model"]["prior"]["offset"]).reshape(tiny["G"].num_ws, -1)
    np.testing.assert_array_equal(offset, np.broadcast_to(w_avg, offset.shape))


@pytest.mark.slow  # two compilations of the tiny generator's forward (~1 min on 2 busy cores)
def test_the_penalty_is_in_the_training_loss_and_the_renders_are_jittered(tiny):
    from hfagp.train.step import make_loss_fn

    loss_fn = jax.jit(make_loss_fn(tiny["cfg"], tiny["spec"], tiny["model"], tiny["G"].module))
    args = (tiny["params"], tiny["batch"], tiny["constants"])
    loss_a, m_a = loss_fn(*args, jax.random.PRNGKey(1))
    loss_b, m_b = loss_fn(*args, jax.random.PRNGKey(2))
    # 'penalty': the raw basis is not orthonormal at init, and the loss carries weight * ||B B^T - I||^2.
    assert float(m_a["orthogonality_penalty"]) > 1e-3
    np.testing.assert_allclose(float(loss_a), float(m_a["l2"]) + PENALTY_WEIGHT * float(m_a["orthogonality_penalty"]),
                               rtol=1e-6)
    # render_deterministic=False (the official training): another key jitters the ray samples, so the render
    # (and its L2) differs; with True the key does not matter.
    assert not tiny["cfg"].generator.render_deterministic
    assert float(m_a["l2"]) != float(m_b["l2"])
    cfg = tiny["cfg"].copy_and_resolve_references()
    cfg.generator.render_deterministic = True
    fixed = jax.jit(make_loss_fn(cfg, tiny["spec"], tiny["model"], tiny["G"].module))
    assert float(fixed(*args, jax.random.PRNGKey(1))[1]["l2"]) == float(fixed(*args, jax.random.PRNGKey(2))[1]["l2"])


def test_none_combines_the_raw_basis_without_a_penalty(tiny):
    from hfagp import model as model_lib

    cfg = _config(**{"model.orthogonality": "none"})
    model = model_lib.avatar_model(model_lib.ModelSpec.from_config(cfg), tiny["G"].num_ws, tiny["G"].config.w_dim)
    params = {"params": tiny["params"]["model"]}  # same shapes; 'penalty' and 'none' store the same scaled draw
    x = tiny["batch"]["expression"]
    coeffs = model.apply(params, x, method=model.coefficients)
    prior = params["params"]["prior"]
    want = (jnp.matmul(coeffs, prior["basis"], precision="highest") + prior["offset"]).reshape(x.shape[0], -1,
                                                                                             tiny["G"].config.w_dim)
    np.testing.assert_allclose(model.apply(params, x), want, rtol=1e-6, atol=1e-6)
    assert float(model.apply(params, method=model.penalty)) == 0.0
    qr = model_lib.avatar_model(model_lib.ModelSpec.from_config(_config()), tiny["G"].num_ws, tiny["G"].config.w_dim)
    assert not np.allclose(qr.apply(params, x), want, atol=1e-3)  # 'qr' orthonormalises first


@pytest.mark.slow  # two tiny training runs (~2-4 min on 2 busy cores)
def test_a_prior_shared_from_another_run_stays_frozen_while_the_encoder_trains(tmp_path):
    import eg3d_flax
    from avatar_data.worlds.synthetic import make_synthetic_world
    from hfagp.train.loop import train_and_evaluate
    from hfagp.workdir import restore_params

    world = tmp_path / "world"
    G = eg3d_flax.random_generator(eg3d_flax.preset("tiny128", neural_rendering_resolution=32), seed=0)
    make_synthetic_world(G, world, num_frames=16, num_test_frames=4, subspace_dim=4, seed=0, progress=False)
    common = {"progress_bar": False, "data.synthetic.dir": str(world), "schedule.generator_tuning_start": 100,
              "eval.max_frames": 0, "log_every": 1, "checkpoint.every": 1000}
    train_and_evaluate(_config(**common, **{"schedule.total_steps": 2}), str(tmp_path / "a"))
    _, shared = restore_params(tmp_path / "a")
    cfg = _config(**{**common, "schedule.total_steps": 3, "model.shared_prior_from": str(tmp_path / "a"),
                     "seed": 1, "checkpoint.every": 1})
    train_and_evaluate(cfg, str(tmp_path / "b"))
    _, first = restore_params(tmp_path / "b", 1)
    _, last = restore_params(tmp_path / "b")
    for name in ("basis", "offset"):  # loaded from run a, never updated
        np.testing.assert_array_equal(first["model"]["prior"][name], shared["model"]["prior"][name])
        np.testing.assert_array_equal(last["model"]["prior"][name], shared["model"]["prior"][name])
    moved = [not np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(first["model"]["encoder"]),
                                                     jax.tree_util.tree_leaves(last["model"]["encoder"]))]
    assert any(moved)
