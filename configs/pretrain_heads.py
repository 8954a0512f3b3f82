"""Pretraining a miniature EG3D prior on the procedural head world (an auto-decoder, no GAN).

Command (what made pretrained/heads128/; resumable: rerun it to continue):
  python -m hfagp.pretrain --config=configs/pretrain_heads.py --workdir=runs/pretrain_heads
Hardware/runtime: 2 CPU cores, about 2.5 hours (data rendering ~18 min, 2000 steps at 2.4-3.6 s each); minutes
on a GPU. The shipped prior's run was resumed with this length at step 750 after starting with 6000 steps
(its provenance.json has the config it finished with), so its learning rate followed the 6000-step cosine
before step 750.
Expected result: held-out identities inverted in W+ from one frontal view reach novel-view (+-30 deg) PSNR
within 3 dB of their same-view PSNR (docs/results.md, "What the prior knows").
Variants: 'tiny' (a few steps on a handful of identities: tests and smoke runs).
"""

from __future__ import annotations

import ml_collections


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # Seed of the data rendering, the code initialisation, the batch order and the rendering jitter.
    c.seed = 0
    # Show a tqdm progress bar on stderr.
    c.progress_bar = True
    # Steps between logged training metrics.
    c.log_every = 25
    # Persistent XLA compilation cache ("" disables).
    c.compilation_cache_dir = "~/.cache/hfagp_jax/xla"

    c.generator = ml_collections.ConfigDict()
    # Architecture: a preset and overrides of its fields (eg3d_flax.GeneratorConfig).
    c.generator.preset = "tiny128"
    # StyleGAN2 backbone width at resolution r: min(channel_base / r, channel_max).
    c.generator.channel_base = 4096
    c.generator.channel_max = 64
    # Neural rendering resolution (the super-resolution module upsamples to 128).
    c.generator.neural_rendering_resolution = 32
    # Coarse + importance samples per ray.
    c.generator.depth_resolution = 12
    c.generator.depth_resolution_importance = 12
    # Weight seed of the initial generator.
    c.generator.init_seed = 0

    c.data = ml_collections.ConfigDict()
    # Where the rendered data set is cached (default WORKDIR/data); resumable shard by shard.
    c.data.dir = ""
    # Pretraining identities (seeds from avatar_data.worlds.heads.params.PRETRAIN_IDENTITY_SEED_START on).
    c.data.identities = 256
    # Scenes (one expression + head pose) per identity, and views per scene.
    c.data.scenes_per_identity = 6
    c.data.views_per_scene = 4
    # Image resolution (the generator's output resolution).
    c.data.resolution = 128

    c.validation = ml_collections.ConfigDict()
    # Held-out evaluation identities (never pretrained on) for early stopping: inverted from a frontal view.
    c.validation.identity_seeds = (990, 991, 992)
    # Yaw offsets (degrees) of the novel views scored after inversion.
    c.validation.novel_yaw_deg = (-30.0, 30.0)
    # Inversion steps and learning rate (W+, generator frozen).
    c.validation.invert_steps = 150
    c.validation.invert_lr = 0.02

    c.model = ml_collections.ConfigDict()
    # Initial standard deviation of the identity codes (W space); scene offsets start at zero.
    c.model.identity_code_std = 0.1
    # L2 penalty on the codes of a batch (keeps the code space compact, DeepSDF-style).
    c.model.code_penalty = 1e-3

    c.loss = ml_collections.ConfigDict()
    # Weights of the terms: final image L2, raw neural rendering L2 (against the frame on black), depth L1
    # on the foreground (world units), opacity L2 against the foreground mask.
    c.loss.image = 1.0
    c.loss.raw = 1.0
    c.loss.depth = 1.0
    c.loss.mask = 0.5

    c.optim = ml_collections.ConfigDict()
    # Adam learning rates of the generator and of the codes (cosine decay to `final_lr_fraction`).
    c.optim.generator_lr = 2e-3
    c.optim.code_lr = 1e-2
    c.optim.final_lr_fraction = 0.1
    # Scenes per batch, and views of each scene in the batch (views of one scene share its code).
    c.optim.scenes_per_batch = 2
    c.optim.views_per_scene = 2

    c.schedule = ml_collections.ConfigDict()
    # Training steps in all.
    c.schedule.total_steps = 2000
    # Steps between validations (inversion of the held-out identities) and checkpoints.
    c.schedule.eval_every = 500
    c.schedule.checkpoint_every = 250
    # Stop after this many validations without a better novel-view PSNR (the best generator is kept).
    c.schedule.patience = 3
    # Checkpoints kept.
    c.schedule.keep = 2

    c.export = ml_collections.ConfigDict()
    # Where the finished generator goes (default WORKDIR/generator), and its parameter storage dtype.
    c.export.dir = ""
    c.export.dtype = "bfloat16"
    # Steps fitting the mapping network to the distribution of scene codes (sliced Wasserstein).
    c.export.mapping_steps = 400

    if variant == "tiny":
        c.progress_bar = False
        c.generator.channel_base = 1024
        c.generator.channel_max = 32
        c.generator.neural_rendering_resolution = 16
        c.generator.depth_resolution = 6
        c.generator.depth_resolution_importance = 6
        c.data.identities = 3
        c.data.scenes_per_identity = 2
        c.data.views_per_scene = 2
        c.data.resolution = 128
        c.validation.identity_seeds = (990,)
        c.validation.invert_steps = 4
        c.schedule.total_steps = 6
        c.schedule.eval_every = 3
        c.schedule.checkpoint_every = 3
        c.log_every = 1
        c.export.mapping_steps = 5
    elif variant:
        raise ValueError(f"config variant must be '' or 'tiny', got {variant!r}")
    c.lock()
    return c
