"""The one base of every HFA-GP training config, and the variants derived from it.

`base_config(encoder)` holds the paper's settings (Sec. 4.1 "Training details": Adam lr 3e-4, batch 2,
lambda_lpips = 5, 200k iterations with the generator frozen for the first 50k, k = 50, 512x512 frames).
Variants override it:
  official   bbaaii/HFA-GP's code defaults: LPIPS-alex weight 1, loss on the 512 render average-pooled to
             256, 800k iterations (generator tuned from 50k); batch 1 for the 3DMM and audio trainers; audio:
             AD-NeRF's attention smoothing from step 300k (`nosmo_iters`)
  cpu        a few minutes on 2 CPU cores: a random tiny128 generator, 32x32 neural rendering, a synthetic
             world (made first by `python -m hfagp.make_world` with the same flags), k = 8, 200 steps (generator
             tuned from step 150), L2 only, no audio smoothing
  demo       the README's main job: the cpu variant on the shipped head-world prior (pretrained/heads128) and a
             head-world video of an unseen identity, made first by `python -m hfagp.make_world` (about 10 minutes
             on 2 cores; scripts/demo.sh runs both)
"""

from __future__ import annotations

from pathlib import Path

import ml_collections

from hfagp_common.config_schema import Bool, Choice, Float, Int, Mapping, PowerOfTwo, Relation, Text
from hfagp_common.limits import MAX_BATCH, MAX_FRAMES, MAX_RESOLUTION, MAX_SEED, MAX_STEPS

VARIANTS = ("paper", "official", "cpu", "demo")
# The shipped head-world prior (configs/pretrain_heads.py made it).
PRETRAINED_HEADS = str(Path(__file__).resolve().parents[1] / "pretrained" / "heads128")

# Encoder options per kind (see encoders/). nonlinear=False is the official "MLP" (linear layers with no
# activation between them); True puts a leaky ReLU between the layers. The audio encoder's AD-NeRF attention
# over 8 neighbouring windows is switched on by schedule.audio_smoothing_start.
ENCODER_DEFAULTS = {
    "rgb": {"input_size": 256, "nonlinear": False},
    "expression": {"nonlinear": False},
    "audio": {"nonlinear": False},
}
# The official audio trainer's `nosmo_iters` of its 800k iterations, and the paper's 200k scaled alike.
OFFICIAL_AUDIO_SMOOTHING_START = 300_000
PAPER_AUDIO_SMOOTHING_START = 75_000


def base_config(encoder: str) -> ml_collections.ConfigDict:
    """The paper's settings for `encoder` in {'rgb', 'expression', 'audio'}."""
    if encoder not in ENCODER_DEFAULTS:
        raise ValueError(f"encoder must be one of {sorted(ENCODER_DEFAULTS)}, got {encoder!r}")
    c = ml_collections.ConfigDict()
    # Seed of the parameter initialisation, the data order and the per-step rendering jitter.
    c.seed = 0
    # Show a tqdm progress bar on stderr.
    c.progress_bar = True
    # Steps between logged training metrics (metrics.jsonl, TensorBoard).
    c.log_every = 50
    # Steps between in-training evaluations on held-out frames (and sample pictures).
    c.eval_every = 5000
    # Persistent XLA compilation cache: restarts load compiled steps instead of recompiling ("" disables).
    c.compilation_cache_dir = "~/.cache/hfagp_jax/xla"
    # Float32 matmul/conv precision of the whole program (encoder, generator, loss; hfagp/precision.py):
    # 'highest' (true float32, as the official EG3D training loop: TF32 off) | 'tf32' (GPU tensor cores)
    # | 'default' (the backend's choice: TF32 on Ampere+ GPUs, bfloat16 passes on TPUs). CPUs ignore it.
    c.precision = "highest"

    c.generator = ml_collections.ConfigDict()
    # A converted generator directory (python -m convert_weights ffhqrebalanced512-128.pkl DIR: the checkpoint the
    # official code fine-tunes; ffhq512-128.pkl, the same architecture without the pose rebalancing, also works).
    c.generator.path = ""
    # Or a preset with random weights ('tiny128', 'small512', 'ffhq512-128'; tests and CPU runs only).
    c.generator.preset = ""
    # Weight seed of a random preset.
    c.generator.preset_seed = 0
    # Dtype of the backbone and super-resolution convolutions: 'float32' or 'bfloat16' (GPU/TPU).
    c.generator.compute_dtype = "float32"
    # Recompute activations in the backward pass: 'none' | 'renderer' | 'full' (less memory, same values).
    c.generator.remat = "none"
    # Convolution weight-gradient kernel: 'auto' (per backend) | 'xla' | 'cpu_gemm' (conv_kernels/).
    c.generator.conv_impl = "auto"
    # Stride-2 transposed convolution kernel: 'auto' (per backend) | 'xla' | 'polyphase'.
    c.generator.upconv_impl = "auto"
    # Neural rendering resolution; 0 keeps the checkpoint's (128 for ffhqrebalanced512-128 and ffhq512-128).
    c.generator.neural_rendering_resolution = 0
    # True renders without stratified jitter; the official training renders with it.
    c.generator.render_deterministic = False

    c.data = ml_collections.ConfigDict()
    # 'folder' (a user's dataset folder or video), 'synthetic' (a world an EG3D generator renders) or 'heads'
    # (a procedural head-world video of an unseen identity); the last two are made by `python -m hfagp.make_world`
    # with the training flags before train.py (loading never makes them).
    c.data.source = "folder"
    # The dataset folder (data.source='folder'), or a video file (prepared once by avatar_data.prepare).
    c.data.folder = ""
    # Its layout: 'eg3d' | 'nerface' | 'adnerf' (avatar_data/README.md).
    c.data.format = "eg3d"
    # Name of the prepared tfds dataset (default: from the folder name).
    c.data.name = ""
    # Extra keyword arguments of the layout's reader (avatar_data.formats).
    c.data.reader_kwargs = {}
    # Where the prepared dataset goes (default: WORKDIR/prepared_data).
    c.data.prepared_dir = ""
    # Frame resolution after preparation; must equal the generator's image resolution.
    c.data.resolution = 512
    # Held-out fraction (the last frames in time order), unless num_test_frames is set.
    c.data.test_fraction = 0.1
    # Number of held-out last frames (0: use test_fraction).
    c.data.num_test_frames = 0
    # grain worker processes reading training batches (0: in the training process).
    c.data.worker_count = 2
    # A video file's preparation: output frame rate and background ('keep', or 'white' with segmentation).
    c.data.video_fps = 25.0
    c.data.video_background = "keep"
    c.data.synthetic = ml_collections.ConfigDict()
    # The world directory (default: WORKDIR/synthetic_world; `python -m hfagp.make_world` makes it).
    c.data.synthetic.dir = ""
    # Frames of the world `python -m hfagp.make_world` makes, of which the last test_frames are held out.
    c.data.synthetic.frames = 200
    c.data.synthetic.test_frames = 20
    # Dimension of the made world's hidden W+ subspace.
    c.data.synthetic.subspace_dim = 8
    # Seed of the made world.
    c.data.synthetic.seed = 0
    # Render the made world with a perturbed generator (a person slightly outside the prior).
    c.data.synthetic.perturb_generator = 0.0
    c.data.heads = ml_collections.ConfigDict()
    # The head world (default: WORKDIR/head_world; `python -m hfagp.make_world` makes it, by avatar_data.worlds.heads).
    c.data.heads.dir = ""
    # Identity seed of the made world: an evaluation identity (0..999), never seen by the shipped prior.
    c.data.heads.seed = 7
    # Frames (25 fps) of the made world, of which the last test_frames are held out.
    c.data.heads.frames = 150
    c.data.heads.test_frames = 15

    c.model = ml_collections.ConfigDict()
    # Driving signal: 'rgb' (frames), 'expression' (3DMM coefficients) or 'audio' (speech features).
    c.model.encoder = encoder
    # Number of basis vectors of the personalized prior.
    c.model.k = 50
    # 'qr' (official: orthonormalised every step) | 'penalty' (soft) | 'none' (the paper's ablation).
    c.model.orthogonality = "qr"
    # Weight of the orthogonality penalty ('penalty' only).
    c.model.orthogonality_penalty_weight = 1.0
    # 'official' (offset = mean of the random basis) | 'w_avg' (offset = the generator's w_avg).
    c.model.prior_init = "official"
    # Options of the encoder (see ENCODER_DEFAULTS).
    c.model.encoder_kwargs = dict(ENCODER_DEFAULTS[encoder])
    # Workdir of a run whose basis is reused, frozen ("shared between modalities").
    c.model.shared_prior_from = ""

    c.loss = ml_collections.ConfigDict()
    # lambda of the LPIPS term (0: L2 only).
    c.loss.lpips_weight = 5.0
    # LPIPS backbone: 'alex' or 'vgg'.
    c.loss.lpips_net = "alex"
    # LPIPS weights npz (python -m convert_weights.lpips; none ship with the project).
    c.loss.lpips_weights = ""
    # Resolution the loss compares images at (the render and the frame are area-averaged to it).
    c.loss.resolution = 512
    # Extra weight of the face in the L2 term: pixels in boxes about the mouth and the eyes (from the frames'
    # face points: a head world's, or a prepared video's tracked landmarks) count 1 + face_weight times (0: off).
    c.loss.face_weight = 0.0

    c.optim = ml_collections.ConfigDict()
    # Adam learning rate and moments (all groups).
    c.optim.learning_rate = 3e-4
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    # Global batch size (split over all devices of all processes).
    c.optim.batch_size = 2

    c.schedule = ml_collections.ConfigDict()
    # Training steps in all.
    c.schedule.total_steps = 200_000
    # First step that tunes the generator (stage 2); >= total_steps never tunes it.
    c.schedule.generator_tuning_start = 50_000
    # Audio encoder: first step whose forward uses AD-NeRF's attention smoothing over neighbouring frames (the
    # attention net's params are untouched before it and get a fresh Adam there; runs that reached it render
    # with it); -1 (or >= total_steps): never. Official: 300k of 800k (`nosmo_iters`); here scaled to 200k.
    c.schedule.audio_smoothing_start = PAPER_AUDIO_SMOOTHING_START if encoder == "audio" else -1

    c.checkpoint = ml_collections.ConfigDict()
    # Steps between checkpoints (also written at the end and when stopped by a signal).
    c.checkpoint.every = 5000
    # Checkpoints kept.
    c.checkpoint.keep = 3
    # Config keys (comma-separated; a section name covers its keys; '*' any) that may differ from the run's
    # config.json when resuming, besides the always-safe ones (hfagp/train/resume.py: run length, logging,
    # evaluation, checkpointing, progress, cache, addresses). Any other change is refused, naming the keys.
    c.checkpoint.resume_allow_changes = ""

    c.eval = ml_collections.ConfigDict()
    # Held-out frames rendered at each in-training evaluation (0: no evaluation).
    c.eval.max_frames = 64
    # Frames per rendering batch.
    c.eval.batch_size = 2
    # Reconstructions shown in the sample pictures.
    c.eval.num_images = 4
    # Novel views of the first held-out frame in the sample pictures (a yaw sweep of +-30 degrees).
    c.eval.novel_views = 6
    # Render one image per basis vector (offset + basis_scale * row).
    c.eval.basis_images = True
    c.eval.basis_scale = 10.0

    c.distributed = ml_collections.ConfigDict()
    # Multi-process training (jax.distributed): enable and give the coordinator and this process's id.
    c.distributed.enabled = False
    c.distributed.coordinator_address = ""
    c.distributed.num_processes = 0
    c.distributed.process_id = -1
    # Gloo collectives for CPU-only hosts.
    c.distributed.cpu_collectives = False

    c.debug = ml_collections.ConfigDict()
    # Fault injection for the tests of the non-finite-loss guard: a NaN batch at this step (-1: never).
    c.debug.nan_at_step = -1
    return c


# What every field of `base_config` may hold (hfagp_common.config_schema; checked before any work, and on a
# workdir's config.json read back). The choices are the library's (tests/configs check they agree).
SCHEMA = {
    "seed": Int(0, MAX_SEED),
    "progress_bar": Bool(),
    "log_every": Int(1, MAX_STEPS),
    "eval_every": Int(1, MAX_STEPS),
    "compilation_cache_dir": Text(path=True),
    "precision": Choice("highest", "tf32", "default"),
    "generator.path": Text(path=True),
    "generator.preset": Choice("", "tiny128", "small512", "ffhq512-128", "heads128"),
    "generator.preset_seed": Int(0, MAX_SEED),
    "generator.compute_dtype": Choice("float32", "bfloat16"),
    "generator.remat": Choice("none", "renderer", "full"),
    "generator.conv_impl": Choice("auto", "xla", "cpu_gemm"),
    "generator.upconv_impl": Choice("auto", "xla", "polyphase"),
    # 0: the checkpoint's.
    "generator.neural_rendering_resolution": Int(0, MAX_RESOLUTION),
    "generator.render_deterministic": Bool(),
    "data.source": Choice("synthetic", "heads", "folder"),
    "data.folder": Text(path=True),
    "data.format": Choice("eg3d", "nerface", "adnerf"),
    "data.name": Text(),
    "data.reader_kwargs": Mapping(),
    "data.prepared_dir": Text(path=True),
    "data.resolution": PowerOfTwo(32, MAX_RESOLUTION),
    "data.test_fraction": Float(0.0, 1.0, lo_open=True, hi_open=True),
    "data.num_test_frames": Int(0, MAX_FRAMES),
    "data.worker_count": Int(0, 64),
    "data.video_fps": Float(0.0, 240.0, lo_open=True),
    "data.video_background": Choice("keep", "white"),
    "data.synthetic.dir": Text(path=True),
    "data.synthetic.frames": Int(2, MAX_FRAMES),
    "data.synthetic.test_frames": Int(1, MAX_FRAMES),
    "data.synthetic.subspace_dim": Int(1, 512),
    "data.synthetic.seed": Int(0, MAX_SEED),
    "data.synthetic.perturb_generator": Float(0.0, 10.0),
    "data.heads.dir": Text(path=True),
    # avatar_data.worlds.heads.params.EVALUATION_IDENTITY_SEEDS
    "data.heads.seed": Int(0, 999),
    "data.heads.frames": Int(2, MAX_FRAMES),
    "data.heads.test_frames": Int(1, MAX_FRAMES),
    "model.encoder": Choice("rgb", "expression", "audio"),
    # The basis lives in W+ (num_ws * w_dim = 7168 for EG3D at 512); a larger k is also checked against the generator.
    "model.k": Int(1, 7168),
    "model.orthogonality": Choice("qr", "penalty", "none"),
    "model.orthogonality_penalty_weight": Float(0.0, 1e6),
    "model.prior_init": Choice("official", "w_avg"),
    "model.encoder_kwargs": Mapping(),
    "model.shared_prior_from": Text(path=True),
    "loss.lpips_weight": Float(0.0, 1e4),
    "loss.lpips_net": Choice("alex", "vgg"),
    "loss.lpips_weights": Text(path=True),
    "loss.resolution": PowerOfTwo(16, MAX_RESOLUTION),
    "loss.face_weight": Float(0.0, 1e6),
    "optim.learning_rate": Float(0.0, 10.0, lo_open=True),
    "optim.b1": Float(0.0, 1.0, hi_open=True),
    "optim.b2": Float(0.0, 1.0, hi_open=True),
    "optim.eps": Float(0.0, 1.0, lo_open=True),
    "optim.batch_size": Int(1, MAX_BATCH),
    "schedule.total_steps": Int(1, MAX_STEPS),
    "schedule.generator_tuning_start": Int(0, MAX_STEPS),
    "schedule.audio_smoothing_start": Int(-1, MAX_STEPS),
    "checkpoint.every": Int(1, MAX_STEPS),
    "checkpoint.keep": Int(1, 1000),
    "checkpoint.resume_allow_changes": Text(),
    "eval.max_frames": Int(0, MAX_FRAMES),
    "eval.batch_size": Int(1, MAX_BATCH),
    "eval.num_images": Int(0, 64),
    "eval.novel_views": Int(0, 64),
    "eval.basis_images": Bool(),
    "eval.basis_scale": Float(-1e3, 1e3),
    "distributed.enabled": Bool(),
    "distributed.coordinator_address": Text(),
    "distributed.num_processes": Int(0, 4096),
    "distributed.process_id": Int(-1, 4095),
    "distributed.cpu_collectives": Bool(),
    "debug.nan_at_step": Int(-1, MAX_STEPS),
}

RELATIONS = (
    Relation(("data.synthetic.test_frames", "data.synthetic.frames"), lambda test, frames: test < frames,
             "data.synthetic.test_frames must be fewer than data.synthetic.frames"),
    Relation(("data.heads.test_frames", "data.heads.frames"), lambda test, frames: test < frames,
             "data.heads.test_frames must be fewer than data.heads.frames"),
    Relation(("loss.resolution", "data.resolution"), lambda loss, data: loss <= data and data % loss == 0,
             "loss.resolution must divide data.resolution"),
    Relation(("generator.neural_rendering_resolution", "data.resolution"),
             lambda nrr, data: nrr == 0 or (nrr <= data and data % nrr == 0 and nrr & (nrr - 1) == 0),
             "generator.neural_rendering_resolution must be 0 (the checkpoint's) or a power of two dividing "
             "data.resolution"),
    Relation(("generator.path", "generator.preset"), lambda path, preset: bool(path) or bool(preset),
             "set generator.path to a converted EG3D checkpoint (python -m convert_weights "
             "ffhqrebalanced512-128.pkl DIR), or generator.preset to a random-weight preset for testing"),
    Relation(("distributed.enabled", "distributed.num_processes", "distributed.process_id",
              "distributed.coordinator_address"),
             lambda on, n, i, address: not on or (n >= 1 and 0 <= i < n and bool(address.strip())),
             "distributed.enabled needs distributed.coordinator_address, num_processes >= 1 and "
             "0 <= process_id < num_processes"),
)


def official(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """bbaaii/HFA-GP's code defaults."""
    c.loss.lpips_weight = 1.0
    c.loss.resolution = 256
    c.schedule.total_steps = 800_000
    if c.model.encoder in ("expression", "audio"):
        c.optim.batch_size = 1  # trainer_3dmm / trainer_audio default
    if c.model.encoder == "audio":
        c.schedule.audio_smoothing_start = OFFICIAL_AUDIO_SMOOTHING_START
    return c


def cpu(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Small everything: a random tiny128 generator and a synthetic world (`python -m hfagp.make_world`)."""
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
    c.loss.lpips_weight = 0.0   # no LPIPS weights ship with the library
    c.loss.resolution = 128
    c.optim.learning_rate = 1e-3
    c.schedule.total_steps = 200
    c.schedule.generator_tuning_start = 150
    c.schedule.audio_smoothing_start = -1
    c.log_every = 10
    c.eval_every = 50
    c.checkpoint.every = 50
    c.eval.max_frames = 8
    c.eval.novel_views = 4
    c.eval.basis_scale = 3.0
    return c


def demo(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The cpu variant on the shipped head prior and a head-world video of an unseen identity."""
    cpu(c)
    c.generator.preset = ""
    c.generator.path = PRETRAINED_HEADS
    c.generator.neural_rendering_resolution = 0
    c.data.source = "heads"
    c.model.prior_init = "w_avg"      # the prior's w_avg is its average person
    c.schedule.total_steps = 300
    c.schedule.generator_tuning_start = 200
    c.eval_every = 100
    c.checkpoint.every = 100
    c.eval.max_frames = 15
    c.eval.novel_views = 6
    return c


def override(config: ml_collections.ConfigDict, changes) -> ml_collections.ConfigDict:
    """`config` with `changes` ({dotted key: value}, e.g. {'schedule.total_steps': 30}) set in place; returns it."""
    for key, value in dict(changes).items():
        node = config
        *path, last = key.split(".")
        for part in path:
            node = node[part]
        node[last] = value
    return config


def make_config(encoder: str, variant: str) -> ml_collections.ConfigDict:
    """The locked config of `encoder` in `variant` ('' means 'paper')."""
    variant = variant or "paper"
    if variant not in VARIANTS:
        raise ValueError(f"config variant must be one of {VARIANTS}, got {variant!r}")
    c = base_config(encoder)
    if variant == "official":
        official(c)
    elif variant == "cpu":
        cpu(c)
    elif variant == "demo":
        demo(c)
    if encoder == "audio" and c.data.source == "folder":
        c.data.format = "adnerf"  # AD-NeRF's layout carries aud.npy
    c.lock()
    return c
