"""HFA-GP, RGB-driven reconstruction (paper Sec. 3.3, Table 1): the encoder reads the frame itself.

Variants (after ':'; see configs/common.py): paper (default), official, cpu.

Command (GPU/TPU, paper settings):
  python -m convert_weights ffhqrebalanced512-128.pkl gen/ffhq
  python train.py --config=configs/rgb.py --workdir=runs/rgb --config.generator.path=gen/ffhq \
      --config.data.folder=PATH/TO/VIDEO --config.loss.lpips_weights=lpips_alex.npz
Hardware/runtime: one GPU with >= 16 GB; the PyTorch original takes about a day per video on a V100 for
200k steps.
Expected result (paper Table 1): same-view PSNR 34.70, SSIM 0.979, LPIPS 0.024 on held-out frames.
CPU: python -m hfagp.make_world --config=configs/rgb.py:cpu --workdir=/tmp/rgb, then
     python train.py --config=configs/rgb.py:cpu --workdir=/tmp/rgb (about 4 minutes on 2 cores; held-out
PSNR from ~2 dB to ~28 dB on the synthetic world).
"""

from configs.common import make_config


def get_config(variant: str = "paper"):
    return make_config("rgb", variant)
