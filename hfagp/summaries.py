"""Progress bar, TensorBoard scalars/images (tensorboardX, no TensorFlow) and in-training evaluation."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Callable

import jax
import numpy as np


def to_uint8(images) -> np.ndarray:
    """[..., 3] float in [-1, 1] -> uint8."""
    return np.clip((np.asarray(images, np.float32) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)


def image_grid(images: np.ndarray, columns: int) -> np.ndarray:
    """[N,H,W,C] -> one [rows*H, columns*W, C] image (blank cells padded)."""
    n, h, w, c = images.shape
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * h, columns * w, c), images.dtype)
    for i, img in enumerate(images):
        r, col = divmod(i, columns)
        grid[r * h:(r + 1) * h, col * w:(col + 1) * w] = img
    return grid


def save_png(path: Path, image_uint8: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_uint8).save(path)


class SummaryWriter:
    """TensorBoard event files under <workdir>/tensorboard (process 0 only)."""

    def __init__(self, workdir: Path, enabled: bool = True):
        self._writer = None
        if enabled:
            from tensorboardX import SummaryWriter as _Writer

            self._writer = _Writer(str(Path(workdir) / "tensorboard"))

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


class _Bar:
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


def progress_bar(total: int, start: int, enabled: bool) -> _Bar:
    return _Bar(total, start, enabled)


def frontal_camera() -> np.ndarray:
    """EG3D's canonical frontal camera (radius 2.7 looking at the pivot, FFHQ intrinsics) as a [25] label."""
    from avatar_data import cameras

    return cameras.eg3d_label(cameras.lookat_cam2world(math.pi / 2, math.pi / 2),
                              cameras.fov_to_intrinsics(18.837)).astype(np.float32)


def orbit_cameras(n: int, yaw_range_deg: float = 30.0, pitch_deg: float = 0.0) -> np.ndarray:
    """[n, 25] cameras on a yaw sweep around the frontal view."""
    from avatar_data import cameras

    yaws = np.deg2rad(np.linspace(-yaw_range_deg, yaw_range_deg, n)) + math.pi / 2
    pitch = math.pi / 2 + np.deg2rad(pitch_deg)
    intr = cameras.fov_to_intrinsics(18.837)
    return np.stack([cameras.eg3d_label(cameras.lookat_cam2world(y, pitch), intr) for y in yaws]).astype(np.float32)


def _local_copy(array: jax.Array) -> np.ndarray:
    """Host copy of a replicated array (also when it spans several processes)."""
    return np.asarray(array.addressable_data(0))


class Evaluator:
    """Held-out-frame PSNR during training, plus image summaries (reconstructions, novel views, basis)."""

    def __init__(self, setup, render_fn: Callable, basis_fn: Callable, workdir: Path, writer):
        from avatar_data.pipeline import load_eval_frames
        from hfagp.model import encoder_inputs

        cfg = setup.config
        self.cfg = cfg
        self.writer = writer
        self.workdir = Path(workdir)
        frames = load_eval_frames(setup.datasets.test, max_frames=cfg.eval.max_frames)
        smoothing = bool(dict(cfg.model.encoder_kwargs).get("temporal_smoothing", False))
        self.inputs = np.asarray(encoder_inputs(frames, cfg.model.encoder, smoothing), np.float32)
        self.images = np.asarray(frames["image"], np.float32)
        self.labels = np.asarray(frames["label"], np.float32)
        self.batch = max(1, min(cfg.eval.batch_size, len(self.images)))
        # Inputs are replicated over the mesh (in multi-process runs every process renders the same frames).
        from jax.sharding import NamedSharding, PartitionSpec

        self._replicated = NamedSharding(setup.mesh, PartitionSpec())
        self._render = jax.jit(render_fn, out_shardings=self._replicated)
        self._basis = jax.jit(basis_fn, out_shardings=self._replicated)
        self.is_main = jax.process_index() == 0

    def _put(self, *arrays):
        return jax.device_put(arrays, self._replicated)

    def _render_all(self, params, constants, inputs, labels) -> np.ndarray:
        out = []
        b = self.batch
        for i in range(0, len(inputs), b):
            x, c = inputs[i:i + b], labels[i:i + b]
            pad = b - len(x)
            if pad:  # fixed shapes: no recompilation for the last batch
                x = np.concatenate([x, np.repeat(x[-1:], pad, 0)])
                c = np.concatenate([c, np.repeat(c[-1:], pad, 0)])
            out.append(_local_copy(self._render(params, constants, *self._put(x, c)))[: b - pad])
        return np.concatenate(out)

    def evaluate(self, step: int, params, constants) -> dict:
        pred = self._render_all(params, constants, self.inputs, self.labels)
        mse = np.mean((pred - self.images) ** 2, axis=(1, 2, 3))
        psnr = float(np.mean(-10 * np.log10(np.maximum(mse / 4.0, 1e-12))))
        metrics = {"eval/psnr": psnr, "eval/l2": float(mse.mean()), "eval/frames": len(pred)}
        if not self.is_main:
            return metrics
        self.writer.scalars(step, metrics)
        n = min(self.cfg.eval.num_images, len(pred))
        recon = image_grid(to_uint8(np.concatenate([self.images[:n], pred[:n]])), columns=n)
        self.writer.image(step, "test/reconstruction_top_gt_bottom_pred", recon)
        out_dir = self.workdir / "samples" / f"step_{step:07d}"
        save_png(out_dir / "reconstruction.png", recon)
        if self.cfg.eval.novel_views > 0:
            cams = orbit_cameras(self.batch * max(1, self.cfg.eval.novel_views // self.batch))
            x = np.repeat(self.inputs[:1], len(cams), 0)
            views = self._render_all(params, constants, x, cams)
            grid = image_grid(to_uint8(views), columns=len(views))
            self.writer.image(step, "test/novel_views", grid)
            save_png(out_dir / "novel_views.png", grid)
        if self.cfg.eval.basis_images:
            cams = frontal_camera()[None]
            basis = _local_copy(self._basis(params, constants, *self._put(cams)))
            grid = image_grid(to_uint8(basis), columns=min(10, len(basis)))
            self.writer.image(step, "basis/each_vector", grid)
            save_png(out_dir / "basis.png", grid)
        with open(self.workdir / "eval_metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        return metrics
