"""Evaluate a trained run (library; the CLI is ``python -m hfagp.eval WORKDIR [--baseline pti] ...``).

Protocol (paper Tables 1-3): each frame of the split is rendered at its own camera from the run's
encoder + personalized prior + tuned generator ("same" view) and compared with the frame: PSNR, SSIM
and, when LPIPS weights are given, LPIPS (`hfagp.metrics`; renders are clipped to [-1, 1] first, no
uint8 rounding). On a synthetic world (`hfagp.inference.world_dir`) also:

* novel views: test frames that have ground-truth renders in ``<world>/novel_views`` (views.json maps
  ``(frame_index, view_index)`` to a file and its camera, the yaw/pitch offsets from frontal) are
  rendered at those cameras from the same driving signal ("novel<v>" views);
* subspace recovery: principal angles between the learned effective basis (rows of
  `TrainedAvatar.basis_matrix`, W+ flattened row-major to num_ws*w_dim) and the hidden basis of
  ``ground_truth.npz`` ([d, num_ws, w_dim], W+, flattened the same way). A hidden basis stored in W
  ([d, w_dim]) would be lifted to W+ by repeating it on every layer (the W+ image of a W direction).

``--baseline pti`` also runs `hfagp.eval.pti.pti_reconstruct` per frame from the run's *base* generator
(the untuned one the config names), on the same frames and views, as method "pti". Its inversion distance
is LPIPS-VGG (the official VGG16 feature distance's stand-in): give `pti_vgg_weights`, or LPIPS weights
with `lpips_net='vgg'`, or a `PTIConfig` with `invert_distance='l2_lpips'`.

On a head world with part labels (version 2 on, `avatar_data.worlds.layout.read_face_truth`) also the face
metrics of `hfagp.metrics.face_scores` per row, their readback r^2 (over the evaluated frames at their own view,
or with ``readback_frames`` over those frames instead, e.g. every frame of the video, the evaluated frames' own
beside) and ``face_crops.png`` (`hfagp.eval.face`).

Outputs in ``--out`` (default ``WORKDIR/eval/step_<N>``): ``per_frame.csv`` (one row per frame x view x
method: frame_index, method, view, view_kind, psnr, ssim[, lpips], then the `metrics.FACE_METRICS` columns,
empty where the world has no part labels), ``summary.json`` (means per method and view kind and per view,
principal angles, face readback or why there is none, timing, configuration), ``comparisons/frame_<i>.png``
(rows: views; columns: ground truth, this method[, pti]) and, with part labels, ``face_crops.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hfagp import metrics
from hfagp import workdir as workdir_lib
from hfagp.eval import face as face_lib
from hfagp.datasets import NovelViews, load_face_truth, load_novel_views
from hfagp.inference import TrainedAvatar, world_dir
from hfagp_common.batching import batched
from hfagp_common.cli import ConfigError
from hfagp_common.images import image_grid, save_png, to_uint8

# What an evaluation's output directory holds: a directory with only these is an earlier evaluation, rewritten.
OUTPUT_LAYOUT = frozenset({"summary.json", "per_frame.csv", "comparisons", face_lib.CROPS_FILE})

METHOD = "hfagp"
SAME_VIEW = "same"


def hidden_subspace_rows(basis: np.ndarray, num_ws: int, w_dim: int) -> np.ndarray:
    """The hidden basis as W+ rows [d, num_ws*w_dim]: [d, num_ws, w_dim] flattened, or [d, w_dim] (W) lifted
    by repeating each direction on every layer."""
    basis = np.asarray(basis, np.float64)
    if basis.ndim == 3 and basis.shape[1:] == (num_ws, w_dim):
        return basis.reshape(basis.shape[0], -1)
    if basis.ndim == 2 and basis.shape[1] == w_dim:
        return np.tile(basis, (1, num_ws))
    if basis.ndim == 2 and basis.shape[1] == num_ws * w_dim:
        return basis
    raise ValueError(f"hidden basis of shape {basis.shape} fits neither W+ [d, {num_ws}, {w_dim}] nor W [d, {w_dim}]")


def subspace_report(avatar: TrainedAvatar, world: Path) -> dict:
    """Principal angles (degrees) between the learned basis and the world's hidden subspace."""
    from avatar_data.worlds import layout

    path = Path(world) / layout.GROUND_TRUTH_FILE
    if not path.is_file():
        return {"available": False, "reason": f"{path} is missing"}
    with np.load(path) as gt:
        if "basis" not in gt.files:
            return {"available": False, "reason": "the world has no hidden W+ subspace (not made by an EG3D)"}
        hidden_basis = gt["basis"]
    cfg = avatar.generator.config
    learned = avatar.basis_matrix()
    hidden = hidden_subspace_rows(hidden_basis, cfg.num_ws, cfg.w_dim)
    angles = metrics.principal_angles(learned, hidden)
    return {
        "available": True,
        "space": f"W+ flattened row-major: num_ws*w_dim = {cfg.num_ws}*{cfg.w_dim} = {cfg.num_ws * cfg.w_dim}",
        "hidden_layout": "W+" if np.ndim(hidden_basis) == 3 or hidden_basis.shape[1] != cfg.w_dim else
                         "W, lifted to W+ by repeating on every layer",
        "learned_k": int(learned.shape[0]),
        "hidden_dim": int(hidden.shape[0]),
        "principal_angles_deg": [float(a) for a in angles],
        "mean_deg": float(angles.mean()),
        "max_deg": float(angles.max()),
    }


# ----------------------------------------------------------------------------------------------------
# Rendering and scoring.


class RenderTimer:
    """Wall time of every rendered batch (all of one shape: the first call includes compilation)."""

    def __init__(self):
        self.times: list[float] = []
        self.batch_size = 0

    def wrap(self, fn: Callable) -> Callable:
        def timed(*args):
            t0 = time.perf_counter()
            out = jax.device_get(fn(*args))
            self.times.append(time.perf_counter() - t0)
            self.batch_size = len(args[0])
            return out
        return timed

    def report(self, num_images: int) -> dict:
        """Totals, and frames/s over the batches after the first (padding counted as work done)."""
        total = float(sum(self.times))
        out = {"seconds": total, "images": int(num_images), "batches": len(self.times),
               "first_batch_s": float(self.times[0]) if self.times else 0.0}
        if len(self.times) > 1:
            out["frames_per_s"] = self.batch_size * (len(self.times) - 1) / sum(self.times[1:])
            out["frames_per_s_includes_compilation"] = False
        elif total > 0:
            out["frames_per_s"] = num_images / total
            out["frames_per_s_includes_compilation"] = True
        return out


def render_avatar(avatar: TrainedAvatar, inputs: np.ndarray, cameras: np.ndarray, batch_size: int,
                  desc: str, progress: bool = True, timer: Optional[RenderTimer] = None) -> np.ndarray:
    """Encoder inputs [M, ...] at cameras [M, 25] -> images [M, R, R, 3] clipped to [-1, 1]."""
    fn = lambda x, c: jnp.clip(avatar.render(x, c)["image"], -1.0, 1.0)
    images = batched(timer.wrap(fn) if timer else fn, [inputs, cameras], batch_size, desc=desc, progress=progress)
    return np.asarray(images, np.float32)


@jax.jit
def _psnr_ssim(pred, target):
    return {"psnr": metrics.psnr(pred, target), "ssim": metrics.ssim(pred, target)}


def score(pred: np.ndarray, target: np.ndarray, batch_size: int,
          lpips_metric: Optional[Callable] = None) -> dict[str, np.ndarray]:
    """Per-image {'psnr', 'ssim'[, 'lpips']} [M] (float64) of images [M, R, R, 3] in [-1, 1]."""
    if pred.shape != target.shape:
        raise ValueError(f"rendered images {pred.shape} and ground truth {target.shape} differ in shape "
                         "(does the generator's output resolution match the dataset's?)")
    fn = _psnr_ssim if lpips_metric is None else (
        lambda p, t: {**_psnr_ssim(p, t), "lpips": lpips_metric(p, t)})
    out = batched(fn, [pred, target], batch_size, progress=False)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def _rows(method: str, frame_index: np.ndarray, view: str, scores: dict) -> list[dict]:
    """Rows of per-image scores; the face metrics absent from `scores` are None (empty in the CSV)."""
    kind = "same" if view == SAME_VIEW else "novel"
    scores = {**{k: None for k in metrics.FACE_METRICS}, **scores}
    return [{"frame_index": int(f), "method": method, "view": view, "view_kind": kind,
             **{k: None if v is None else float(v[i]) for k, v in scores.items()}} for i, f in enumerate(frame_index)]


def _finite(x: float) -> Optional[float]:
    return float(x) if math.isfinite(x) else None


def summarize_rows(rows: Sequence[dict], metric_names: Sequence[str]) -> tuple[dict, dict]:
    """(means per method and view kind, means per method and view) of the per-frame rows."""
    def means(selected):
        out = {"count": len(selected)}
        for m in metric_names:
            values = [r[m] for r in selected if r.get(m) is not None and not math.isnan(r[m])]
            out[m] = _finite(metrics.mean_or_nan(values))
        return out

    by_kind, by_view = {}, {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        by_kind[method] = {f"{kind}_view": means([r for r in mine if r["view_kind"] == kind])
                           for kind in dict.fromkeys(r["view_kind"] for r in mine)}
        by_view[method] = {v: means([r for r in mine if r["view"] == v])
                           for v in dict.fromkeys(r["view"] for r in mine)}
    return by_kind, by_view


def write_csv(path: Path, rows: Sequence[dict], metric_names: Sequence[str]) -> None:
    fields = ["frame_index", "method", "view", "view_kind", *metric_names]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (repr(r[k]) if isinstance(r[k], float) else r[k]) for k in fields})


def save_comparisons(out_dir: Path, frame_index: np.ndarray, columns: list[np.ndarray], count: int) -> list[str]:
    """PNG per frame: rows = views, columns = the given [N, V, R, R, 3] stacks (ground truth first)."""
    names = []
    for i in range(min(count, len(frame_index))):
        cells = np.stack([c[i] for c in columns], axis=1)          # [V, M, R, R, 3]
        grid = image_grid(to_uint8(cells.reshape((-1,) + cells.shape[2:])), columns=len(columns))
        name = f"comparisons/frame_{int(frame_index[i]):05d}.png"
        save_png(out_dir / name, grid)
        names.append(name)
    return names


def _face_summary(avatar, face_truth, frame_index, images, pred_same, pti_images, readback_frames, batch_size,
                  progress, timer) -> dict:
    """summary.json's 'face': the readback r^2 per method over the evaluated frames ('readback'; with
    `readback_frames`, rendered here, hfagp only, over those instead, and the evaluated frames' own in
    'readback_evaluated_frames') and what the face metrics are."""
    truth_of = lambda idx: {k: v[idx] for k, v in face_truth.truth.items()}
    evaluated = {m: metrics.readback(p, images, face_truth.face_points[frame_index], truth_of(frame_index))
                 for m, p in {METHOD: pred_same, **({"pti": pti_images[:, 0]} if pti_images is not None else {})}
                 .items()}
    summary = {"available": True, "readback_over": "the evaluated frames at their own view", "readback": evaluated}
    if readback_frames is not None:
        idx = np.asarray(readback_frames["frame_index"])
        rendered = render_avatar(avatar, np.asarray(readback_frames[avatar.input_key], np.float32),
                                 np.asarray(readback_frames["label"], np.float32), batch_size, "render readback",
                                 progress, timer)
        truth_images = np.asarray(readback_frames["image"], np.float32)
        summary.update(readback_over="the given frames at their own view (every frame of the video with "
                                     "--readback all)",
                       readback={METHOD: metrics.readback(rendered, truth_images, face_truth.face_points[idx],
                                                          truth_of(idx))},
                       readback_evaluated_frames=evaluated)
    summary["definitions"] = {
        "regions": "hfagp.metrics.face_regions (features + skin in their convex hull, dilated "
                   f"{metrics.REGION_DILATION} px; eyes = eyes + eyelids; mouth = lips + interior)",
        "detail_ratio": "3x3 Laplacian energy of luminance, render / truth, in the face region",
        "mouth_score": "mean relative darkness in a box below the mouth centre",
        "eye_score": "luminance std / mean in boxes at the eyes",
        "readback": "r^2 against jaw_open and (blink_l + blink_r) / 2; the ceiling is the same readback of the "
                    "ground-truth frames; smile is not read back"}
    return summary


# ----------------------------------------------------------------------------------------------------
# The whole evaluation.


def evaluate(
    avatar: TrainedAvatar,
    frames: dict,
    out_dir,
    *,
    split: str = "test",
    batch_size: int = 4,
    lpips_weights: Optional[str] = None,
    lpips_net: str = "alex",
    baseline: Optional[str] = None,
    pti_config=None,
    pti_vgg_weights: Optional[str] = None,
    num_images: int = 4,
    readback_frames: Optional[dict] = None,
    progress: bool = True,
) -> dict:
    """Score `avatar` on `frames` (`load_split`'s dict) and write the outputs into `out_dir`; returns the summary.

    readback_frames: frames (`load_split`'s dict) over which the face readback r^2 is measured, each rendered
    at its own view; default the evaluated frames."""
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    workdir_lib.check_output_dir(out_dir, "eval", OUTPUT_LAYOUT, flag="--out")
    images = np.asarray(frames["image"], np.float32)
    cams = np.asarray(frames["label"], np.float32)
    frame_index = np.asarray(frames["frame_index"])
    n = len(images)
    if n == 0:
        raise ValueError(f"the {split} split has no frames to evaluate")
    inputs = np.asarray(frames[avatar.input_key], np.float32)
    res = avatar.generator.config.img_resolution
    if images.shape[1:] != (res, res, 3):
        raise ValueError(f"the {split} frames are {images.shape[1:]} but the generator renders [{res}, {res}, 3]")
    if baseline not in (None, "pti"):
        raise ValueError(f"unknown baseline {baseline!r}; known: pti")

    lpips_metric = lpips_info = None
    if lpips_weights:
        lpips_metric = metrics.make_lpips_metric(lpips_weights, lpips_net)
        lpips_info = {"enabled": True, "net": lpips_net, "weights": str(Path(lpips_weights).absolute())}
    else:
        lpips_info = {"enabled": False, "note": "LPIPS not reported: no --lpips-weights given (no weights ship "
                                                "with the project; make them with python -m convert_weights.lpips)"}
    metric_names = ["psnr", "ssim"] + (["lpips"] if lpips_metric else [])
    pti_losses = _pti_losses(pti_config, lpips_weights, lpips_net, pti_vgg_weights) if baseline == "pti" else None
    # Every input is checked: only now is anything written.
    out_dir.mkdir(parents=True, exist_ok=True)

    world = world_dir(avatar)
    novel = load_novel_views(world, frame_index, cams) if world is not None else None
    novel_idx = np.flatnonzero(novel.available) if novel is not None else np.zeros(0, int)
    num_views = len(novel.views) if novel is not None else 0
    face_truth, no_face_reason = load_face_truth(world)

    def scores_of(pred, target, view):
        """score's dict, with the face metrics where the world has part labels; view: None for the same view."""
        out = score(pred, target, batch_size, lpips_metric)
        if face_truth is not None:
            idx = frame_index if view is None else frame_index[novel_idx]
            parts, points = ((face_truth.part_labels[idx], face_truth.face_points[idx]) if view is None
                             else face_truth.novel(idx, view))
            out.update(metrics.face_scores(pred, target, parts, points, face_truth.part_names))
        return out

    rows, timing = [], {}
    # The method, same view.
    timer = RenderTimer()
    pred_same = render_avatar(avatar, inputs, cams, batch_size, "render same view", progress, timer)
    t0 = time.perf_counter()
    rows += _rows(METHOD, frame_index, SAME_VIEW, scores_of(pred_same, images, None))
    timing["metrics_s"] = time.perf_counter() - t0
    # The method, novel views (every view of every frame that has them, one flat batch stream).
    pred_novel = np.zeros((n, num_views) + images.shape[1:], np.float32)
    if len(novel_idx):
        flat_inputs = np.repeat(inputs[novel_idx], num_views, axis=0)
        flat_cams = novel.cameras[novel_idx].reshape(-1, cams.shape[-1])
        flat = render_avatar(avatar, flat_inputs, flat_cams, batch_size, "render novel views", progress, timer)
        pred_novel[novel_idx] = flat.reshape((len(novel_idx), num_views) + images.shape[1:])
        t0 = time.perf_counter()
        for v, view in enumerate(novel.views):
            s = scores_of(pred_novel[novel_idx, v], novel.images[novel_idx, v], v)
            rows += _rows(METHOD, frame_index[novel_idx], view["name"], s)
        timing["metrics_s"] += time.perf_counter() - t0

    timing["render"] = timer.report(n + len(novel_idx) * num_views)

    # The PTI baseline on the same frames and views.
    pti_summary, pti_images = None, None
    if baseline == "pti":
        pti_images, pti_summary, timing["pti"] = _run_pti(avatar, images, cams, novel, pti_losses, progress)
        rows += _rows("pti", frame_index, SAME_VIEW, scores_of(pti_images[:, 0], images, None))
        if len(novel_idx):
            for v, view in enumerate(novel.views):
                s = scores_of(pti_images[novel_idx, v + 1], novel.images[novel_idx, v], v)
                rows += _rows("pti", frame_index[novel_idx], view["name"], s)

    # Sort rows: frame, then method, then view (same first).
    view_order = {SAME_VIEW: -1, **{v["name"]: i for i, v in enumerate(novel.views if novel else [])}}
    method_order = {METHOD: 0, "pti": 1}
    rows.sort(key=lambda r: (r["frame_index"], method_order[r["method"]], view_order[r["view"]]))
    write_csv(out_dir / "per_frame.csv", rows, [*metric_names, *metrics.FACE_METRICS])
    by_kind, by_view = summarize_rows(rows, [*metric_names, *(metrics.FACE_METRICS if face_truth else ())])
    face_summary = {"available": False, "reason": no_face_reason}
    if face_truth is not None:
        face_summary = _face_summary(avatar, face_truth, frame_index, images, pred_same, pti_images,
                                     readback_frames, batch_size, progress, timer)
        method_images = [pred_same] + ([pti_images[:, 0]] if pti_images is not None else [])
        face_lib.save_face_crops(out_dir / face_lib.CROPS_FILE, images, method_images,
                                 face_truth.face_points[frame_index], face_truth.truth["jaw_open"][frame_index])
        face_summary["crops"] = face_lib.CROPS_FILE

    gt_cols = [np.concatenate([images[:, None], novel.images], 1) if novel else images[:, None]]
    pred_cols = [np.concatenate([pred_same[:, None], pred_novel], 1)]
    if pti_images is not None:
        pred_cols.append(pti_images)
    show = novel_idx if len(novel_idx) else np.arange(n)
    pngs = save_comparisons(out_dir, frame_index[show], [c[show] for c in gt_cols + pred_cols], num_images)

    subspace = subspace_report(avatar, world) if world is not None else {
        "available": False, "reason": "not a world with ground truth: no hidden subspace to compare with"}
    timing["total_s"] = time.perf_counter() - t_start
    gcfg = avatar.generator.config
    summary = {
        "workdir": str(Path(avatar.workdir).absolute()),
        "step": int(avatar.step),
        "split": split,
        "num_frames": int(n),
        "frame_indices": [int(f) for f in frame_index],
        "methods": list(by_kind),
        "metrics": by_kind,
        "metrics_per_view": by_view,
        "metric_definitions": {
            "psnr": "dB, data range 1 on (x+1)/2 images; renders clipped to [-1,1]",
            "ssim": "Wang et al., 11x11 Gaussian window sigma 1.5, K1=0.01, K2=0.03, valid region, mean over "
                    "channels (= skimage structural_similarity gaussian_weights=True, use_sample_covariance=False)",
            "lpips": f"LPIPS-{lpips_net} (hfagp.lpips)" if lpips_metric else None,
        },
        "lpips": lpips_info,
        "novel_views": ({"available": True, "num_frames": int(len(novel_idx)), "views": novel.views,
                         "world": str(world)} if len(novel_idx) else
                        {"available": False, "reason": "not a world with ground truth" if world is None else
                         f"{world}/novel_views has no views of these frames"}),
        "subspace": subspace,
        "face": face_summary,
        "pti": pti_summary,
        "images": pngs,
        "timing": _round(timing),
        "config": {
            "encoder": avatar.encoder_kind,
            "input_key": avatar.input_key,
            "k": avatar.k,
            "orthogonality": avatar.spec.orthogonality,
            "generator": avatar.config.generator.path or f"preset {avatar.config.generator.preset} "
                                                         f"(seed {avatar.config.generator.preset_seed})",
            "resolution": int(gcfg.img_resolution),
            "neural_rendering_resolution": int(gcfg.neural_rendering_resolution),
            "data_source": avatar.config.data.source,
            "trained_steps": int(avatar.config.schedule.total_steps),
            "batch_size": int(batch_size),
            "devices": [str(d) for d in jax.devices()],
        },
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _round(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    if isinstance(x, float):
        return round(x, 4) if math.isfinite(x) else None
    return x


@dataclasses.dataclass(frozen=True)
class _PTILosses:
    """PTI's configuration with its loss networks loaded: LPIPS of the tuning loss, LPIPS-VGG of the inversion."""

    config: Any
    lpips_fn: Optional[Callable]
    vgg_fn: Optional[Callable]
    vgg_weights: Optional[str]


def _pti_losses(config, lpips_weights, lpips_net, vgg_weights: Optional[str]) -> "_PTILosses":
    """Checks PTI's options and loads its loss networks (before anything is written)."""
    from hfagp.eval import pti
    from hfagp.lpips import make_lpips

    config = config if config is not None else pti.PTIConfig()
    vgg_fn = None
    if config.invert_distance == "lpips_vgg":
        vgg_weights = vgg_weights or (lpips_weights if lpips_net == "vgg" else None)
        if not vgg_weights:
            raise ConfigError("PTI inverts with LPIPS-VGG (the official VGG16 feature distance's stand-in): pass "
                              "--pti-vgg-weights lpips_vgg.npz (made by python -m convert_weights.lpips --net vgg), or "
                              "--pti-invert-distance l2_lpips")
        vgg_fn = make_lpips(vgg_weights, "vgg")
    lpips_fn = make_lpips(lpips_weights, lpips_net) if lpips_weights else None
    return _PTILosses(config, lpips_fn, vgg_fn, vgg_weights if vgg_fn is not None else None)


def _run_pti(avatar: TrainedAvatar, images, cams, novel: Optional[NovelViews], losses: "_PTILosses",
             progress: bool):
    """PTI per frame from the base generator; returns (renders [N, 1+V, R, R, 3], summary, timing)."""
    from hfagp import model as model_lib
    from hfagp.eval import pti

    config, lpips_fn, vgg_fn, vgg_weights = losses.config, losses.lpips_fn, losses.vgg_fn, losses.vgg_weights
    base = model_lib.build_generator(avatar.config.generator)
    render_cams = cams[:, None] if novel is None else np.concatenate([cams[:, None], novel.cameras], 1)
    t0 = time.perf_counter()
    out = pti.pti_reconstruct(base, images, cams, render_cams, config=config, lpips_fn=lpips_fn, vgg_fn=vgg_fn,
                              progress=progress)
    seconds = time.perf_counter() - t0
    out = np.clip(np.asarray(out, np.float32), -1.0, 1.0)
    if out.shape != render_cams.shape[:2] + images.shape[1:]:
        raise ValueError(f"pti_reconstruct returned {out.shape}, expected {render_cams.shape[:2] + images.shape[1:]}")
    summary = {"config": dataclasses.asdict(config), "generator": "base (untuned) generator of the run's config",
               "lpips_loss": lpips_fn is not None,
               "invert_distance": ("LPIPS-VGG at %d (stand-in for the official VGG16 feature distance), weights %s"
                                   % (config.invert_resolution, Path(vgg_weights).absolute()) if vgg_fn is not None
                                   else "L2 + lpips_weight * LPIPS (the tuning loss)")}
    return out, summary, {"seconds": seconds, "frames": len(images), "seconds_per_frame": seconds / len(images)}
