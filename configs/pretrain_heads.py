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

from hfagp_common.config_schema import Bool, Choice, Float, Int, PowerOfTwo, Relation, Seq, Text
from hfagp_common.limits import MAX_BATCH, MAX_IDENTITIES, MAX_RESOLUTION, MAX_SEED, MAX_STEPS


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
    # How a scene's W code is made: 'scene', a free code per identity plus a free offset per scene; 'params', a
    # code map (an MLP shared by every scene) of the scene's world parameters (identity vector and expression).
    c.model.code = "scene"
    # The code map's hidden layers and their width ('params' only).
    c.model.code_map_layers = 2
    c.model.code_map_width = 256
    # Initial standard deviation of the identity codes (W space; scene offsets start at zero), or of the code
    # map's first codes.
    c.model.identity_code_std = 0.1
    # L2 penalty on the codes of a batch (keeps the code space compact, DeepSDF-style).
    c.model.code_penalty = 1e-3

    c.loss = ml_collections.ConfigDict()
    # Weights of the terms: final image distance, raw neural rendering L2 (against the frame on black), depth L1
    # on the foreground (world units), opacity L2 against the foreground mask.
    c.loss.image = 1.0
    # The final image's distance: 'l2' (squared error) or 'l1' (absolute error).
    c.loss.image_distance = "l2"
    # Weight of the L1 of the final image error's differences between neighbouring pixels (0: off).
    c.loss.gradient = 0.0
    c.loss.raw = 1.0
    c.loss.depth = 1.0
    c.loss.mask = 0.5
    # Extra weight of the face's pixels (eyes, lids, brows, lips, mouth, nose from the data set's part labels)
    # in the image and raw terms: a face pixel counts 1 + face_weight times (0: every pixel alike).
    c.loss.face_weight = 0.0

    c.optim = ml_collections.ConfigDict()
    # Adam learning rates of the generator and of the codes or the code map (cosine decay to `final_lr_fraction`).
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
    # Stop (checkpointed; rerun to continue) after this many hours of the training stage (validations included)
    # in one invocation (0: no limit).
    c.schedule.stop_after_hours = 0.0

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


# What every field may hold (hfagp_common.config_schema; checked before the data set is rendered).
SCHEMA = {
    "seed": Int(0, MAX_SEED),
    "progress_bar": Bool(),
    "log_every": Int(1, MAX_STEPS),
    "compilation_cache_dir": Text(path=True),
    "generator.preset": Choice("tiny128", "small512", "ffhq512-128", "heads128"),
    "generator.channel_base": PowerOfTwo(64, 65536),
    "generator.channel_max": Int(1, 1024),
    "generator.neural_rendering_resolution": PowerOfTwo(8, 512),
    "generator.depth_resolution": Int(2, 256),
    "generator.depth_resolution_importance": Int(0, 256),
    "generator.init_seed": Int(0, MAX_SEED),
    "data.dir": Text(path=True),
    "data.identities": Int(1, MAX_IDENTITIES),
    "data.scenes_per_identity": Int(1, 1000),
    "data.views_per_scene": Int(1, 100),
    "data.resolution": PowerOfTwo(32, MAX_RESOLUTION),
    # avatar_data.worlds.heads.params.EVALUATION_IDENTITY_SEEDS
    "validation.identity_seeds": Seq(Int(0, 999), 1, 1000),
    "validation.novel_yaw_deg": Seq(Float(-89.0, 89.0), 0, 64),
    "validation.invert_steps": Int(1, 100_000),
    "validation.invert_lr": Float(0.0, 10.0, lo_open=True),
    "model.code": Choice("scene", "params"),
    "model.code_map_layers": Int(0, 16),
    "model.code_map_width": Int(1, 65536),
    "model.identity_code_std": Float(0.0, 100.0),
    "model.code_penalty": Float(0.0, 1e6),
    "loss.image": Float(0.0, 1e6),
    "loss.image_distance": Choice("l2", "l1"),
    "loss.gradient": Float(0.0, 1e6),
    "loss.raw": Float(0.0, 1e6),
    "loss.depth": Float(0.0, 1e6),
    "loss.mask": Float(0.0, 1e6),
    "loss.face_weight": Float(0.0, 1e6),
    "optim.generator_lr": Float(0.0, 10.0, lo_open=True),
    "optim.code_lr": Float(0.0, 10.0, lo_open=True),
    "optim.final_lr_fraction": Float(0.0, 1.0),
    "optim.scenes_per_batch": Int(1, MAX_BATCH),
    "optim.views_per_scene": Int(1, 100),
    "schedule.total_steps": Int(1, MAX_STEPS),
    "schedule.eval_every": Int(1, MAX_STEPS),
    "schedule.checkpoint_every": Int(1, MAX_STEPS),
    "schedule.patience": Int(1, 10_000),
    "schedule.keep": Int(1, 1000),
    "schedule.stop_after_hours": Float(0.0, 1e4),
    "export.dir": Text(path=True),
    "export.dtype": Choice("float32", "bfloat16"),
    "export.mapping_steps": Int(0, 1_000_000),
}

RELATIONS = (
    Relation(("optim.views_per_scene", "data.views_per_scene"), lambda batch, data: batch <= data,
             "optim.views_per_scene must be at most data.views_per_scene"),
    Relation(("optim.scenes_per_batch", "data.identities", "data.scenes_per_identity"),
             lambda batch, identities, scenes: batch <= identities * scenes,
             "optim.scenes_per_batch must be at most the data set's scenes (data.identities x "
             "data.scenes_per_identity)"),
    Relation(("generator.neural_rendering_resolution", "data.resolution"),
             lambda nrr, data: nrr <= data and data % nrr == 0,
             "generator.neural_rendering_resolution must divide data.resolution"),
    Relation(("generator.preset", "data.resolution"),
             lambda preset, data: data == (128 if preset in ("tiny128", "heads128") else 512),
             "data.resolution must be the preset's image resolution (128 for tiny128 and heads128, 512 otherwise)"),
)
