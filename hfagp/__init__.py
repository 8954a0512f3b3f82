"""HFA-GP (CVPR 2023) on JAX: a personalized generative prior inside a pretrained EG3D, learned from one video.

  hfagp.model       encoder + personalized prior (`AvatarModel`), the generator a config names
  hfagp.datasets    the data a config names (a world with ground truth, or a prepared folder)
  hfagp.metrics     PSNR, SSIM, LPIPS distance, principal angles (shared by training and evaluation)
  hfagp.lpips       the LPIPS network
  hfagp.workdir     a run's directory layout; config, checkpoint steps and params read back
  hfagp.inference   a trained run loaded for inference (`load_trained`)
  hfagp.runtime     what the training programs share: train state and step, checkpoints, summaries, stopping
  hfagp.train       training (behind `train.py`)
  hfagp.eval        evaluation and the PTI baseline (`python -m hfagp.eval`)
  hfagp.render      videos, images and meshes (`python -m hfagp.render`)

Imports run one way: train, eval and render use the modules above them and never each other; pretrain and
train share only what `hfagp.runtime` holds.
"""
