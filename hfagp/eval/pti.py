"""PTI baseline (Roich et al., "Pivotal Tuning for Latent-based Editing of Real Images", 2021) on EG3D.

The paper's Table 1 compares against PTI run per test frame: "For each testing frame, PTI optimizes
both the latent code and the EG3D generator for a faithful reconstruction." Per frame:

  1. `invert_latent`: the official projector (`training/projectors/w_projector.py`, `first_inv_type='w'`):
     Adam on one W code [w_dim] repeated over the num_ws layers (`latent_space='w'`; 'w+' fits a code
     per layer), started from the mean of the mapped samples (`start='mapped_mean'`; 'w_avg': the
     generator's w_avg buffer), with its schedule (lr cosine ramp-down over the last 25 %, linear ramp-up
     over the first 5 %, Gaussian noise on the code -- one draw shaped like the code -- decaying to zero
     at 75 %, scaled by the spread of the mapped samples) and its noise-buffer optimisation with the
     multi-scale autocorrelation penalty (weight 1e5, buffers renormalised after each step). As in the
     official code the optimised noise buffers only serve the inversion: tuning and rendering use the
     generator's own. The distance (`invert_distance`): officially the squared distance of NVIDIA's VGG16
     LPIPS features (`vgg16.pt`, `return_lpips=True`) of both images area-averaged to 256x256; those
     weights are not available offline, so LPIPS-VGG (`hfagp.lpips`, net 'vgg', the same construction:
     normalised VGG16 features weighted by the learned heads) at 256 stands in ('lpips_vgg', needs
     `vgg_fn`); 'l2_lpips' uses the tuning loss below instead.
  2. `tune_generator`: Adam (lr 3e-4) on all generator parameters with the pivot code fixed,
     stopping early once the LPIPS term is <= 0.06 (the official `LPIPS_value_threshold`).
  3. Render the frame's cameras with the tuned generator (deterministic render).

The generator is reset to its base weights for every frame, and every frame uses the same random
keys (from `config.seed`), so a frame's result does not depend on the other frames. Tuning uses the
loss `l2_weight * mean((x - y)^2) + lpips_weight * mean(LPIPS(x, y))` (the official `pt_l2_lambda`,
`pt_lpips_lambda` with LPIPS-alex; without `lpips_fn`, L2 only).

Each stage is one `jax.jit` step function with every numeric hyperparameter a traced argument, built
once per (generator config, loss structure) and reused across frames, calls and step counts:

    result = run_pti(G, images, cameras, render_cameras, config=PTIConfig())
    result.images          # [N, V, R, R, 3] in about [-1, 1]
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Any, Callable, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

import eg3d_flax
from hfagp.metrics import psnr_from_mse
from hfagp_common.images import area_downsample

# How many times each step function has been traced (= compiled); tests check it stays put.
TRACE_COUNTS: collections.Counter = collections.Counter()
LATENT_SPACES = ("w", "w+")
STARTS = ("mapped_mean", "w_avg")
INVERT_DISTANCES = ("lpips_vgg", "l2_lpips")


@dataclasses.dataclass(frozen=True)
class PTIConfig:
    """PTI hyperparameters. Defaults are the official PTI values (danielroich/PTI, configs/
    hyperparameters.py and training/projectors/w_projector.py); the HFA-GP paper gives none for
    its PTI runs. `PTIConfig.cpu_test()` is a tiny variant for CPU tests."""

    w_steps: int = 450              # first_inv_steps
    g_steps: int = 350              # max_pti_steps
    # The projector's peak learning rate (its `initial_learning_rate`). hyperparameters.first_inv_lr
    # = 5e-3 is only Adam's constructor value, overwritten by the schedule before the first step.
    w_lr: float = 0.01
    g_lr: float = 3e-4              # pti_learning_rate
    lpips_weight: float = 1.0       # pt_lpips_lambda
    l2_weight: float = 1.0          # pt_l2_lambda
    # first_inv_type: 'w' (one code repeated over the num_ws layers) or 'w+' (a code per layer).
    latent_space: str = "w"
    # Start code: 'mapped_mean' (the projector's w_avg: mean of the w_std_samples mapped samples) or 'w_avg'
    # (the generator's w_avg buffer).
    start: str = "mapped_mean"
    # Inversion distance: 'lpips_vgg' (LPIPS-VGG at invert_resolution, standing in for the official VGG16
    # feature distance; needs `vgg_fn`) or 'l2_lpips' (the tuning loss, at loss_resolution).
    invert_distance: str = "lpips_vgg"
    invert_resolution: int = 256    # 'lpips_vgg': both images area-averaged to this size when larger
    seed: int = 0
    lpips_threshold: float = 0.06   # LPIPS_value_threshold: tuning stops at LPIPS <= this (<= 0: never)
    w_lr_rampup: float = 0.05       # fraction of w_steps with a linear lr ramp-up (lr 0 at step 0)
    w_lr_rampdown: float = 0.25     # fraction of w_steps with a cosine lr ramp-down
    w_noise_factor: float = 0.05    # initial code noise, in units of the mapped-sample spread
    w_noise_ramp: float = 0.75      # fraction of w_steps over which the code noise decays to 0
    w_std_samples: int = 600        # mapped z samples for the spread (base_coach passes 600)
    optimize_noise: bool = True     # also fit the backbone's noise buffers during inversion
    noise_reg_weight: float = 1e5   # regularize_noise_weight
    # Training-time renders jitter the ray samples like EG3D's renderer (keys from `seed`); the
    # output renders are always deterministic. True: deterministic sample positions throughout.
    render_deterministic: bool = False
    loss_resolution: Optional[int] = None   # area-average both images to this size first (None: native)

    def __post_init__(self):
        for name, allowed in (("latent_space", LATENT_SPACES), ("start", STARTS),
                              ("invert_distance", INVERT_DISTANCES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"PTIConfig.{name}={getattr(self, name)!r}: must be one of {allowed}")
        if self.w_steps < 0 or self.g_steps < 0:
            raise ValueError(f"PTIConfig steps must be >= 0, got w_steps={self.w_steps}, g_steps={self.g_steps}")
        if min(self.w_lr_rampup, self.w_lr_rampdown, self.w_noise_ramp) <= 0:
            raise ValueError("PTIConfig: w_lr_rampup, w_lr_rampdown and w_noise_ramp must be > 0")
        if self.w_std_samples < 1:
            raise ValueError(f"PTIConfig.w_std_samples must be >= 1, got {self.w_std_samples}")

    @classmethod
    def cpu_test(cls, **changes) -> "PTIConfig":
        """A few steps per stage with larger learning rates, inverting with the tuning loss (no VGG weights
        needed): for tests and smoke runs on a CPU."""
        values = dict(w_steps=24, g_steps=16, w_lr=0.05, g_lr=2e-3, w_std_samples=64, invert_distance="l2_lpips")
        values.update(changes)
        return cls(**values)

    def replace(self, **changes) -> "PTIConfig":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass
class PTIResult:
    """What `run_pti` returns. Losses are per step, before that step's update; NaN where tuning
    had already stopped early."""

    images: np.ndarray         # [N, V, R, R, 3] renders of the tuned generators, about [-1, 1]
    ws: np.ndarray             # [N, num_ws, w_dim] the pivot codes
    invert_losses: np.ndarray  # [N, w_steps] inversion reconstruction loss (noisy code; no noise penalty)
    tune_losses: np.ndarray    # [N, g_steps] tuning objective
    tune_steps: np.ndarray     # [N] generator updates applied (< g_steps after an early stop)


# ----------------------------------------------------------------------------------------------
# Pure pieces


def reconstruction_loss(pred, target, hp: dict, lpips_fn, loss_resolution: Optional[int]):
    """-> (l2_weight * mse + lpips_weight * lpips, {'l2', 'psnr', 'lpips'}); images [B,R,R,3]."""
    if loss_resolution:
        pred, target = area_downsample(pred, loss_resolution), area_downsample(target, loss_resolution)
    mse = jnp.mean(jnp.square(pred - target))
    metrics = {"l2": mse, "psnr": psnr_from_mse(mse)}
    loss = hp["l2_weight"] * mse
    if lpips_fn is not None:
        lp = jnp.mean(lpips_fn(pred, target))
        metrics["lpips"] = lp
        loss = loss + hp["lpips_weight"] * lp
    return loss, metrics


def vgg_distance(pred, target, vgg_fn, resolution: Optional[int]):
    """-> (mean LPIPS-VGG(pred, target), {'l2', 'psnr', 'lpips_vgg'}): the projector's distance, both images
    area-averaged to `resolution` first when they are larger (images [B,R,R,3] in [-1, 1])."""
    if resolution and pred.shape[1] > resolution:
        pred, target = area_downsample(pred, resolution), area_downsample(target, resolution)
    mse = jnp.mean(jnp.square(pred - target))
    dist = jnp.mean(vgg_fn(pred, target))
    return dist, {"l2": mse, "psnr": psnr_from_mse(mse), "lpips_vgg": dist}


def noise_regularization(noises: dict) -> jax.Array:
    """StyleGAN2's projector penalty: squared autocorrelation of each [H,W] noise map with its
    one-pixel shifts along both axes, summed over a pyramid of 2x2 average poolings down to 8x8."""
    total = jnp.zeros([], jnp.float32)
    for noise in noises.values():
        while True:
            total += jnp.mean(noise * jnp.roll(noise, 1, axis=1)) ** 2
            total += jnp.mean(noise * jnp.roll(noise, 1, axis=0)) ** 2
            if noise.shape[0] <= 8:
                break
            h, w = noise.shape
            noise = noise.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return total


def normalize_noises(noises: dict) -> dict:
    """Each noise map shifted to zero mean and scaled to unit mean square."""
    def norm(n):
        n = n - jnp.mean(n)
        return n * jax.lax.rsqrt(jnp.mean(jnp.square(n)))
    return {k: norm(n) for k, n in noises.items()}


def invert_lr_ramp(step, num_steps, rampup, rampdown):
    """The projector's lr multiplier at `step` of `num_steps` (0 at step 0, 1 in the middle)."""
    t = step / jnp.maximum(num_steps, 1)
    ramp = jnp.minimum(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * jnp.cos(ramp * jnp.pi)
    return ramp * jnp.minimum(1.0, t / rampup)


def _noise_keys(buffers) -> list[tuple]:
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(buffers))
    return sorted(k for k in flat if k[:2] == ("backbone", "synthesis") and k[-1] == "noise_const")


def backbone_noises(buffers) -> dict:
    """{'b64/conv0': [64,64], ...}: the tri-plane backbone's constant noise maps."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(buffers))
    return {"/".join(k[2:-1]): flat[k] for k in _noise_keys(buffers)}


def with_backbone_noises(buffers, noises: dict):
    """`buffers` with the backbone noise maps replaced by `noises` (as from `backbone_noises`)."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(buffers))
    for k in _noise_keys(buffers):
        flat[k] = noises["/".join(k[2:-1])]
    return flax.traverse_util.unflatten_dict(flat)


# ----------------------------------------------------------------------------------------------
# Step functions (jitted once per generator config and loss structure)


@flax.struct.dataclass
class InvertState:
    step: jax.Array       # int32 scalar
    ws: jax.Array         # [1, num_ws, w_dim]
    noises: dict          # {name: [H, W]} (empty without noise optimisation)
    opt_state: Any


@flax.struct.dataclass
class TuneState:
    step: jax.Array       # int32 scalar: updates applied
    params: Any           # generator params
    opt_state: Any
    stopped: jax.Array    # bool: the LPIPS threshold was reached (no further updates)


def _hyperparams(config: PTIConfig, use_lpips: bool) -> dict:
    """The numeric hyperparameters, as float32 arrays: traced, so changing them never recompiles."""
    values = dict(w_lr=config.w_lr, g_lr=config.g_lr, l2_weight=config.l2_weight,
                  lpips_weight=config.lpips_weight, w_steps=config.w_steps,
                  w_lr_rampup=config.w_lr_rampup, w_lr_rampdown=config.w_lr_rampdown,
                  w_noise_factor=config.w_noise_factor, w_noise_ramp=config.w_noise_ramp,
                  noise_reg_weight=config.noise_reg_weight,
                  lpips_threshold=config.lpips_threshold if use_lpips and config.lpips_threshold > 0 else -1.0)
    return {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}


_adam = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)   # torch.optim.Adam defaults; lr applied by hand


@functools.lru_cache(maxsize=16)
def make_invert_step(gen_config: eg3d_flax.GeneratorConfig, *, optimize_noise: bool, deterministic: bool,
                     use_lpips: bool, loss_resolution: Optional[int], distance: str = "l2_lpips",
                     invert_resolution: Optional[int] = None) -> Callable:
    """jitted (gen_variables, state, target [1,R,R,3], camera [1,25], key, w_std, hp, lpips_fn)
    -> (state, metrics). One Adam step on the code [1, L, w_dim] (L = 1: W, repeated over the num_ws layers;
    L = num_ws: W+) and the noise maps, with the projector schedule. distance 'lpips_vgg': `lpips_fn` is
    LPIPS-VGG, applied at `invert_resolution`; 'l2_lpips': the tuning loss (`reconstruction_loss`)."""
    module = eg3d_flax.TriPlaneGenerator(gen_config)

    def step_fn(gen_variables, state: InvertState, target, camera, key, w_std, hp, lpips_fn):
        TRACE_COUNTS["invert_step"] += 1
        key = jax.random.fold_in(key, state.step)
        code_key, render_key = jax.random.split(key)
        t = state.step / jnp.maximum(hp["w_steps"], 1.0)
        noise_scale = w_std * hp["w_noise_factor"] * jnp.square(jnp.maximum(0.0, 1.0 - t / hp["w_noise_ramp"]))
        lr = hp["w_lr"] * invert_lr_ramp(state.step, hp["w_steps"], hp["w_lr_rampup"], hp["w_lr_rampdown"])

        def loss_fn(opt):
            code = opt["ws"] + noise_scale * jax.random.normal(code_key, opt["ws"].shape)
            ws = jnp.broadcast_to(code, (1, gen_config.num_ws, code.shape[-1]))
            buffers = gen_variables["buffers"]
            if optimize_noise:
                buffers = with_backbone_noises(buffers, opt["noises"])
            out = module.apply({"params": gen_variables["params"], "buffers": buffers}, ws, camera, "const",
                               deterministic, None, method=module.synthesis, rngs={"render": render_key})
            if distance == "lpips_vgg":
                loss, metrics = vgg_distance(out["image"], target, lpips_fn, invert_resolution)
            else:
                loss, metrics = reconstruction_loss(out["image"], target, hp, lpips_fn if use_lpips else None,
                                                    loss_resolution)
            metrics["loss"] = loss
            if optimize_noise:
                reg = noise_regularization(opt["noises"])
                metrics["noise_reg"] = reg
                loss = loss + hp["noise_reg_weight"] * reg
            return loss, metrics

        opt = {"ws": state.ws, "noises": state.noises}
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(opt)
        updates, opt_state = _adam.update(grads, state.opt_state)
        opt = jax.tree_util.tree_map(lambda p, u: p - lr * u, opt, updates)
        noises = normalize_noises(opt["noises"]) if optimize_noise else opt["noises"]
        metrics.update(objective=loss, lr=lr)
        return InvertState(step=state.step + 1, ws=opt["ws"], noises=noises, opt_state=opt_state), metrics

    return jax.jit(step_fn)


@functools.lru_cache(maxsize=16)
def make_tune_step(gen_config: eg3d_flax.GeneratorConfig, *, deterministic: bool, use_lpips: bool,
                   loss_resolution: Optional[int]) -> Callable:
    """jitted (state, buffers, ws [1,num_ws,w_dim], target [1,R,R,3], camera [1,25], key, hp, lpips_fn)
    -> (state, metrics). One Adam step on the generator params with the pivot fixed; once the LPIPS
    term is <= hp['lpips_threshold'] (before the update) the state stops changing."""
    module = eg3d_flax.TriPlaneGenerator(gen_config)

    def step_fn(state: TuneState, buffers, ws, target, camera, key, hp, lpips_fn):
        TRACE_COUNTS["tune_step"] += 1
        key = jax.random.fold_in(key, state.step)

        def loss_fn(params):
            out = module.apply({"params": params, "buffers": buffers}, ws, camera, "const", deterministic, None,
                               method=module.synthesis, rngs={"render": key})
            return reconstruction_loss(out["image"], target, hp, lpips_fn if use_lpips else None, loss_resolution)

        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = _adam.update(grads, state.opt_state)
        params = jax.tree_util.tree_map(lambda p, u: p - hp["g_lr"] * u, state.params, updates)
        stopped = state.stopped | (metrics.get("lpips", jnp.inf) <= hp["lpips_threshold"])
        keep = lambda old, new: jax.tree_util.tree_map(lambda a, b: jnp.where(stopped, a, b), old, new)
        new_state = TuneState(step=state.step + jnp.where(stopped, 0, 1), params=keep(state.params, params),
                              opt_state=keep(state.opt_state, opt_state), stopped=stopped)
        metrics.update(loss=loss, stopped=stopped)
        return new_state, metrics

    return jax.jit(step_fn)


# ----------------------------------------------------------------------------------------------
# Stages


def _check_frame(generator: eg3d_flax.Generator, image, camera, what: str):
    res = generator.config.img_resolution
    image = np.asarray(image, np.float32)
    camera = np.asarray(camera, np.float32)
    if image.shape != (res, res, 3):
        raise ValueError(f"{what}: image must be [{res},{res},3] (the generator's resolution), got {image.shape}")
    if camera.shape != (25,):
        raise ValueError(f"{what}: camera must be a [25] EG3D label, got {camera.shape}")
    if not (np.isfinite(image).all() and np.isfinite(camera).all()):
        raise ValueError(f"{what}: image or camera has non-finite values")
    return jnp.asarray(image[None]), jnp.asarray(camera[None])


def _lpips_for(config: PTIConfig, lpips_fn):
    """(use_lpips, the LPIPS function as a jit argument): an `LPIPSFn` pytree passes its weights as
    traced inputs; a plain function is wrapped in `jax.tree_util.Partial` (compiled per function)."""
    if lpips_fn is None or config.lpips_weight <= 0:
        return False, None
    if jax.tree_util.tree_leaves(lpips_fn) == [lpips_fn]:  # a plain function: make it a (static) pytree
        lpips_fn = jax.tree_util.Partial(lpips_fn)
    return True, lpips_fn


def mapped_stats(generator: eg3d_flax.Generator, camera, num_samples: int) -> tuple[np.ndarray, float]:
    """(mean [w_dim], spread) of `num_samples` mapped z ~ N(0, I) (NumPy seed 123, as the projector)
    conditioned on `camera` [25]; spread = sqrt(mean_i |w_i - mean w|^2), the scale of the code noise."""
    z = np.random.RandomState(123).randn(num_samples, generator.config.z_dim).astype(np.float32)
    c = np.broadcast_to(np.asarray(camera, np.float32), (num_samples, 25))
    w = np.asarray(generator.mapping(z, c))[:, 0, :]
    mean = w.mean(0)
    return mean, float(np.sqrt(np.sum(np.square(w - mean[None])) / num_samples))


def mapped_spread(generator: eg3d_flax.Generator, camera, num_samples: int) -> float:
    """The spread of `mapped_stats`: the scale of the projector's code noise."""
    return mapped_stats(generator, camera, num_samples)[1]


def start_code(generator: eg3d_flax.Generator, config: PTIConfig, camera=None, mapped_mean=None) -> jax.Array:
    """The inversion's start code [1, L, w_dim] (L = 1 for W, num_ws for W+): the mean of the mapped samples
    at `camera` (start 'mapped_mean'; or give that mean [w_dim] as `mapped_mean`), or the generator's w_avg
    buffer ('w_avg')."""
    if config.start == "w_avg":
        w = np.asarray(generator.variables["buffers"]["backbone"]["mapping"]["w_avg"], np.float32)
    elif mapped_mean is not None:
        w = np.asarray(mapped_mean, np.float32)
    else:
        if camera is None:
            raise ValueError("start_code: start='mapped_mean' maps samples at a camera; pass camera")
        w = mapped_stats(generator, camera, config.w_std_samples)[0]
    layers = 1 if config.latent_space == "w" else generator.num_ws
    return jnp.broadcast_to(jnp.asarray(w, jnp.float32), (1, layers, w.shape[-1]))


def invert_latent(generator: eg3d_flax.Generator, image, camera, *, config: PTIConfig,
                  lpips_fn=None, vgg_fn=None) -> tuple[np.ndarray, np.ndarray]:
    """Stage 1: image [R,R,3] in [-1,1], camera [25] -> (pivot W+ code [num_ws, w_dim], losses [w_steps]).

    losses: the inversion distance at each step (of the noise-perturbed code, before the update), without
    the noise-map penalty. lpips_fn: the tuning loss's LPIPS ('l2_lpips' distance); vgg_fn: LPIPS-VGG
    (`hfagp.lpips.make_lpips(weights, 'vgg')`), needed by the 'lpips_vgg' distance. With latent_space 'w'
    the pivot's num_ws rows are equal.
    The generator's weights are not changed. Randomness comes from `config.seed` only."""
    target, cam = _check_frame(generator, image, camera, "invert_latent")
    if config.invert_distance == "lpips_vgg":
        if vgg_fn is None:
            raise ValueError("PTIConfig.invert_distance='lpips_vgg' needs LPIPS-VGG weights (vgg_fn; the official "
                             "VGG16 feature distance's stand-in), or invert_distance='l2_lpips'")
        use_lpips, fn = _lpips_for(config.replace(lpips_weight=1.0), vgg_fn)
    else:
        use_lpips, fn = _lpips_for(config, lpips_fn)
    step = make_invert_step(generator.config, optimize_noise=config.optimize_noise,
                            deterministic=config.render_deterministic, use_lpips=use_lpips,
                            loss_resolution=config.loss_resolution, distance=config.invert_distance,
                            invert_resolution=config.invert_resolution if config.invert_distance == "lpips_vgg"
                            else None)
    hp = _hyperparams(config, use_lpips)
    noise_key, step_key = jax.random.split(jax.random.PRNGKey(config.seed))
    noises = {}
    if config.optimize_noise:
        base = backbone_noises(generator.variables["buffers"])
        keys = jax.random.split(noise_key, len(base))
        noises = {name: jax.random.normal(k, n.shape, jnp.float32) for k, (name, n) in zip(keys, base.items())}
    mean, spread = mapped_stats(generator, camera, config.w_std_samples)
    ws = start_code(generator, config, mapped_mean=mean)
    opt = {"ws": ws, "noises": noises}
    state = InvertState(step=jnp.zeros([], jnp.int32), ws=ws, noises=noises, opt_state=_adam.init(opt))
    w_std = jnp.asarray(spread, jnp.float32)
    losses = []
    for _ in range(config.w_steps):
        state, metrics = step(generator.variables, state, target, cam, step_key, w_std, hp, fn)
        losses.append(metrics["loss"])
    losses = np.asarray(jax.device_get(losses), np.float32).reshape(config.w_steps)
    pivot = jnp.broadcast_to(state.ws[0], (generator.num_ws, state.ws.shape[-1]))
    return np.asarray(pivot), losses


def tune_generator(generator: eg3d_flax.Generator, ws, image, camera, *, config: PTIConfig,
                   lpips_fn=None) -> tuple[dict, np.ndarray, int]:
    """Stage 2: tune a copy of the generator params on one frame with the code `ws` [num_ws, w_dim] fixed.

    Returns (tuned params, losses [g_steps] (NaN after an early stop), number of updates applied).
    `generator` itself is unchanged; its buffers (noise maps included) are used as they are."""
    target, cam = _check_frame(generator, image, camera, "tune_generator")
    ws = jnp.asarray(ws, jnp.float32)
    expected = (generator.num_ws, generator.config.w_dim)
    if ws.shape != expected:
        raise ValueError(f"tune_generator: ws must be {list(expected)}, got {list(ws.shape)}")
    use_lpips, fn = _lpips_for(config, lpips_fn)
    step = make_tune_step(generator.config, deterministic=config.render_deterministic, use_lpips=use_lpips,
                          loss_resolution=config.loss_resolution)
    hp = _hyperparams(config, use_lpips)
    params = generator.variables["params"]
    state = TuneState(step=jnp.zeros([], jnp.int32), params=params, opt_state=_adam.init(params),
                      stopped=jnp.zeros([], bool))
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
    buffers = generator.variables["buffers"]
    losses, stops = [], []
    for _ in range(config.g_steps):
        state, metrics = step(state, buffers, ws[None], target, cam, key, hp, fn)
        losses.append(metrics["loss"])
        stops.append(metrics["stopped"])
        # Look at the previous step's stop flag while this one runs (a step after the stop is a no-op).
        if len(stops) > 1 and bool(stops[-2]):
            break
    losses = np.asarray(jax.device_get(losses), np.float32).reshape(-1)
    stops = np.asarray(jax.device_get(stops), bool).reshape(-1)
    out = np.full(config.g_steps, np.nan, np.float32)
    applied = int(state.step)
    # Steps whose loss was measured while the threshold had not been reached (as the official loop logs).
    measured = int(np.argmax(stops)) + 1 if stops.any() else len(losses)
    out[:measured] = losses[:measured]
    return state.params, out, applied


# ----------------------------------------------------------------------------------------------
# Whole baseline


def run_pti(generator: eg3d_flax.Generator, images, cameras, render_cameras, *, config: PTIConfig,
            lpips_fn=None, vgg_fn=None, progress: bool = True) -> PTIResult:
    """PTI on every frame. images [N,R,R,3] in [-1,1]; cameras [N,25]; render_cameras [N,V,25]
    (view 0 = the frame's own camera by convention). `generator` is the untuned base generator.
    lpips_fn: the tuning LPIPS (official: alex); vgg_fn: LPIPS-VGG for the 'lpips_vgg' inversion distance."""
    images = np.asarray(images, np.float32)
    cameras = np.asarray(cameras, np.float32)
    render_cameras = np.asarray(render_cameras, np.float32)
    res = generator.config.img_resolution
    n = len(images)
    if images.ndim != 4 or images.shape[1:] != (res, res, 3):
        raise ValueError(f"run_pti: images must be [N,{res},{res},3] for this generator, got {images.shape}")
    if cameras.shape != (n, 25):
        raise ValueError(f"run_pti: cameras must be [{n},25], got {cameras.shape}")
    if render_cameras.ndim != 3 or render_cameras.shape[0] != n or render_cameras.shape[2] != 25:
        raise ValueError(f"run_pti: render_cameras must be [{n},V,25], got {render_cameras.shape}")
    from tqdm import tqdm

    out_images, pivots, inv_losses, tune_losses, tune_steps = [], [], [], [], []
    bar = tqdm(range(n), desc="PTI", unit="frame", disable=not progress)
    for i in bar:
        ws, inv = invert_latent(generator, images[i], cameras[i], config=config, lpips_fn=lpips_fn, vgg_fn=vgg_fn)
        params, tune, applied = tune_generator(generator, ws, images[i], cameras[i], config=config,
                                               lpips_fn=lpips_fn)
        tuned = generator.replace_variables({"params": params, "buffers": generator.variables["buffers"]})
        views = render_cameras[i]
        rendered = tuned.synthesis(jnp.broadcast_to(jnp.asarray(ws), (len(views),) + ws.shape), views)["image"]
        out_images.append(np.asarray(rendered))
        pivots.append(ws)
        inv_losses.append(inv)
        tune_losses.append(tune)
        tune_steps.append(applied)
        last = tune[np.isfinite(tune)]
        bar.set_postfix(invert=f"{inv[-1]:.4f}" if len(inv) else "-", tune=f"{last[-1]:.4f}" if len(last) else "-")
    w_shape = (0, generator.num_ws, generator.config.w_dim)
    return PTIResult(
        images=np.stack(out_images) if n else np.zeros((0, render_cameras.shape[1], res, res, 3), np.float32),
        ws=np.stack(pivots) if n else np.zeros(w_shape, np.float32),
        invert_losses=np.stack(inv_losses) if n else np.zeros((0, config.w_steps), np.float32),
        tune_losses=np.stack(tune_losses) if n else np.zeros((0, config.g_steps), np.float32),
        tune_steps=np.asarray(tune_steps, np.int32))


def pti_reconstruct(generator: eg3d_flax.Generator, images, cameras, render_cameras, *, config: PTIConfig,
                    lpips_fn=None, vgg_fn=None, progress: bool = True) -> np.ndarray:
    """[N,V,R,R,3]: each frame's V cameras rendered by its own PTI-tuned generator (see `run_pti`)."""
    return run_pti(generator, images, cameras, render_cameras, config=config, lpips_fn=lpips_fn, vgg_fn=vgg_fn,
                   progress=progress).images


__all__ = ["INVERT_DISTANCES", "LATENT_SPACES", "PTIConfig", "PTIResult", "STARTS", "TRACE_COUNTS",
           "backbone_noises", "invert_latent", "make_invert_step", "make_tune_step", "mapped_spread", "mapped_stats",
           "noise_regularization", "pti_reconstruct", "run_pti", "start_code", "tune_generator", "vgg_distance",
           "with_backbone_noises"]
