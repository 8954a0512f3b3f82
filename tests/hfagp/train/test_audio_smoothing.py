"""The audio encoder's attention smoothing under the freeze schedule, with the official audio config.

Official (`trainer_audio.py`): before `nosmo_iters` the forward reads the frame's own window and the attention
net (`AudioAttNet`) is neither used nor stepped; from then on the forward is smoothed and its own Adam starts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

SWITCH = 2


def test_the_official_and_paper_configs_switch_at_300k_and_75k_and_cpu_never():
    from configs.common import make_config
    from hfagp import model as model_lib
    from hfagp.train.optim import FreezeSchedule

    spec = model_lib.ModelSpec.from_config
    official, paper, cpu = (make_config("audio", v) for v in ("official", "paper", "cpu"))
    assert FreezeSchedule.from_config(official).starts["attention"] == 300_000 == spec(official).smoothing_start
    assert official.schedule.total_steps == 800_000
    assert spec(paper).smoothing_start == 75_000 and paper.schedule.total_steps == 200_000
    assert spec(cpu).smoothing_start is None and spec(cpu).input_key == "audio"
    assert spec(official).input_key == "audio_window"
    assert not spec(official).smoothing_at(299_999) and spec(official).smoothing_at(300_000)
    # A checkpoint after N updates renders as its last update (step N - 1) trained.
    assert not spec(official).smoothing_after(300_000) and spec(official).smoothing_after(300_001)
    assert spec(make_config("rgb", "official")).smoothing_start is None
    cpu.schedule.audio_smoothing_start = 50  # "never in :cpu unless set"
    assert spec(cpu).smoothing_start == 50


@pytest.fixture(scope="module")
def run():
    """Four steps of the official audio config (tiny generator, schedule scaled: the switch at step 2)."""
    import eg3d_flax
    from avatar_data.cameras import yaw_sweep
    from configs.common import make_config
    from hfagp import model as model_lib
    from hfagp.train.optim import FreezeSchedule
    from hfagp.runtime.step import create_train_state
    from hfagp.train.step import make_loss_fn, make_stage_step

    cfg = make_config("audio", "official")
    cfg.model.k = 4
    cfg.loss.lpips_weight = 0.0
    cfg.loss.resolution = 128
    cfg.schedule.total_steps = 4
    cfg.schedule.audio_smoothing_start = SWITCH
    cfg.schedule.generator_tuning_start = 4
    G = eg3d_flax.random_generator(eg3d_flax.preset("tiny128", neural_rendering_resolution=16), seed=0)
    spec = model_lib.ModelSpec.from_config(cfg)
    model = model_lib.avatar_model(spec, G.config.num_ws, G.config.w_dim)
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.uniform(-1, 1, (1, 128, 128, 3)), jnp.float32),
             "label": jnp.asarray(yaw_sweep(1, 0.0), jnp.float32),
             "audio_window": jnp.asarray(rng.standard_normal((1, 8, 16, 29)), jnp.float32)}
    params = model_lib.init_params(model, G, batch["audio_window"], jax.random.PRNGKey(0))
    schedule = FreezeSchedule.from_config(cfg)
    tx = schedule.optimizer(cfg.optim, params)
    constants = {"generator_buffers": G.variables["buffers"]}
    states, programs = [create_train_state(params, tx, jax.random.PRNGKey(1))], {}
    for step in range(4):
        trained = schedule.trainable_at(step)
        if trained not in programs:
            programs[trained] = jax.jit(make_stage_step(cfg, spec, model, G.module, tx, trained))
        new, metrics = programs[trained](states[-1], batch, constants)
        assert bool(metrics["finite"])
        states.append(new)
    smooth_loss = jax.jit(make_loss_fn(cfg, spec, model.clone(audio_smoothing=True), G.module))
    return {"cfg": cfg, "states": states, "programs": programs, "schedule": schedule, "batch": batch,
            "constants": constants, "smooth_loss": smooth_loss, "lr": cfg.optim}


def _attention(state):
    return state.params["model"]["encoder"]["attention"]


def _equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def _adam_counts(opt_state) -> list[int]:
    """The step counts of the attention group's Adam (its moments' age)."""
    group = opt_state.inner_states["attention"]
    found = [s for s in jax.tree_util.tree_leaves(group, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
             if isinstance(s, optax.ScaleByAdamState)]
    return [int(s.count) for s in found]


@pytest.mark.slow  # two step programs of a tiny EG3D (~1-2 min on 2 busy cores)
def test_attention_is_bitwise_unchanged_before_the_switch_and_trained_after_it_with_fresh_moments(run):
    states = run["states"]
    a0 = _attention(states[0])
    assert run["schedule"].starts["attention"] == SWITCH
    for step in range(SWITCH):  # updates 0 .. SWITCH-1
        assert _equal(_attention(states[step + 1]), a0)
        assert _adam_counts(states[step + 1].opt_state) == [0]
    audio_net = lambda state: state.params["model"]["encoder"]["audio_net"]
    assert not _equal(audio_net(states[1]), audio_net(states[0]))
    assert not _equal(_attention(states[SWITCH + 1]), a0)
    assert _adam_counts(states[SWITCH + 1].opt_state) == [1]
    # The first attention update is a fresh Adam's first step on that step's gradient.
    before = states[SWITCH]
    rng = jax.random.fold_in(before.rng, before.step)
    grads = jax.grad(lambda p: run["smooth_loss"](p, run["batch"], run["constants"], rng)[0])(before.params)
    g = grads["model"]["encoder"]["attention"]
    optim = run["lr"]
    fresh = optax.adam(optim.learning_rate, b1=optim.b1, b2=optim.b2, eps=optim.eps)
    update, _ = fresh.update(g, fresh.init(g))
    expected = optax.apply_updates(_attention(before), update)
    for a, b in zip(jax.tree_util.tree_leaves(_attention(states[SWITCH + 1])), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_the_forward_uses_the_attention_net_from_the_switch_on(run):
    states, programs, schedule = run["states"], run["programs"], run["schedule"]
    assert len(programs) == 2  # before and after the switch
    state = states[1]
    moved = state.replace(params=jax.tree_util.tree_map(lambda x: x, state.params))
    moved.params["model"]["encoder"]["attention"] = jax.tree_util.tree_map(lambda x: x + 0.5, _attention(state))
    for step, uses_attention in ((0, False), (SWITCH, True)):
        program = programs[schedule.trainable_at(step)]
        _, plain = program(state, run["batch"], run["constants"])
        _, other = program(moved, run["batch"], run["constants"])
        assert (float(plain["loss"]) != float(other["loss"])) == uses_attention


def test_config_checks_and_workdirs_from_before_the_schedule_field():
    import ml_collections

    from configs.common import make_config
    from hfagp import model as model_lib
    from hfagp.train.validate import check_config
    from hfagp_common.cli import ConfigError

    cfg = make_config("rgb", "cpu")
    check_config(cfg)
    cfg.schedule.audio_smoothing_start = 10
    with pytest.raises(ConfigError, match="audio_smoothing_start=10 applies to model.encoder='audio' only"):
        check_config(cfg)
    cfg = make_config("audio", "cpu")
    cfg.schedule.audio_smoothing_start = -2
    with pytest.raises(ConfigError, match=r"schedule.audio_smoothing_start must be an integer in \[-1, "):
        check_config(cfg)
    # A config.json written before schedule.audio_smoothing_start: encoder_kwargs.temporal_smoothing said it.
    old = ml_collections.ConfigDict({"model": {"encoder": "audio", "encoder_kwargs": {"temporal_smoothing": True},
                                               "k": 4, "orthogonality": "qr", "prior_init": "official"},
                                     "schedule": {"total_steps": 10}})
    spec = model_lib.ModelSpec.from_config(old)
    assert spec.smoothing_start == 0 and spec.input_key == "audio_window"
    old.model.encoder_kwargs.temporal_smoothing = False
    spec = model_lib.ModelSpec.from_config(old)
    assert spec.smoothing_start is None
    model = model_lib.avatar_model(spec, 14, 512)
    assert dict(model.encoder_kwargs)["temporal_smoothing"] is False
