"""What a training program shows while it runs: TensorBoard scalars/images (tensorboardX, no TensorFlow) and a
progress bar."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from hfagp import workdir as workdir_lib


class SummaryWriter:
    """TensorBoard event files under <workdir>/tensorboard (process 0 only; a no-op elsewhere)."""

    def __init__(self, workdir: Path, enabled: bool = True):
        self._writer = None
        if enabled:
            from tensorboardX import SummaryWriter as _Writer

            self._writer = _Writer(str(Path(workdir) / workdir_lib.TENSORBOARD_DIR))

    def scalars(self, step: int, values: dict) -> None:
        if self._writer is not None:
            for k, v in values.items():
                self._writer.add_scalar(k, float(v), step)

    def image(self, step: int, tag: str, image_uint8: np.ndarray) -> None:
        if self._writer is not None:
            self._writer.add_image(tag, image_uint8, step, dataformats="HWC")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class ProgressBar:
    """tqdm over training steps with the latest loss, PSNR (and LPIPS) and steps/s; silent when disabled."""

    def __init__(self, total: int, start: int, enabled: bool):
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, file=sys.stderr,
                             smoothing=0.1)
        self._last = start

    def update(self, step: int, metrics: dict, rate: float) -> None:
        if self._bar is None:
            return
        self._bar.update(step - self._last)
        self._last = step
        post = {"loss": f"{metrics['loss']:.4f}", "psnr": f"{metrics['psnr']:.2f}", "it/s": f"{rate:.2f}"}
        if "lpips" in metrics:
            post["lpips"] = f"{metrics['lpips']:.4f}"
        self._bar.set_postfix(post, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
