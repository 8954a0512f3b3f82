"""HFA-GP, audio-driven reenactment (paper Sec. 4.4, Table 3): the encoder reads [16, 29] speech features per
frame (AD-NeRF's `aud.npy`: DeepSpeech features, or the MFCCs of `avatar_data.audio_features`).

Variants (after ':'; see configs/common.py): paper (default), official (batch 1), cpu. AD-NeRF's attention
smoothing over 8 neighbouring frames starts at `schedule.audio_smoothing_start`: step 300k of 800k in official (the
official `nosmo_iters`), 75k of 200k in paper, never in cpu (-1) unless set.

Command (GPU/TPU, paper settings):
  python train.py --config=configs/audio.py --workdir=runs/audio --config.generator.path=gen/ffhq \
      --config.data.folder=PATH/TO/ADNERF_VIDEO --config.loss.lpips_weights=lpips_alex.npz
Hardware/runtime: one GPU with >= 16 GB; about a day per video for 200k steps.
Expected result: the paper's Table 3 (same-view PSNR/SSIM/LPIPS on held-out frames).
CPU: python -m hfagp.make_world --config=configs/audio.py:cpu --workdir=/tmp/audio, then
     python train.py --config=configs/audio.py:cpu --workdir=/tmp/audio (a few minutes on 2 cores).
"""

from configs.common import make_config


def get_config(variant: str = "paper"):
    return make_config("audio", variant)
