"""Shared defaults of the HFA-GP configs. Paper and official-code values sit side by side
(`config.paper`, `config.official`); `variant` picks which set fills the live fields."""

from __future__ import annotations

import ml_collections

# Paper, Sec. 4.1 "Training details": Adam lr 3e-4 (0.9, 0.999), batch 2, lambda_lpips = 5,
# 200k iterations with the generator frozen for the first 50k, k = 50, 512x512 frames.
PAPER = dict(lpips_weight=5.0, lpips_net="alex", loss_resolution=512, total_steps=200_000,
             generator_tuning_start=50_000, batch_size=2, k=50, learning_rate=3e-4)
# bbaaii/HFA-GP code defaults: LPIPS(alex) with weight 1, loss on the 512 render average-pooled to
# 256 (and 256 frames), 800k iterations, tune_iter 50k, batch 2 (RGB) / 1 (3DMM, audio), k=50.
OFFICIAL = dict(lpips_weight=1.0, lpips_net="alex", loss_resolution=256, total_steps=800_000,
                generator_tuning_start=50_000, batch_size=2, k=50, learning_rate=3e-4)


ENCODER_DEFAULTS = {
    "rgb": {"input_size": 256, "nonlinear": False},
    "expression": {"nonlinear": False},
    "audio": {"nonlinear": False, "temporal_smoothing": False},
}


def base_config(encoder: str, variant: str) -> ml_collections.ConfigDict:
    if variant not in ("paper", "official", "cpu"):
        raise ValueError(f"config variant must be 'paper', 'official' or 'cpu', got {variant!r}")
    if encoder not in ENCODER_DEFAULTS:
        raise ValueError(f"encoder must be one of {sorted(ENCODER_DEFAULTS)}, got {encoder!r}")
    c = ml_collections.ConfigDict()
    c.paper = dict(PAPER)
    c.official = dict(OFFICIAL)
    values = dict(OFFICIAL if variant == "official" else PAPER)
    c.variant = variant
    c.seed = 0
    c.progress_bar = True
    c.log_every = 50
    c.eval_every = 5000
    c.compilation_cache_dir = "~/.cache/hfagp_jax/xla"  # persistent XLA cache ("" disables)

    c.generator = dict(
        path="",                 # converted generator dir (python -m convert_weights ffhq512-128.pkl DIR)
        preset="",               # or a preset with random weights ('tiny128', 'small512'; tests/CPU only)
        preset_seed=0,
        compute_dtype="float32", # 'bfloat16' for the backbone/SR convs on GPU/TPU
        remat="none",            # 'renderer' | 'full': recompute activations in backward (less memory)
        neural_rendering_resolution=0,   # 0: the checkpoint's (128 for ffhq512-128)
        render_deterministic=False,      # official training renders with stratified jitter + random u
    )
    c.data = dict(
        source="folder",         # 'folder' (eg3d / nerface / adnerf layouts, via tfds) or 'synthetic'
        folder="", format="eg3d", name="", reader_kwargs={}, prepared_dir="",
        resolution=512, test_fraction=0.1, num_test_frames=0, worker_count=2,
        synthetic=dict(dir="", frames=200, test_frames=20, subspace_dim=8, seed=0, perturb_generator=0.0),
    )
    c.model = dict(
        encoder=encoder, k=values["k"],
        orthogonality="qr",      # 'qr' (official) | 'penalty' | 'none' (paper ablation)
        orthogonality_penalty_weight=1.0,   # used by 'penalty' only
        prior_init="official",   # 'official' (offset = basis mean) | 'w_avg' (offset = generator w_avg)
        # Encoder options (see encoders/): nonlinear=False is the official "MLP" (linear layers with no
        # activation between them); True puts a leaky ReLU between the layers. Audio: temporal_smoothing
        # is AD-NeRF's attention over 8 neighbouring windows (off in the official code).
        encoder_kwargs=dict(ENCODER_DEFAULTS[encoder]),
        shared_prior_from="",    # workdir of a run whose basis is reused frozen ("shared between modalities")
    )
    c.loss = dict(lpips_weight=values["lpips_weight"], lpips_net=values["lpips_net"], lpips_weights="",
                  resolution=values["loss_resolution"])
    c.optim = dict(learning_rate=values["learning_rate"], b1=0.9, b2=0.999, eps=1e-8,
                   batch_size=values["batch_size"])
    c.schedule = dict(total_steps=values["total_steps"],
                      generator_tuning_start=values["generator_tuning_start"])
    c.checkpoint = dict(every=5000, keep=3)
    c.eval = dict(max_frames=64, batch_size=2, num_images=4, novel_views=6, basis_images=True,
                  basis_scale=10.0)
    c.distributed = dict(enabled=False, coordinator_address="", num_processes=0, process_id=-1,
                         cpu_collectives=False)
    c.debug = dict(nan_at_step=-1)   # fault injection for tests of the non-finite-loss guard
    if variant == "cpu":
        cpu_overrides(c)
    return c


def cpu_overrides(c: ml_collections.ConfigDict) -> None:
    """Small everything: a random tiny128 generator and a synthetic world made on first run."""
    c.generator.preset = "tiny128"
    c.generator.neural_rendering_resolution = 32
    c.data.source = "synthetic"
    c.data.resolution = 128
    c.data.worker_count = 0
    c.data.synthetic.frames = 60
    c.data.synthetic.test_frames = 8
    c.model.k = 8
    if c.model.encoder == "rgb":
        c.model.encoder_kwargs = {"input_size": 32, "channel_base": 512, "channel_max": 64, "nonlinear": False}
    c.loss.lpips_weight = 0.0   # no LPIPS weights ship with the library; see README
    c.loss.resolution = 128
    c.optim.learning_rate = 1e-3
    c.schedule.total_steps = 200
    c.schedule.generator_tuning_start = 150
    c.log_every = 10
    c.eval_every = 50
    c.checkpoint.every = 50
    c.eval.max_frames = 8
    c.eval.novel_views = 4
    c.eval.basis_scale = 3.0
