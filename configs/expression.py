"""HFA-GP, 3DMM-expression-driven reenactment (paper Sec. 4.3, Table 2).

Variants (the part after ':'):
  (none) / paper   the paper's settings: 512x512, 200k steps, generator tuned from 50k, k=50, lambda_lpips=5.
  official         the official code's defaults (LPIPS-alex weight 1, loss at 256, 800k steps).
  cpu              small CPU run on a synthetic world with a random tiny128 generator (minutes on 2 cores).

Command (GPU/TPU, paper settings):
  python -m convert_weights ffhq512-128.pkl gen/ffhq512-128
  python train.py --config=configs/expression.py --workdir=runs/expression \
      --config.generator.path=gen/ffhq512-128 --config.data.folder=PATH/TO/VIDEO \
      --config.loss.lpips_weights=lpips_alex.npz
Hardware/runtime: one 80 GB GPU; the PyTorch original takes ~1 day per video on a V100 for 200k steps.
Expected result (paper Table 1-3 protocol): same-view PSNR ~30-35 dB on held-out frames.
CPU: python train.py --config=configs/expression.py:cpu --workdir=/tmp/expression (about 5-10 minutes on 2 cores; held-out
PSNR rises by several dB over the initial state on the synthetic world).
"""

from configs.common import base_config


def get_config(variant: str = "paper"):
    variant = variant or "paper"
    config = base_config("expression", variant)
    if variant == "official":
        config.optim.batch_size = 1  # trainer_3dmm default
    config.lock()
    return config
