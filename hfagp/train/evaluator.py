"""In-training evaluation: held-out-frame PSNR (the metric of `hfagp.eval`, on clipped renders), on a world
with ground truth also the PSNR of its novel views of those frames, on a head world with part labels the face
scores of `hfagp.metrics.face_scores` (face PSNR at the frames' own and at the novel views, the detail ratio, and
the mouth and eye readback r^2 over the evaluated frames), and pictures (reconstructions, a yaw sweep of the first
held-out frame, one image per basis vector)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Optional

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from avatar_data import cameras
from hfagp import metrics
from hfagp import model as model_lib
from hfagp.datasets import load_face_truth, load_novel_views
from hfagp import workdir as workdir_lib
from hfagp_common.batching import batched
from hfagp_common.images import image_grid, save_png, to_uint8

# Yaw amplitude (degrees) of the novel-view sweep of the in-training pictures.
NOVEL_VIEW_YAW_DEG = 30.0


def _local_copy(array: jax.Array) -> np.ndarray:
    """Host copy of a replicated array (also when it spans several processes)."""
    return np.asarray(array.addressable_data(0))


class Evaluator:
    """Renders the first `eval.max_frames` test frames with the current params; process 0 writes the results."""

    def __init__(self, config, spec: model_lib.ModelSpec, test_source, mesh, render_fn: Callable,
                 basis_fn: Callable, workdir: Path, writer, world_dir: Optional[Path] = None,
                 smoothed_render_fn: Optional[Callable] = None):
        """config: the training config (its `eval` section); spec: which encoder input the frames give.
        render_fn: (params, constants, inputs, cameras) -> images; smoothed_render_fn: the same with the
        audio encoder's attention smoothing, for evaluations after its start (`evaluate(smoothing=True)`)."""
        from avatar_data.pipeline import load_eval_frames

        self.cfg = config
        self.writer = writer
        self.workdir = Path(workdir)
        frames = load_eval_frames(test_source, max_frames=config.eval.max_frames)
        self.inputs = np.asarray(spec.encoder_inputs(frames), np.float32)
        self.images = np.asarray(frames["image"], np.float32)
        self.labels = np.asarray(frames["label"], np.float32)
        self.batch = max(1, min(config.eval.batch_size, len(self.images)))
        # Ground-truth novel views of the evaluated frames, flattened (one row per view of a frame).
        self.novel = None
        novel = load_novel_views(world_dir, np.asarray(frames["frame_index"]), self.labels) if world_dir else None
        if novel is not None and novel.available.any():
            rows = np.flatnonzero(novel.available)
            views = novel.images.shape[1]
            self.novel = {"inputs": np.repeat(self.inputs[rows], views, axis=0),
                          "labels": novel.cameras[rows].reshape(-1, novel.cameras.shape[-1]),
                          "images": novel.images[rows].reshape((-1,) + novel.images.shape[2:])}
        self.face = self._face_annotations(world_dir, np.asarray(frames["frame_index"]), novel)
        # Inputs are replicated over the mesh (in multi-process runs every process renders the same frames).
        self._replicated = NamedSharding(mesh, PartitionSpec())
        self._render = jax.jit(render_fn, out_shardings=self._replicated)
        self._render_smoothed, self._smoothing = None, False
        if smoothed_render_fn is not None:
            self._render_smoothed = jax.jit(smoothed_render_fn, out_shardings=self._replicated)
        self._basis = jax.jit(basis_fn, out_shardings=self._replicated)
        self.is_main = jax.process_index() == 0

    def _face_annotations(self, world_dir, frame_index, novel) -> Optional[dict]:
        """Part labels, face points and readback truth of the evaluated frames (and of their novel views in the
        order of `self.novel`), or None for a world without part labels."""
        truth = load_face_truth(world_dir)[0] if world_dir else None
        if truth is None:
            return None
        out = {"names": truth.part_names, "labels": truth.part_labels[frame_index],
               "points": truth.face_points[frame_index],
               "truth": {k: v[frame_index] for k, v in truth.truth.items()}}
        if self.novel is not None:
            rows = np.flatnonzero(novel.available)
            at = [truth.novel(frame_index[rows], v) for v in range(novel.images.shape[1])]
            # [rows, views, ...] flattened row-major, as self.novel's images.
            out["novel_labels"] = np.stack([a[0] for a in at], axis=1).reshape((-1,) + truth.part_labels.shape[1:])
            out["novel_points"] = np.stack([a[1] for a in at], axis=1).reshape(-1, 3, 2)
        return out

    def _face_results(self, pred: np.ndarray, novel: Optional[np.ndarray]) -> dict:
        """eval/face_psnr, eval/detail_ratio, eval/jaw_open_r2 and eval/blink_r2 (with their ceilings), and
        eval/novel_face_psnr where there are novel views."""
        face = self.face
        scores = metrics.face_scores(pred, self.images, face["labels"], face["points"], face["names"])
        result = {"eval/face_psnr": metrics.mean_or_nan(scores["face_psnr"][np.isfinite(scores["face_psnr"])]),
                  "eval/detail_ratio": metrics.mean_or_nan(scores["detail_ratio"][np.isfinite(scores["detail_ratio"])])}
        readback = metrics.readback(pred, self.images, face["points"], face["truth"])
        for key in ("jaw_open_r2", "jaw_open_r2_ceiling", "blink_r2", "blink_r2_ceiling"):
            if readback[key] is not None:
                result[f"eval/{key}"] = readback[key]
        if novel is not None:
            psnr = metrics.face_scores(novel, self.novel["images"], face["novel_labels"], face["novel_points"],
                                       face["names"])["face_psnr"]
            result["eval/novel_face_psnr"] = metrics.mean_or_nan(psnr[np.isfinite(psnr)])
        return result

    def _render_all(self, params, constants, inputs, labels) -> np.ndarray:
        render = self._render_smoothed if self._smoothing else self._render
        fn = lambda x, c: _local_copy(render(params, constants, *jax.device_put((x, c), self._replicated)))
        return batched(fn, [inputs, labels], self.batch, progress=False)

    def evaluate(self, step: int, params, constants, smoothing: bool = False) -> dict:
        """smoothing: render with the audio attention smoothing (needs `smoothed_render_fn`)."""
        if smoothing and self._render_smoothed is None:
            raise ValueError("Evaluator.evaluate(smoothing=True) needs a smoothed_render_fn")
        self._smoothing = smoothing
        pred = self._render_all(params, constants, self.inputs, self.labels)
        psnr = np.asarray(metrics.psnr(pred, self.images))
        result = {"eval/psnr": float(psnr.mean()), "eval/frames": len(pred)}
        novel = None
        if self.novel is not None:
            novel = self._render_all(params, constants, self.novel["inputs"], self.novel["labels"])
            result["eval/novel_psnr"] = float(np.mean(np.asarray(metrics.psnr(novel, self.novel["images"]))))
        if self.face is not None:
            result.update(self._face_results(pred, novel))
        if not self.is_main:
            return result
        self.writer.scalars(step, result)
        n = min(self.cfg.eval.num_images, len(pred))
        recon = image_grid(to_uint8(np.concatenate([self.images[:n], pred[:n]])), columns=n)
        self.writer.image(step, "test/reconstruction_top_gt_bottom_pred", recon)
        out_dir = self.workdir / workdir_lib.SAMPLES_DIR / f"step_{step:07d}"
        save_png(out_dir / "reconstruction.png", recon)
        if self.cfg.eval.novel_views > 0:
            cams = cameras.yaw_sweep(self.cfg.eval.novel_views, NOVEL_VIEW_YAW_DEG)
            views = self._render_all(params, constants, np.repeat(self.inputs[:1], len(cams), 0), cams)
            grid = image_grid(to_uint8(views), columns=len(views))
            self.writer.image(step, "test/novel_views", grid)
            save_png(out_dir / "novel_views.png", grid)
        if self.cfg.eval.basis_images:
            cam = jax.device_put(cameras.frontal_camera()[None], self._replicated)
            basis = _local_copy(self._basis(params, constants, cam))
            grid = image_grid(to_uint8(basis), columns=min(10, len(basis)))
            self.writer.image(step, "basis/each_vector", grid)
            save_png(out_dir / "basis.png", grid)
        with open(self.workdir / workdir_lib.EVAL_METRICS_FILE, "a") as f:
            f.write(json.dumps({"step": step, **result, "time": round(time.time(), 3)}) + "\n")
        return result
