"""EG3D's `TriPlaneGenerator` as a flax.linen module, plus the `Generator` convenience wrapper.

Output layout (everything channels-last):
  image        [B, img_resolution, img_resolution, 3]   super-resolved image, about [-1, 1]
  image_raw    [B, h, h, 3]                             raw neural rendering (h = neural rendering res.)
  image_depth  [B, h, h, 1]                             expected ray depth (world units)
  image_mask   [B, h, h, 1]                             accumulated ray opacity in [0, 1] (1: the ray hit density)

`image_raw` is the clean rendering. The reference 2X/4X super-resolution modules add block0's
ToRGB output into it in place (an aliasing side effect, see the fixture README); we do not.
"""

from __future__ import annotations

import functools
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from eg3d_flax import rendering
from eg3d_flax.config import GeneratorConfig
from eg3d_flax.layers import MappingNetwork, SynthesisNetwork
from eg3d_flax.superresolution import SuperResolution
from eg3d_flax.triplane import OSGDecoder, sample_mean_from_planes


class StyleGAN2Backbone(nn.Module):
    """Container named like the reference's `backbone` (a StyleGAN2 `Generator`)."""

    config: GeneratorConfig

    def setup(self):
        cfg = self.config
        self.synthesis = SynthesisNetwork(
            w_dim=cfg.w_dim, img_resolution=cfg.plane_resolution, img_channels=3 * cfg.plane_channels,
            channel_base=cfg.channel_base, channel_max=cfg.channel_max, conv_clamp=cfg.backbone_conv_clamp,
            compute_dtype=jnp.dtype(cfg.compute_dtype), remat=cfg.remat == "full", conv_impl=cfg.conv_impl,
            upconv_impl=cfg.upconv_impl)
        self.mapping = MappingNetwork(
            z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, num_ws=cfg.num_ws,
            num_layers=cfg.mapping_layers, lr_multiplier=cfg.mapping_lr_multiplier)

    def __call__(self, z, c):
        return self.synthesis(self.mapping(z, c))


class TriPlaneGenerator(nn.Module):
    """z [B,z_dim], c [B,25] -> images. Randomness: rng streams 'noise' (noise_mode='random')
    and 'render' (deterministic=False).

    The config's kernels must be concrete (`GeneratorConfig.resolve_kernels`); `Generator` and
    `init_variables` resolve 'auto' for the current backend before building the module."""

    config: GeneratorConfig

    def setup(self):
        cfg = self.config
        if not cfg.kernels_resolved:
            raise ValueError(f"TriPlaneGenerator needs concrete kernels (conv_impl={cfg.conv_impl!r}, "
                             f"upconv_impl={cfg.upconv_impl!r}); build it from config.resolve_kernels()")
        self.backbone = StyleGAN2Backbone(cfg)
        self.superresolution = SuperResolution(
            kind=cfg.sr_module, channels=cfg.plane_channels, img_resolution=cfg.img_resolution,
            sr_antialias=cfg.sr_antialias, conv_clamp=cfg.sr_conv_clamp,
            compute_dtype=jnp.dtype(cfg.compute_dtype), remat=cfg.remat == "full", conv_impl=cfg.conv_impl,
            upconv_impl=cfg.upconv_impl)
        self.decoder = OSGDecoder(n_features=cfg.plane_channels, output_dim=cfg.plane_channels,
                                  lr_multiplier=cfg.decoder_lr_mul)

    def mapping(self, z, c, truncation_psi: float = 1.0, truncation_cutoff: Optional[int] = None):
        """-> ws [B, num_ws, w_dim]."""
        cfg = self.config
        if cfg.c_gen_conditioning_zero:
            c = jnp.zeros_like(c)
        return self.backbone.mapping(z, c * cfg.c_scale, truncation_psi, truncation_cutoff)

    def planes(self, ws, noise_mode: str = "const"):
        """ws -> tri-planes [B, 3, 256, 256, 32] (plane, row, column, feature)."""
        x = self.backbone.synthesis(ws, noise_mode)
        b, h, w, _ = x.shape
        x = x.reshape(b, h, w, 3, self.config.plane_channels)
        return jnp.transpose(x, (0, 3, 1, 2, 4))

    def sample_mixed(self, coordinates, ws, noise_mode: str = "const"):
        """Density and colour features at world points. coordinates [B,M,3] ->
        {'rgb': [B,M,32], 'sigma': [B,M,1]} (raw density, before the softplus(x-1) activation)."""
        planes = self.planes(ws, noise_mode)
        return self.decode_points(planes, coordinates)

    def decode_points(self, planes, coordinates):
        feats = sample_mean_from_planes(planes, coordinates, self.config.render.box_warp)
        return self.decoder(feats)

    def synthesis(
        self,
        ws,
        c,
        noise_mode: str = "const",
        deterministic: bool = True,
        neural_rendering_resolution: Optional[int] = None,
        return_intermediates: bool = False,
        views_per_latent: int = 1,
    ):
        """ws [B,num_ws,w_dim], c [B,25] -> {'image', 'image_raw', 'image_depth', 'image_mask'} (module doc).

        With return_intermediates, also 'planes' [B,3,256,256,32], 'feature_image' [B,h,h,32],
        'ray_origins'/'ray_directions' [B,h*h,3]. views_per_latent = k > 1: the batch is B / k latents, each
        seen from k consecutive cameras (ws equal within each group of k); the tri-planes are computed once per
        group (from its first ws) instead of once per view. The images and the gradients are those of k = 1.
        """
        cfg = self.config
        res = neural_rendering_resolution or cfg.neural_rendering_resolution
        origins, directions = rendering.rays_from_cameras(c, res)
        k = int(views_per_latent)
        if k < 1 or ws.shape[0] % k:
            raise ValueError(f"views_per_latent={views_per_latent} must divide the batch ({ws.shape[0]})")
        planes = self.planes(ws[::k] if k > 1 else ws, noise_mode)
        key = None if deterministic else self.make_rng("render")
        if cfg.remat == "none":
            decode = functools.partial(self.decode_points, planes)
        else:  # recompute sampling + decoder in the backward pass instead of storing per-sample activations
            decode = functools.partial(nn.remat(TriPlaneGenerator.decode_points), self, planes)
        if k > 1:  # the points of a group's k views are sampled from its planes as one point set
            decode = _grouped_views(decode, k)
        feats, depth, opacity = rendering.render_rays(decode, origins, directions, cfg.render, key)
        b = ws.shape[0]
        feature_image = feats.reshape(b, res, res, feats.shape[-1])
        depth_image = depth.reshape(b, res, res, 1)
        rgb = feature_image[..., :3]
        image = self.superresolution(rgb, feature_image, ws, cfg.superresolution_noise_mode)
        out = {"image": image, "image_raw": rgb, "image_depth": depth_image,
               "image_mask": opacity.reshape(b, res, res, 1)}
        if return_intermediates:
            out.update(planes=jnp.repeat(planes, k, axis=0) if k > 1 else planes, feature_image=feature_image,
                       ray_origins=origins, ray_directions=directions)
        return out

    def __call__(self, z, c, truncation_psi: float = 1.0, truncation_cutoff: Optional[int] = None,
                 noise_mode: str = "const", deterministic: bool = True,
                 neural_rendering_resolution: Optional[int] = None):
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, c, noise_mode, deterministic, neural_rendering_resolution)


def _grouped_views(decode_groups, k: int):
    """decode(coordinates [B,M,3]) for a batch of B / k groups of k views, from decode_groups, which samples the
    groups' planes at coordinates [B/k, k*M, 3] (a reshape: no copy of the planes, no sum of their gradients)."""
    def decode(coordinates):
        b, m, _ = coordinates.shape
        out = decode_groups(coordinates.reshape(b // k, k * m, 3))
        return jax.tree_util.tree_map(lambda x: x.reshape((b, m) + x.shape[2:]), out)

    return decode


def init_variables(config: GeneratorConfig, key: jax.Array) -> dict:
    """Random weights with the reference initialisation: {'params': ..., 'buffers': ...} (float32).

    Initialises through a cheap 4x4 neural rendering (the SR still runs at full size)."""
    module = TriPlaneGenerator(config.resolve_kernels())
    z = jnp.zeros((1, config.z_dim), jnp.float32)
    c = jnp.zeros((1, config.c_dim), jnp.float32).at[0, 0].set(1.0)

    @jax.jit
    def init(key):
        return module.init({"params": key}, z, c, neural_rendering_resolution=4)

    return init(key)


class Generator:
    """A ready-to-call generator: config + variables + jitted entry points.

    G.mapping(z, c, truncation_psi=1.0, truncation_cutoff=None) -> ws [B, num_ws, w_dim]
    G.synthesis(ws, c, noise_mode='const', deterministic=True, neural_rendering_resolution=None,
                rng=None) -> {'image' [B,R,R,3], 'image_raw' [B,h,h,3], 'image_depth' [B,h,h,1]}
    G.sample(coordinates, ws) -> {'rgb' [B,M,32], 'sigma' [B,M,1]}
    G.variables -> {'params': trainable tree, 'buffers': w_avg, noise_const, filters}

    Variables are passed to the jitted functions as arguments (never closed over), and the jitted
    functions are shared by all generators of one config, so swapping in fine-tuned weights
    (`G.replace_variables`) does not recompile. 'auto' kernels in `config` are resolved here, once,
    for the current backend (`G.config` shows the choice).
    """

    def __init__(self, config: GeneratorConfig, variables: dict):
        self.config = config.resolve_kernels()
        self.module = TriPlaneGenerator(self.config)
        self.variables = variables

    @property
    def num_ws(self) -> int:
        return self.config.num_ws

    def replace_variables(self, variables: dict) -> "Generator":
        return Generator(self.config, variables)

    @property
    def _jitted(self):
        return _jitted_entry_points(self.config)

    def mapping(self, z, c, truncation_psi: float = 1.0, truncation_cutoff: Optional[int] = None):
        return self._jitted[0](self.variables, jnp.asarray(z), jnp.asarray(c),
                               float(truncation_psi), truncation_cutoff)

    def synthesis(self, ws, c, noise_mode: str = "const", deterministic: bool = True,
                  neural_rendering_resolution: Optional[int] = None, rng: Optional[jax.Array] = None,
                  return_intermediates: bool = False):
        needs_rng = noise_mode == "random" or not deterministic
        if needs_rng and rng is None:
            raise ValueError("noise_mode='random' or deterministic=False needs an explicit rng key")
        return self._jitted[1](self.variables, jnp.asarray(ws), jnp.asarray(c), rng, noise_mode,
                               bool(deterministic), neural_rendering_resolution, bool(return_intermediates))

    def sample(self, coordinates, ws):
        return self._jitted[2](self.variables, jnp.asarray(coordinates), jnp.asarray(ws))

    def __call__(self, z, c, truncation_psi: float = 1.0, truncation_cutoff: Optional[int] = None, **kwargs):
        return self.synthesis(self.mapping(z, c, truncation_psi, truncation_cutoff), c, **kwargs)


@functools.lru_cache(maxsize=16)
def _jitted_entry_points(config: GeneratorConfig):
    """Jitted mapping/synthesis/sample for one config, shared by every Generator with that config."""
    m = TriPlaneGenerator(config)

    @functools.partial(jax.jit, static_argnames=("truncation_psi", "truncation_cutoff"))
    def mapping(variables, z, c, truncation_psi, truncation_cutoff):
        return m.apply(variables, z, c, truncation_psi, truncation_cutoff, method=m.mapping)

    @functools.partial(jax.jit, static_argnames=("noise_mode", "deterministic", "res", "extra"))
    def synthesis(variables, ws, c, rng, noise_mode, deterministic, res, extra):
        rngs = {}
        if rng is not None:
            k1, k2 = jax.random.split(rng)
            rngs = {"noise": k1, "render": k2}
        return m.apply(variables, ws, c, noise_mode, deterministic, res, extra, method=m.synthesis, rngs=rngs)

    @jax.jit
    def sample(variables, coordinates, ws):
        return m.apply(variables, coordinates, ws, method=m.sample_mixed)

    return mapping, synthesis, sample


def random_generator(config: GeneratorConfig, seed: int = 0) -> Generator:
    """A generator with freshly initialised (untrained) weights."""
    return Generator(config, init_variables(config, jax.random.PRNGKey(seed)))


def count_parameters(variables: dict) -> tuple[int, int]:
    """(parameter elements, buffer elements)."""
    n = lambda tree: int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(tree)))
    return n(variables.get("params", {})), n(variables.get("buffers", {}))
