"""HFA-GP, 3DMM-expression-driven reenactment (paper Sec. 4.3, Table 2): the encoder reads 76 expression
coefficients per frame (NeRFACE's layout, or the landmark-PCA coefficients of `avatar_data.prepare`).

Variants (after ':'; see configs/common.py): paper (default), official (batch 1), cpu.

Command (GPU/TPU, paper settings):
  python train.py --config=configs/expression.py --workdir=runs/expression --config.generator.path=gen/ffhq \
      --config.data.folder=PATH/TO/NERFACE_VIDEO --config.data.format=nerface \
      --config.loss.lpips_weights=lpips_alex.npz
Hardware/runtime: one GPU with >= 16 GB; about a day per video for 200k steps.
Expected result: the paper's Table 2 (same-view PSNR/SSIM/LPIPS on held-out frames).
CPU: python -m hfagp.make_world --config=configs/expression.py:cpu --workdir=/tmp/expression, then
     python train.py --config=configs/expression.py:cpu --workdir=/tmp/expression (a few minutes on 2 cores).
"""

from configs.common import make_config


def get_config(variant: str = "paper"):
    return make_config("expression", variant)
