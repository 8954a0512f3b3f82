"""A synthetic avatar world with a known answer: ``python -m avatar_data.worlds.synthetic OUT_DIR --generator G``.

From any EG3D generator (a converted checkpoint directory, or a preset with random weights) this picks a
hidden ground-truth person and films a "monocular talking-head video" of it:

* latent: ``ws[t] = w_mean + sum_k coefficients[t, k] * basis[k]`` in W+ ([num_ws, w_dim]), where ``w_mean``
  is the mapping of one random z at the frontal camera, truncated with ``truncation_psi``, and ``basis``
  holds ``subspace_dim`` orthogonal W+ directions. Each direction is drawn per W+ layer from the
  distribution of mapped latents (so it points where the prior's latents actually vary), orthonormalised,
  and scaled to ``direction_scale`` times the rms distance of a prior latent from the prior mean.
* coefficients [T, d]: smooth bounded trajectories, each a sum of a few sinusoids (periods 16..100 frames,
  random phases) with ``|coefficient| <= 1``.
* camera: EG3D look-at cameras (radius and pivot from the generator config, FFHQ intrinsics) whose yaw and
  pitch wobble smoothly by a few degrees around the frontal view.
* driving signals: pseudo-3DMM expressions [T, 76] = ``coefficients @ M + b + noise`` (a fixed random
  linear map) and pseudo-DeepSpeech audio [T, 16, 29], where window row j of frame t is a fixed random
  tanh-MLP of the (continuous) coefficient trajectory at time ``t + (j - 7.5) / 2`` frames (two audio
  steps per video frame, as DeepSpeech's 50 Hz vs. 25 fps), plus noise.
* test frames (the last ones) are also rendered from extra cameras (default yaw +-20 deg, pitch +-10 deg
  from frontal): ground-truth novel views, which real datasets never have.
* optionally the video is rendered by a perturbed copy of the generator (`perturb_generator`): a person
  slightly outside the prior, so that tuning the generator (HFA-GP stage two) has something to recover.

Output layout (see avatar_data/README.md, "Synthetic world"): ``frames/`` (EG3D folder, all T frames in
time order), ``split.json``, ``expression.npy``, ``aud.npy``, ``novel_views/`` (EG3D folder + ``views.json``),
``nerface/`` and ``adnerf/`` (the same video in those layouts), ``ground_truth.npz`` and ``world.json``.

Every random choice comes from ``seed`` through fixed, separate streams; the same generator and arguments
give the same world.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from avatar_data import cameras
from avatar_data.formats.common import AUDIO_FEATURE_SHAPE, EXPRESSION_DIM
from avatar_data.worlds import layout, writer
from avatar_data.worlds.writer import EXTRA_FORMATS, SinusoidTrajectory, parse_novel_views, random_trajectory
from hfagp_common import cli, limits

FORMAT_NAME = "hfagp-synthetic-world"
FORMAT_VERSION = 1
FPS = 25.0
DEFAULT_NOVEL_VIEWS = ((20.0, 0.0), (-20.0, 0.0), (0.0, 10.0), (0.0, -10.0))
AUDIO_STEPS_PER_FRAME = 2.0  # DeepSpeech features at 50 Hz, video at 25 fps.
PERTURB_EXCLUDED = ("backbone", "mapping")  # mapping weights never touch the rendering of given ws

# Separate random streams, so that adding an option never changes the other parts of a world.
_STREAMS = {"latent": 0, "coefficients": 1, "camera": 2, "expression": 3, "audio": 4, "perturbation": 5}


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), _STREAMS[stream]])


# ----------------------------------------------------------------------------------------------------
# Generators.


def resolve_generator(spec: str, seed: int = 0):
    """A generator directory (`eg3d_flax.load_generator`) or a preset name with random weights.

    Returns (generator, spec dict) where the dict records how to make the generator again:
    ``{"kind": "dir", "path": abs path}`` or ``{"kind": "preset", "name": name, "seed": seed}``.
    """
    import eg3d_flax

    if os.path.isdir(spec):
        return eg3d_flax.load_generator(spec), {"kind": "dir", "path": os.path.abspath(spec)}
    if spec in eg3d_flax.PRESETS:
        g = eg3d_flax.random_generator(eg3d_flax.preset(spec), seed=int(seed))
        return g, {"kind": "preset", "name": spec, "seed": int(seed)}
    raise ValueError(f"--generator {spec!r} is neither a generator directory nor a preset "
                     f"(presets: {sorted(eg3d_flax.PRESETS)})")


def _is_excluded(path) -> bool:
    keys = [getattr(k, "key", getattr(k, "name", None)) for k in path]
    return tuple(keys[: len(PERTURB_EXCLUDED)]) == PERTURB_EXCLUDED


def perturb_generator(generator, amount: float, seed: int):
    """A copy whose trainable leaves are ``leaf + amount * std(leaf) * N(0, 1)`` (numpy, seeded).

    std is each leaf's own standard deviation over its elements, so constant leaves (e.g. zero biases of a
    randomly initialised generator, the modulation biases of 1) stay unchanged. The mapping network
    (``params/backbone/mapping``) is not perturbed: the world's latents are mapped by the original
    generator, and the mapping never affects rendering from given ws. Buffers are shared unchanged.
    """
    import eg3d_flax

    if amount == 0:
        return generator
    rng = _rng(seed, "perturbation")
    leaves, treedef = jax.tree_util.tree_flatten_with_path(generator.variables["params"])
    out = []
    for path, leaf in leaves:
        x = np.asarray(leaf, np.float32)
        if _is_excluded(path) or x.size < 2:
            out.append(leaf)
            continue
        noise = rng.standard_normal(x.shape).astype(np.float32)
        out.append(jnp.asarray(x + np.float32(amount * x.std()) * noise, dtype=leaf.dtype))
    variables = dict(generator.variables)
    variables["params"] = jax.tree_util.tree_unflatten(treedef, out)
    return eg3d_flax.Generator(generator.config, variables)


# ----------------------------------------------------------------------------------------------------
# Cameras.


def frontal_label(config) -> np.ndarray:
    """float32 [25]: the generator's average camera (yaw = pitch = pi/2) with FFHQ intrinsics."""
    return camera_labels(np.zeros(1), np.zeros(1), config)[0]


def camera_labels(yaw_offset, pitch_offset, config) -> np.ndarray:
    """EG3D labels [N, 25] float32 for yaw/pitch offsets (radians) from frontal around the generator's average
    camera (`cameras.yaw_pitch_cameras` with its radius and pivot, FFHQ intrinsics)."""
    return cameras.yaw_pitch_cameras(yaw_offset, pitch_offset, config.avg_camera_radius, config.avg_camera_pivot)


# ----------------------------------------------------------------------------------------------------
# The hidden person: a mean latent and a low-dimensional W+ subspace.


def sample_latent_subspace(
    generator,
    rng: np.random.Generator,
    subspace_dim: int,
    *,
    truncation_psi: float = 0.7,
    direction_scale: float = 0.25,
    num_prior_samples: int = 512,
) -> dict[str, Any]:
    """Mean latent and scaled W+ basis of a hidden person (one jitted mapping call).

    Maps ``num_prior_samples`` + 1 random z at the frontal camera without truncation. The first is the
    person: ``w_mean = centre + psi * (w - centre)`` with centre = the generator's ``w_avg`` (EG3D's
    truncation), or the sample mean of the mapped latents when ``w_avg`` is all zeros (an untrained
    generator never tracked it). Directions: for each W+ layer independently, a Gaussian combination of
    the centred prior samples (covariance-shaped), then orthonormalised over the flattened W+; the basis
    is ``direction_scale * spread * direction`` with spread the rms W+ distance of the samples from their
    mean. Returns float32 ``w_mean`` [L, C], ``basis`` [d, L, C], ``z`` [1, z_dim] and floats ``spread``,
    ``truncation_centre`` ('w_avg' | 'sample_mean').
    """
    cfg = generator.config
    if not 1 <= subspace_dim <= cfg.num_ws * cfg.w_dim:
        raise ValueError(f"subspace_dim must be in [1, {cfg.num_ws * cfg.w_dim}], got {subspace_dim}")
    z = rng.standard_normal((num_prior_samples + 1, cfg.z_dim)).astype(np.float32)
    c = np.repeat(frontal_label(cfg)[None], z.shape[0], axis=0)
    ws = np.asarray(generator.mapping(z, c, truncation_psi=1.0), np.float64)  # [N+1, L, C]
    person, prior = ws[0], ws[1:]
    prior_mean = prior.mean(axis=0)
    w_avg = np.asarray(generator.variables["buffers"]["backbone"]["mapping"]["w_avg"], np.float64)
    if np.any(w_avg):
        centre, centre_name = np.broadcast_to(w_avg, person.shape), "w_avg"
    else:
        centre, centre_name = prior_mean, "sample_mean"
    w_mean = centre + truncation_psi * (person - centre)

    centred = prior - prior_mean  # [N, L, C]
    spread = float(np.sqrt(np.mean(np.sum(centred ** 2, axis=(1, 2)))))
    if not spread > 0:
        raise ValueError("the generator maps every z to the same latent; cannot scale a subspace")
    mix = rng.standard_normal((subspace_dim, num_prior_samples, cfg.num_ws))
    raw = np.einsum("dnl,nlc->dlc", mix, centred).reshape(subspace_dim, -1)
    q, _ = np.linalg.qr(raw.T)  # [L*C, d], orthonormal columns
    directions = q.T.reshape(subspace_dim, cfg.num_ws, cfg.w_dim)
    return {
        "w_mean": w_mean.astype(np.float32),
        "basis": (direction_scale * spread * directions).astype(np.float32),
        "z": z[:1],
        "spread": spread,
        "truncation_centre": centre_name,
    }


# ----------------------------------------------------------------------------------------------------
# Driving signals (pure functions of the hidden coefficients).


def random_expression_map(rng: np.random.Generator, subspace_dim: int, dim: int = EXPRESSION_DIM) -> dict:
    """Pseudo-3DMM map: matrix [d, dim] ~ N(0, 1/d) (unit-scale outputs), bias [dim] ~ N(0, 0.1^2)."""
    return {"expression_matrix": rng.standard_normal((subspace_dim, dim)) / np.sqrt(subspace_dim),
            "expression_bias": 0.1 * rng.standard_normal(dim)}


def pseudo_expression(coefficients: np.ndarray, expression_map: dict) -> np.ndarray:
    """Noise-free pseudo-3DMM expressions: coefficients [T, d] -> [T, 76] float64."""
    return np.asarray(coefficients, np.float64) @ expression_map["expression_matrix"] + \
        expression_map["expression_bias"]


def random_audio_map(rng: np.random.Generator, subspace_dim: int, hidden: int = 32) -> dict:
    """Pseudo-DeepSpeech map, a tanh MLP d -> hidden -> 29 with unit-scale pre-activations and outputs."""
    feat = AUDIO_FEATURE_SHAPE[1]
    return {"audio_w1": 1.5 * rng.standard_normal((subspace_dim, hidden)) / np.sqrt(subspace_dim),
            "audio_b1": 0.5 * rng.standard_normal(hidden),
            "audio_w2": rng.standard_normal((hidden, feat)) / np.sqrt(hidden),
            "audio_b2": 0.1 * rng.standard_normal(feat)}


def pseudo_audio(trajectory: SinusoidTrajectory, num_frames: int, audio_map: dict) -> np.ndarray:
    """Noise-free pseudo-audio [T, 16, 29] float64.

    Row j of frame t encodes the coefficients at time ``t + (j - 7.5) / 2`` frames (16 steps at two per
    frame, centred on the frame, like AD-NeRF's DeepSpeech windows), so audio also sees the near past and
    future. The trajectory is continuous, so times outside [0, T - 1] are well defined.
    """
    steps = AUDIO_FEATURE_SHAPE[0]
    offsets = (np.arange(steps) - (steps - 1) / 2.0) / AUDIO_STEPS_PER_FRAME
    coeffs = trajectory(np.arange(num_frames)[:, None] + offsets[None, :])  # [T, 16, d]
    hidden = np.tanh(coeffs @ audio_map["audio_w1"] + audio_map["audio_b1"])
    return hidden @ audio_map["audio_w2"] + audio_map["audio_b2"]


# ----------------------------------------------------------------------------------------------------
# Rendering.


@functools.partial(jax.jit, static_argnames=("config",))
def _render_uint8(config, variables, ws, c):
    from eg3d_flax import TriPlaneGenerator
    from hfagp_common.images import to_uint8

    module = TriPlaneGenerator(config)
    out = module.apply(variables, ws, c, "const", True, None, False, method=module.synthesis)
    return to_uint8(out["image"])


def render_images(generator, ws: np.ndarray, labels: np.ndarray, *, batch_size: int = 8,
                  progress: bool = True, desc: str = "render") -> np.ndarray:
    """Render ws [N, L, C] at cameras [N, 25] -> uint8 [N, R, R, 3] (``((x + 1) * 127.5)`` rounded, clipped).

    Fixed batch size (the last batch is padded), noise_mode='const', deterministic rendering. The jitted
    function takes the config as a static argument and the variables as arguments, so generators of one
    config (e.g. the original and a perturbed copy) share one compilation. The next batch is dispatched
    before the previous one is copied back.
    """
    from hfagp_common.batching import batched

    n = ws.shape[0]
    if labels.shape != (n, cameras.LABEL_DIM):
        raise ValueError(f"labels must be [{n}, 25], got {labels.shape}")
    if n == 0:
        res = generator.config.img_resolution
        return np.zeros((0, res, res, 3), np.uint8)
    fn = lambda w, c: _render_uint8(generator.config, generator.variables, w, c)
    return batched(fn, [np.asarray(ws, np.float32), np.asarray(labels, np.float32)], batch_size, desc=desc,
                   progress=progress)


# ----------------------------------------------------------------------------------------------------
# The world.


def make_synthetic_world(
    generator,
    out_dir: str,
    *,
    num_frames: int = 200,
    num_test_frames: Optional[int] = None,
    subspace_dim: int = 8,
    seed: int = 0,
    truncation_psi: float = 0.7,
    direction_scale: float = 0.25,
    yaw_amplitude_deg: float = 6.0,
    pitch_amplitude_deg: float = 3.0,
    novel_views: Sequence[tuple[float, float]] = DEFAULT_NOVEL_VIEWS,
    expression_noise: float = 0.05,
    audio_noise: float = 0.05,
    perturb_generator_amount: float = 0.0,
    extra_formats: Sequence[str] = EXTRA_FORMATS,
    batch_size: int = 8,
    generator_spec: Optional[dict] = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Render a synthetic talking-head world into ``out_dir`` (written atomically); returns world.json's dict.

    generator: an `eg3d_flax.Generator` (the prior). num_test_frames: the last frames, held out (default
    10% of num_frames, at least 1). novel_views: (yaw, pitch) offsets in degrees from frontal at which each
    test frame is also rendered. perturb_generator_amount: if > 0 the video and novel views are rendered by
    ``perturb_generator(generator, amount, seed)``. extra_formats: also write the video as 'nerface'
    (with expressions) and/or 'adnerf' (with audio) folders. generator_spec: how to re-create the generator
    (`resolve_generator`'s dict), stored in the metadata. See the module docstring for the model of the world.
    """
    cfg = generator.config
    writer.check_extra_formats(extra_formats)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    with writer.writing_world(out_dir, num_frames=num_frames, num_test_frames=num_test_frames,
                              novel_views=novel_views, overwrite=overwrite) as w:
        # The hidden person and its motion.
        latent = sample_latent_subspace(generator, _rng(seed, "latent"), subspace_dim,
                                        truncation_psi=truncation_psi, direction_scale=direction_scale)
        trajectory = random_trajectory(_rng(seed, "coefficients"), subspace_dim)
        t = np.arange(num_frames)
        coefficients = trajectory(t).astype(np.float32)  # [T, d]
        ws = latent["w_mean"][None] + np.einsum("td,dlc->tlc", coefficients, latent["basis"])
        head = random_trajectory(_rng(seed, "camera"), 2, 1.0, min_period=50.0, max_period=200.0)
        head_motion = head(t)
        yaw = np.radians(yaw_amplitude_deg) * head_motion[:, 0]
        pitch = np.radians(pitch_amplitude_deg) * head_motion[:, 1]
        labels = camera_labels(yaw, pitch, cfg)

        rng = _rng(seed, "expression")
        expression_map = random_expression_map(rng, subspace_dim)
        expression = pseudo_expression(coefficients, expression_map)
        expression = (expression + expression_noise * rng.standard_normal(expression.shape)).astype(np.float32)
        rng = _rng(seed, "audio")
        audio_map = random_audio_map(rng, subspace_dim)
        audio = pseudo_audio(trajectory, num_frames, audio_map)
        audio = (audio + audio_noise * rng.standard_normal(audio.shape)).astype(np.float32)

        view_yaw = np.radians([v[0] for v in w.novel_views])
        view_pitch = np.radians([v[1] for v in w.novel_views])
        novel_frame, novel_view = w.novel_frame_index, w.novel_view_index
        novel_labels = camera_labels(view_yaw[novel_view], view_pitch[novel_view], cfg)
        w.mark("latents_s")

        # Rendering.
        renderer = perturb_generator(generator, perturb_generator_amount, seed)
        with w.timed("render_frames_s"):
            frames = render_images(renderer, ws, labels, batch_size=batch_size, progress=progress, desc="frames")
        with w.timed("render_novel_views_s"):
            novel = render_images(renderer, ws[novel_frame], novel_labels, batch_size=batch_size,
                                  progress=progress, desc="novel views")

        # Files.
        spec = dict(generator_spec or {"kind": "in_memory"})
        perturbation = {"amount": float(perturb_generator_amount), "seed": int(seed),
                        "excluded": "/".join(PERTURB_EXCLUDED)}
        with w.timed("write_s"):
            w.write_video(frames, labels, expression, audio, novel, novel_labels, extra_formats)
            np.savez(
                w.path / layout.GROUND_TRUTH_FILE,
                w_mean=latent["w_mean"], basis=latent["basis"], coefficients=coefficients,
                ws=ws.astype(np.float32), z=latent["z"], labels=labels,
                camera_yaw_offset=yaw.astype(np.float32), camera_pitch_offset=pitch.astype(np.float32),
                novel_labels=novel_labels, novel_frame_index=novel_frame, novel_view_index=novel_view,
                **trajectory.arrays("trajectory"), **head.arrays("head_trajectory"),
                **expression_map, **audio_map,
                generator_spec=np.array(json.dumps(spec)), perturbation=np.array(json.dumps(perturbation)),
            )
        world = w.finish(FORMAT_NAME, FORMAT_VERSION, FPS, cfg.img_resolution, {
            "seed": int(seed),
            "generator": spec,
            "perturbation": perturbation,
            "latent": {"subspace_dim": subspace_dim, "num_ws": cfg.num_ws, "w_dim": cfg.w_dim,
                       "truncation_psi": truncation_psi, "truncation_centre": latent["truncation_centre"],
                       "direction_scale": direction_scale, "prior_spread": latent["spread"],
                       "coefficient_bound": 1.0},
            "camera": {"radius": cfg.avg_camera_radius, "pivot": list(cfg.avg_camera_pivot),
                       "intrinsics": cameras.FFHQ_INTRINSICS.tolist(),
                       "yaw_amplitude_deg": yaw_amplitude_deg, "pitch_amplitude_deg": pitch_amplitude_deg},
            "novel_views_deg": [list(v) for v in w.novel_views],
            "expression": {"dim": EXPRESSION_DIM, "noise_std": expression_noise},
            "audio": {"shape": list(AUDIO_FEATURE_SHAPE), "noise_std": audio_noise,
                      "steps_per_frame": AUDIO_STEPS_PER_FRAME},
        }, extra_formats=extra_formats)
    return world


def load_ground_truth(world_dir: str) -> dict[str, Any]:
    """world.json and ground_truth.npz of a world: {'world': dict, name: array, 'trajectory':
    SinusoidTrajectory, 'generator_spec': dict, 'perturbation': dict}."""
    with open(os.path.join(world_dir, layout.WORLD_FILE)) as f:
        world = json.load(f)
    with np.load(os.path.join(world_dir, layout.GROUND_TRUTH_FILE)) as data:
        out = {k: data[k] for k in data.files}
    out["generator_spec"] = json.loads(str(out["generator_spec"]))
    out["perturbation"] = json.loads(str(out["perturbation"]))
    out["trajectory"] = SinusoidTrajectory.from_arrays(out, "trajectory")
    out["world"] = world
    return out


def world_generators(ground_truth: dict):
    """(prior generator, generator that rendered the video) of a world, from its stored spec."""
    spec, pert = ground_truth["generator_spec"], ground_truth["perturbation"]
    if spec.get("kind") == "dir":
        g, _ = resolve_generator(spec["path"])
    elif spec.get("kind") == "preset":
        g, _ = resolve_generator(spec["name"], spec["seed"])
    else:
        raise ValueError(f"the world's generator was given in memory ({spec}); it cannot be re-created")
    return g, perturb_generator(g, pert["amount"], pert["seed"])


# ----------------------------------------------------------------------------------------------------
# CLI.

NAME = "avatar_data.worlds.synthetic"


def _parse_formats(text: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip() and s.strip().lower() != "none"]
    bad = sorted(set(items) - set(EXTRA_FORMATS))
    if bad:
        raise argparse.ArgumentTypeError(f"unknown formats {bad}; known: {','.join(EXTRA_FORMATS)}")
    return items


_parse_formats.bad_values = ("pdf", "nerface,pdf")


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(NAME, description="Render a synthetic talking-head video of a hidden person (known latent subspace, "
                            "cameras, driving signals and novel views) from an EG3D generator.")
    p.add_argument("out_dir", type=cli.path, help="directory to create (must not exist or be empty; see --overwrite)")
    p.add_argument("--generator", required=True, type=cli.path,
                   help="generator directory (python -m convert_weights) or preset name with random weights "
                        "(tiny128, small512, ffhq512-128)")
    p.add_argument("--generator-seed", type=cli.seed, default=0, help="weight seed of a preset generator")
    p.add_argument("--frames", type=cli.int_in(2, limits.MAX_FRAMES), default=200, help="video length T")
    p.add_argument("--test-frames", type=cli.int_in(0, limits.MAX_FRAMES), default=None, help="held-out last frames (default 10%% of T)")
    p.add_argument("--subspace-dim", type=cli.int_in(1, 512), default=8, help="dimension of the hidden W+ subspace")
    p.add_argument("--seed", type=cli.seed, default=0, help="seed of the world (person, motion, signals, perturbation)")
    p.add_argument("--truncation-psi", type=cli.finite_float, default=0.7)
    p.add_argument("--direction-scale", type=cli.finite_float, default=0.25,
                   help="length of each basis direction in units of the prior's rms latent spread")
    p.add_argument("--novel-views", type=parse_novel_views, default=list(DEFAULT_NOVEL_VIEWS),
                   help="YAW:PITCH degree offsets from frontal, comma-separated, for the test frames "
                        "(default 20:0,-20:0,0:10,0:-10; 'none' for none; write --novel-views=-20:0 if the "
                        "list starts with a minus)")
    p.add_argument("--perturb", type=cli.non_negative_float, default=0.0,
                   help="render with a perturbed generator: params + PERTURB * std(param) * noise")
    p.add_argument("--extra-formats", type=_parse_formats, default=list(EXTRA_FORMATS),
                   help="also write the video in these layouts (default nerface,adnerf; 'none')")
    p.add_argument("--batch-size", type=cli.batch_size, default=8)
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it is an earlier synthetic world")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _main(args) -> int:
    layout.check_out_dir(args.out_dir, args.overwrite)
    t0 = time.perf_counter()
    generator, spec = resolve_generator(args.generator, args.generator_seed)
    load_s = time.perf_counter() - t0
    world = make_synthetic_world(
        generator, args.out_dir, num_frames=args.frames, num_test_frames=args.test_frames,
        subspace_dim=args.subspace_dim, seed=args.seed, truncation_psi=args.truncation_psi,
        direction_scale=args.direction_scale, novel_views=args.novel_views,
        perturb_generator_amount=args.perturb, extra_formats=args.extra_formats,
        batch_size=args.batch_size, generator_spec=spec, overwrite=args.overwrite, progress=not args.quiet)
    summary = {"out_dir": os.path.abspath(args.out_dir), "num_frames": world["num_frames"],
               "num_test_frames": world["num_test_frames"], "resolution": world["resolution"],
               "generator": world["generator"], "generator_load_s": round(load_s, 3),
               "timing_s": world["timing_s"]}
    cli.print_json(summary)


main = cli.entry_point(NAME, build_parser, _main)


if __name__ == "__main__":
    cli.exit(main())
