"""Architecture checks without weights: the Flax tree covers every state_dict entry of the official configs."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eg3d_flax
from convert_weights import eg3d_keys
from shared_fixtures import EG3D_FIXTURES, require_fixtures
from eg3d_flax.checkpoint import variables_template
from eg3d_flax.config import GeneratorConfig

MANIFESTS = {"ffhq512-128": "manifest_ffhq512-128.json", "tiny128": "manifest_tiny128.json",
             "small512": "manifest_small512.json"}


def _manifest(name):
    require_fixtures()
    return json.loads((EG3D_FIXTURES / MANIFESTS[name]).read_text())


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_one_flax_leaf_per_state_dict_entry(name):
    manifest = _manifest(name)
    config = GeneratorConfig.from_eg3d_kwargs(manifest["init_kwargs"], manifest["neural_rendering_resolution"])
    assert config == eg3d_flax.preset(name)
    ours = eg3d_keys.torch_key_manifest(variables_template(config))
    ref = {e["key"]: e for e in manifest["state_dict"]}
    assert sorted(ours) == sorted(ref)
    for key, (shape, collection) in ours.items():
        assert list(shape) == ref[key]["shape"], key
        assert np.prod(shape) == np.prod(ref[key]["shape"]), key
        assert collection == ("params" if ref[key]["kind"] == "parameter" else "buffers"), key
    n_params, n_buffers = eg3d_flax.count_parameters(variables_template(config))
    assert n_params == manifest["total_parameters"]
    assert n_buffers == manifest["total_buffer_elements"]
    assert config.num_ws == manifest["num_ws"]


def test_the_rebalanced_checkpoint_has_the_released_ffhq_structure():
    """ffhqrebalanced512-128.pkl (the checkpoint HFA-GP fine-tunes) vs ffhq512-128.pkl: EG3D's docs/models.md
    trains both with `train.py --cfg=ffhq --gen_pose_cond=True --neural_rendering_resolution_final=128`; the
    rebalanced one adds `--gpc_reg_prob=0.8` (a training-only rendering option) and other data. With the
    manifest's init kwargs changed accordingly the converter builds the same generator and key manifest."""
    manifest = _manifest("ffhq512-128")
    kwargs = {**manifest["init_kwargs"],
              "rendering_kwargs": {**manifest["init_kwargs"]["rendering_kwargs"], "gpc_reg_prob": 0.8}}
    config = GeneratorConfig.from_eg3d_kwargs(kwargs, manifest["neural_rendering_resolution"])
    assert config == eg3d_flax.preset("ffhq512-128")
    ours = eg3d_keys.torch_key_manifest(variables_template(config))
    assert sorted(ours) == sorted(e["key"] for e in manifest["state_dict"])


def test_released_config_details():
    cfg = eg3d_flax.preset("ffhq512-128")
    assert cfg.sr_conv_clamp == 256.0  # sr_num_fp16_res=4 in the released checkpoint
    assert cfg.neural_rendering_resolution == 128
    assert eg3d_flax.preset("tiny128").sr_conv_clamp is None


def test_unsupported_architecture_is_refused():
    kw = _manifest("tiny128")["init_kwargs"]
    with pytest.raises(ValueError, match="architecture"):
        GeneratorConfig.from_eg3d_kwargs({**kw, "architecture": "resnet"}, 64)
    with pytest.raises(ValueError, match="unsupported TriPlaneGenerator kwargs"):
        GeneratorConfig.from_eg3d_kwargs({**kw, "mystery_option": 1}, 64)


@pytest.mark.slow  # every rendering mode and bf16 compiled
def test_random_tiny_generator_runs_modes_and_bf16():
    cfg = eg3d_flax.preset("tiny128")
    G = eg3d_flax.random_generator(cfg, seed=0)
    z = jax.random.normal(jax.random.PRNGKey(1), (1, 512))
    c = jnp.asarray(np.load(EG3D_FIXTURES / "tiny128_reference.npz")["c"][:1]) if EG3D_FIXTURES.is_dir() else \
        jnp.zeros((1, 25)).at[0, jnp.array([0, 5, 10, 15])].set(1.0)
    ws = G.mapping(z, c)
    a = G.synthesis(ws, c, neural_rendering_resolution=32)
    assert a["image"].shape == (1, 128, 128, 3) and a["image_raw"].shape == (1, 32, 32, 3)
    assert a["image_depth"].shape == (1, 32, 32, 1)
    assert np.isfinite(np.asarray(a["image"])).all()
    key = jax.random.PRNGKey(3)
    b1 = G.synthesis(ws, c, noise_mode="random", deterministic=False, neural_rendering_resolution=32, rng=key)
    b2 = G.synthesis(ws, c, noise_mode="random", deterministic=False, neural_rendering_resolution=32, rng=key)
    b3 = G.synthesis(ws, c, noise_mode="random", deterministic=False, neural_rendering_resolution=32,
                     rng=jax.random.PRNGKey(4))
    np.testing.assert_array_equal(b1["image"], b2["image"])  # same key, same image
    assert np.abs(np.asarray(b1["image_depth"]) - np.asarray(b3["image_depth"])).max() > 0
    with pytest.raises(ValueError, match="rng"):
        G.synthesis(ws, c, deterministic=False)
    G16 = eg3d_flax.Generator(cfg.replace(compute_dtype="bfloat16"), G.variables)
    d = G16.synthesis(ws, c, neural_rendering_resolution=32)
    assert d["image"].dtype == jnp.float32
    err = np.abs(np.asarray(d["image"]) - np.asarray(a["image"])).mean()
    assert 0 < err < 0.1 * np.abs(np.asarray(a["image"])).mean()


@pytest.mark.slow  # five generator compilations
def test_remat_policies_and_kernels_change_nothing_but_speed_and_memory():
    """remat='renderer'/'full' (jax.checkpoint) and every convolution kernel (conv_kernels) give the same image
    and gradients as the reference (remat 'none', XLA's kernels), so the GPU/TPU path runs in the suite too."""
    cfg = eg3d_flax.preset("tiny128", neural_rendering_resolution=16)
    G = eg3d_flax.random_generator(cfg, seed=0)
    c = jnp.zeros((2, 25)).at[:, jnp.array([0, 5, 10, 15])].set(1.0).at[:, 11].set(2.7)
    c = c.at[:, 16:25].set(jnp.asarray([4.26, 0, 0.5, 0, 4.26, 0.5, 0, 0, 1.0]))
    ws = G.mapping(jax.random.normal(jax.random.PRNGKey(1), (2, 512)), c)

    def loss_and_grads(policy, conv_impl="xla", upconv_impl="xla"):
        module = eg3d_flax.TriPlaneGenerator(cfg.replace(remat=policy, conv_impl=conv_impl, upconv_impl=upconv_impl))

        def loss(ws, params):
            out = module.apply({"params": params, "buffers": G.variables["buffers"]}, ws, c, "const", False,
                               method=module.synthesis, rngs={"render": jax.random.PRNGKey(2)})
            return jnp.mean(out["image"] ** 2)

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(ws, G.variables["params"])

    ref_loss, ref_grads = loss_and_grads("none")
    variants = [("renderer", "xla", "xla"), ("full", "xla", "xla"), ("none", "cpu_gemm", "polyphase"),
                ("none", "xla", "polyphase")]
    for variant in variants:
        got_loss, got_grads = loss_and_grads(*variant)
        np.testing.assert_allclose(got_loss, ref_loss, rtol=1e-6)
        # Same math; XLA fuses the recomputed graph differently, so float32 sums are reassociated
        # (observed: ~1e-5 of each gradient's largest entry).
        for a, b in zip(jax.tree_util.tree_leaves(got_grads), jax.tree_util.tree_leaves(ref_grads)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max() + 1e-12))
    with pytest.raises(ValueError, match="remat"):
        cfg.replace(remat="everything")
    with pytest.raises(ValueError, match="conv_impl"):
        cfg.replace(conv_impl="cudnn")
    with pytest.raises(ValueError, match="concrete kernels"):
        eg3d_flax.TriPlaneGenerator(cfg).init(jax.random.PRNGKey(0), jnp.zeros((1, 512)), c[:1])
    assert eg3d_flax.Generator(cfg, G.variables).config.conv_impl == ("cpu_gemm" if jax.default_backend() == "cpu"
                                                                      else "xla")


def test_views_sharing_a_latent_compute_the_planes_once_with_the_same_image_and_gradients():
    """synthesis(views_per_latent=2) on [w0, w0, w1, w1] equals the plain path: images, and the gradients of the
    per-view latents' shared code and of every parameter."""
    cfg = eg3d_flax.preset("tiny128", neural_rendering_resolution=16)
    G = eg3d_flax.random_generator(cfg, seed=0)
    module = G.module
    yaw = jnp.asarray([0.0, 0.5, -0.3, 0.2])
    c = jnp.zeros((4, 25)).at[:, 5].set(1.0).at[:, 15].set(1.0)
    c = c.at[:, 0].set(jnp.cos(yaw)).at[:, 2].set(jnp.sin(yaw)).at[:, 8].set(-jnp.sin(yaw)).at[:, 10].set(jnp.cos(yaw))
    c = c.at[:, 3].set(2.7 * jnp.sin(yaw)).at[:, 11].set(2.7 * jnp.cos(yaw))
    c = c.at[:, 16:25].set(jnp.asarray([4.26, 0, 0.5, 0, 4.26, 0.5, 0, 0, 1.0]))
    codes = G.mapping(jax.random.normal(jax.random.PRNGKey(1), (2, 512)), c[:2])

    def loss(codes, params, k):
        ws = jnp.repeat(codes, 2, axis=0)        # two views of each latent
        out = module.apply({"params": params, "buffers": G.variables["buffers"]}, ws, c, "const", False,
                           method=module.synthesis, rngs={"render": jax.random.PRNGKey(2)}, views_per_latent=k)
        return jnp.mean(out["image"] ** 2) + jnp.mean(out["image_depth"]), out["image"]

    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True), static_argnums=2)
    (ref, ref_image), ref_grads = grad(codes, G.variables["params"], 1)
    (got, got_image), got_grads = grad(codes, G.variables["params"], 2)
    np.testing.assert_allclose(got_image, ref_image, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(got_grads), jax.tree_util.tree_leaves(ref_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max() + 1e-12))
    with pytest.raises(ValueError, match="must divide the batch"):
        loss(codes, G.variables["params"], 3)
