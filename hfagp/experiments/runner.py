"""The paper's experiments on head-world identities the shipped prior never saw (`run_experiments`).

Decide what runs. Every part is a table; its pieces are cached on disk so that a stopped run continues where
it left off and a finished piece is never redone:
  OUT/worlds/id<i>/              the head-world video of identity i (`avatar_data.worlds.heads`)
  OUT/worlds/id<i>_true/         the same world with the true 10 expression parameters as expression.npy
  OUT/runs/<name>/               one HFA-GP training workdir per (identity, recipe) and its evaluation in eval/
  OUT/tables/<part>.{md,json}    the tables, with the wall time of each part
  OUT/figures/table1.png         ground truth | HFA-GP | PTI | W+ inversion, own and novel views, per identity
  OUT/results.md                 all tables in one page

Parts (`configs/experiments.py`):
  table1          HFA-GP (RGB encoder) vs PTI (per frame, the official W-space baseline) vs plain W+ inversion,
                  same view and the ground-truth novel views, per identity and mean; depth error
  table2_3        the expression encoder on the true parameters and on the tracked 76-d vectors, the audio
                  encoder on the speech features, beside the RGB encoder; R^2 of the true expression parameters
                  from each encoder's coefficients (a linear fit, cross-validated over every fifth frame)
  table4          ablations on the first identity, over `ablations.seeds`, in `ablations.recipe`:
                  orthogonality qr / penalty / none, k in {5, 10, 20, 50}, prior init official / w_avg,
                  linear / nonlinear encoder MLP
  prior_value     the same HFA-GP run from a random generator of the prior's architecture
  time_to_avatar  held-out novel-view PSNR against steps and wall time of the default recipe, and a faster
                  recipe in a quarter of the steps
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from configs import experiments as experiments_config
from hfagp import workdir as workdir_lib
from hfagp_common import config_schema
from hfagp_common.atomic import write_text

# What OUT holds: a directory with only these is an experiments output being resumed.
OUTPUT_LAYOUT = frozenset({"worlds", "runs", "tables", "figures", "results.md"})
ABLATIONS = {
    "orthogonality_penalty": {"model.orthogonality": "penalty"},
    "orthogonality_none": {"model.orthogonality": "none"},
    "k5": {"model.k": 5},
    "k10": {"model.k": 10},
    "k50": {"model.k": 50},
    "init_official": {"model.prior_init": "official"},
    "mlp_nonlinear": {"model.encoder_kwargs.nonlinear": True},
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run: a recipe (config overrides of the experiments' base) on one identity's world."""

    name: str
    identity: int
    encoder: str = "rgb"
    overrides: tuple = ()          # ((dotted key, value), ...)
    world: str = "video"           # 'video' or 'true_expression'
    seed: int = 0


def run_config(exp, run: Run, world_dir: Path):
    """The training config of `run` (the 'demo' recipe of `configs/common.py`, with the experiments' settings)."""
    from configs.common import make_config, override

    c = make_config(run.encoder, "demo")
    c.progress_bar = True   # one bar per training run (stderr)
    c.seed = run.seed
    c.data.heads.dir = str(world_dir)
    c.model.k = int(exp.k)
    c.schedule.total_steps = int(exp.total_steps)
    c.schedule.generator_tuning_start = int(exp.generator_tuning_start)
    c.eval_every = int(exp.total_steps)
    c.checkpoint.every = int(exp.total_steps)
    c.eval.max_frames = int(exp.test_frames)
    c.eval.novel_views = 0
    c.eval.basis_images = False
    if run.world == "true_expression":
        with c.unlocked():
            c.model.encoder_kwargs.in_dim = 10
    return override(c, dict(run.overrides))


# ----------------------------------------------------------------------------------------------------
# Worlds.


def ensure_world(out: Path, exp, identity: int) -> Path:
    from avatar_data.worlds.heads.world import make_head_world
    from avatar_data.worlds.layout import is_world

    path = out / "worlds" / f"id{identity}"
    if not (is_world(path) and _has_face_truth(path)):
        # A world made before part labels is made again: the same frames byte for byte, with the labels.
        make_head_world(str(path), seed=int(identity), num_frames=int(exp.frames), num_test_frames=int(exp.test_frames),
                        resolution=128, progress=False, overwrite=True)
    return path


def _has_face_truth(world: Path) -> bool:
    from avatar_data.worlds import layout

    try:
        layout.read_face_truth(world)
    except layout.NoFaceTruth:
        return False
    return True


def ensure_true_expression_world(out: Path, video_world: Path) -> Path:
    """The video world with expression.npy replaced by the true parameters [T, 10] (other files linked)."""
    from avatar_data.worlds import layout

    path = out / "worlds" / f"{video_world.name}_true"
    if layout.is_world(path) and _has_face_truth(path):
        return path
    shutil.rmtree(path, ignore_errors=True)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for entry in video_world.iterdir():
        if entry.name != layout.EXPRESSION_FILE and entry.name != layout.WORLD_FILE:
            os.symlink(entry.resolve(), tmp / entry.name)
    with np.load(video_world / layout.GROUND_TRUTH_FILE) as gt:
        np.save(tmp / layout.EXPRESSION_FILE, gt["expression"].astype(np.float32))
    world = json.loads((video_world / layout.WORLD_FILE).read_text())
    world["expression"] = dict(world.get("expression", {}), file_dim=10, note="the true parameters (no tracker noise)")
    layout.write_json(tmp / layout.WORLD_FILE, world)
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------------------------------
# Training and evaluation of one run.


def training_wall_s(workdir: Path) -> float:
    """The run's training wall time as recorded: from its first evaluation (step 0) to its last."""
    path = workdir / "eval_metrics.jsonl"
    times = [json.loads(line)["time"] for line in path.read_text().splitlines() if line.strip()] if path.is_file() \
        else []
    return float(times[-1] - times[0]) if len(times) > 1 else 0.0


def train(out: Path, exp, run: Run, worlds_by_kind: dict) -> tuple[Path, float]:
    """(workdir, its recorded training wall seconds) of `run`, trained unless finished before."""
    from hfagp.train.loop import train_and_evaluate

    workdir = out / "runs" / run.name
    if not (workdir / "final_metrics.json").is_file():
        print(f"training {run.name} (identity {run.identity}, {run.encoder} encoder) in {workdir}", file=sys.stderr,
              flush=True)
        train_and_evaluate(run_config(exp, run, worlds_by_kind[run.world]), workdir)
    return workdir, training_wall_s(workdir)


def evaluation_wall_s(*summaries: dict) -> float:
    """The evaluations' wall time as recorded in their summaries."""
    return float(sum(s["timing"]["total_s"] for s in summaries))


def pti_config(exp, tune: bool):
    """PTI (tune=True; in `exp.pti.latent_space`) or plain W+ inversion (False) with the experiments' step counts.
    Both invert with the tuning loss (`invert_distance='l2_lpips'`): no LPIPS-VGG weights ship with the library."""
    from hfagp.eval.pti import PTIConfig

    return PTIConfig(w_steps=int(exp.pti.w_steps), g_steps=int(exp.pti.g_steps) if tune else 0,
                     lpips_weight=float(exp.pti.lpips_weight), latent_space=exp.pti.latent_space if tune else "w+",
                     invert_distance="l2_lpips")


def evaluate_run(workdir: Path, exp, baseline: Optional[str] = None) -> dict:
    """hfagp.eval's summary of the run (cached in WORKDIR/eval/<baseline or 'method'>/summary.json). The method's
    face readback is measured over every frame of the video (the held-out frames' own beside); a baseline's over
    its frames."""
    from hfagp.eval.evaluate import evaluate
    from hfagp.inference import load_split, load_trained, load_video

    out = workdir / "eval" / (baseline or "method")
    summary = out / "summary.json"
    if summary.is_file():
        cached = json.loads(summary.read_text())
        face = cached.get("face", {})
        # An evaluation made before the face scores (or, for the method, before the whole-video readback) is redone.
        if face.get("available") and (baseline or "readback_evaluated_frames" in face):
            return cached
    avatar = load_trained(workdir)
    frames = load_split(avatar, "test", int(exp.pti.max_frames) if baseline else None)
    kind = {"pti": ("pti", pti_config(exp, tune=True)), "inversion": ("pti", pti_config(exp, tune=False))}
    name, config = kind.get(baseline, (None, None))
    return evaluate(avatar, frames, out, batch_size=int(exp.eval_batch_size), baseline=name, pti_config=config,
                    num_images=int(exp.test_frames), readback_frames=None if baseline else load_video(avatar),
                    progress=False)


def depth_errors(workdir: Path) -> dict:
    """Mean absolute depth error (world units) of `image_depth` over the ground-truth foreground, at the neural
    rendering resolution, for the test frames (same view) and their novel views."""
    from avatar_data.worlds import layout
    from hfagp.datasets import load_novel_views
    from hfagp.inference import load_split, load_trained, world_dir
    from hfagp_common.batching import batched
    from hfagp_common.images import area_downsample

    avatar = load_trained(workdir)
    frames = load_split(avatar, "test")
    world = world_dir(avatar)
    idx = np.asarray(frames["frame_index"])
    inputs = np.asarray(frames[avatar.input_key], np.float32)
    with np.load(world / layout.GROUND_TRUTH_FILE) as gt:
        depth, mask = gt["depth"].astype(np.float32), gt["mask"].astype(np.float32)
        novel_depth, novel_mask = gt["novel_depth"].astype(np.float32), gt["novel_mask"].astype(np.float32)
        novel_rows = {(int(f), int(v)): i for i, (f, v) in enumerate(zip(gt["novel_frame_index"],
                                                                         gt["novel_view_index"]))}
    nrr = avatar.generator.config.neural_rendering_resolution

    def predicted(x, cams):
        fn = lambda a, c: np.asarray(avatar.render(a, c)["image_depth"])[..., 0]
        return batched(fn, [x, cams], 4, progress=False)

    def error(pred, gt_depth, gt_mask):
        m = area_downsample(gt_mask[..., None], nrr)[..., 0]
        d = area_downsample((gt_depth * gt_mask)[..., None], nrr)[..., 0] / np.maximum(m, 1e-6)
        fg = m > 0.5
        return float(np.abs(pred - d)[fg].mean())

    out = {"same_view": error(predicted(inputs, frames["label"]), depth[idx], mask[idx])}
    novel = load_novel_views(world, idx, frames["label"])
    if novel is not None:
        rows = np.flatnonzero(novel.available)
        v = novel.cameras.shape[1]
        pred = predicted(np.repeat(inputs[rows], v, axis=0), novel.cameras[rows].reshape(-1, 25))
        gt_rows = [novel_rows[(int(idx[r]), j)] for r in rows for j in range(v)]
        out["novel_views"] = error(pred, novel_depth[gt_rows], novel_mask[gt_rows])
    return out


def cross_validated_r2(features: np.ndarray, targets: np.ndarray, folds: int = 5) -> np.ndarray:
    """R^2 per target of a linear map (with bias) from `features` [T, k] to `targets` [T, P], cross-validated:
    frame t is predicted by a least-squares fit on the frames of the other folds (fold = t mod `folds`). Returns
    [P] (NaN for a target that does not vary); `pooled_r2` sums over the targets that vary."""
    x, y = np.asarray(features, np.float64), np.asarray(targets, np.float64)
    design = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    pred = np.empty_like(y)
    fold = np.arange(len(x)) % folds
    for f in range(folds):
        w, *_ = np.linalg.lstsq(design[fold != f], y[fold != f], rcond=None)
        pred[fold == f] = design[fold == f] @ w
    sse, sst = ((y - pred) ** 2).sum(axis=0), ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    varies = y.std(axis=0) > 1e-3
    return np.where(varies, 1.0 - sse / np.where(varies, sst, 1.0), np.nan)


def pooled_r2(features: np.ndarray, targets: np.ndarray, folds: int = 5) -> float:
    """`cross_validated_r2` pooled over the targets that vary: 1 - their summed squared errors / summed squares
    about their means (a parameter that barely moves cannot dominate)."""
    y = np.asarray(targets, np.float64)
    varies = y.std(axis=0) > 1e-3
    if not varies.any():
        raise ValueError("no target varies over the frames")
    r2 = cross_validated_r2(features, y[:, varies], folds)
    sst = ((y[:, varies] - y[:, varies].mean(axis=0)) ** 2).sum(axis=0)
    return float(1.0 - ((1.0 - r2) * sst).sum() / sst.sum())


def expression_r2(workdir: Path) -> dict:
    """How linearly the encoder's coefficients carry the true expression parameters, over every frame of the video
    (training and test): {'all': `pooled_r2`, <parameter name>: its `cross_validated_r2`}."""
    from avatar_data.worlds import layout
    from hfagp.inference import load_split, load_trained, world_dir
    from hfagp_common.batching import batched

    avatar = load_trained(workdir)
    world = world_dir(avatar)
    names = json.loads((world / layout.WORLD_FILE).read_text())["expression"]["names"]
    with np.load(world / layout.GROUND_TRUTH_FILE) as gt:
        truth = gt["expression"].astype(np.float64)
    coefficients, index = [], []
    for split in ("train", "test"):
        frames = load_split(avatar, split)
        x = np.asarray(frames[avatar.input_key], np.float32)
        coefficients.append(batched(lambda a: np.asarray(avatar.coefficients(a)), [x], 4, progress=False))
        index.append(np.asarray(frames["frame_index"]))
    index = np.concatenate(index)
    order = np.argsort(index)
    features, targets = np.concatenate(coefficients)[order], truth[index[order]]
    per_name = cross_validated_r2(features, targets)
    return {"all": pooled_r2(features, targets), **{n: float(r) for n, r in zip(names, per_name)}}


def _metric(summary: dict, method: str, kind: str, name: str) -> float:
    return summary["metrics"][method][f"{kind}_view"][name]


# ----------------------------------------------------------------------------------------------------
# Tables.


def _fmt(v, spec=".2f") -> str:
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# The tables' layout: a table written in an older one (before the face columns) is made again from its runs.
TABLES_VERSION = 2


def experiment_key(exp) -> dict:
    """What a part's table depends on: the experiments' config without the choice of parts (JSON values), and
    the tables' layout."""
    key = json.loads(exp.to_json_best_effort())
    key.pop("parts", None)
    key["tables_version"] = TABLES_VERSION
    return key


def write_table(out: Path, exp, part: str, title: str, header: Sequence[str], rows: Sequence[Sequence], data: dict,
                wall_s: float, note: str = "") -> str:
    text = f"## {title}\n\n{markdown_table(header, rows)}\n\n"
    if note:
        text += note.strip() + "\n\n"
    text += (f"Wall time of this part on this machine: {wall_s / 60:.1f} min (its runs' training and evaluations as "
             f"they were recorded, also when they were made by an earlier invocation).\n")
    (out / "tables").mkdir(parents=True, exist_ok=True)
    write_text(out / "tables" / f"{part}.md", text)
    write_text(out / "tables" / f"{part}.json", json.dumps({"title": title, "wall_s": round(wall_s, 1), **data,
                                                            "experiment": experiment_key(exp)}, indent=1) + "\n")
    return text


def _part_done(out: Path, exp, part: str) -> Optional[str]:
    """The part's markdown if its table was made with this config (its runs are cached either way)."""
    md, data = out / "tables" / f"{part}.md", out / "tables" / f"{part}.json"
    if not (md.is_file() and data.is_file()):
        return None
    try:
        made_with = json.loads(data.read_text()).get("experiment")
    except json.JSONDecodeError:
        return None
    return md.read_text() if made_with == experiment_key(exp) else None


# ----------------------------------------------------------------------------------------------------
# Parts.


def _scores(summary: dict, method: str) -> dict:
    out = {}
    for kind in ("same", "novel"):
        for m in ("psnr", "ssim"):
            out[f"{kind}_{m}"] = _metric(summary, method, kind, m)
    return out


FACE_SCORES = ("face_psnr", "eyes_psnr", "mouth_psnr", "detail_ratio")


def _face(summary: dict, method: str, readback: bool = True) -> dict:
    """Face scores of `method` in an evaluation summary: {same,novel}_{`FACE_SCORES`} (None on a world without
    part labels), and with `readback` the mouth and eye readback r^2 with their ceilings over the frames the
    summary read back ('all_': every frame of the video for a method's evaluation) and over the held-out frames
    ('heldout_')."""
    out = {f"{kind}_{name}": summary["metrics"][method].get(f"{kind}_view", {}).get(name)
           for kind in ("same", "novel") for name in FACE_SCORES}
    face = summary.get("face", {})
    if readback and face.get("available"):
        held_out = face.get("readback_evaluated_frames", face["readback"])
        for prefix, source in (("all_", face["readback"]), ("heldout_", held_out)):
            for key, value in source.get(method, {}).items():
                out[prefix + key] = value
    return out


def face_table(lead_header: Sequence[str], rows_in: Sequence[tuple[Sequence, dict]]) -> str:
    """Markdown table of face scores: columns `lead_header` then the scores; rows_in = [(leading cells, `_face`
    dict)]; readback as 'r^2 (ceiling)'."""
    def r2(s, key, prefix="all_"):
        value, ceiling = s.get(f"{prefix}{key}_r2"), s.get(f"{prefix}{key}_r2_ceiling")
        return "—" if value is None else f"{value:.2f} ({_fmt(ceiling)})"

    header = ["face PSNR (same)", "face PSNR (novel)", "eyes PSNR", "mouth PSNR", "detail ratio (same)",
              "detail ratio (novel)", "jaw_open r^2 (ceiling)", "held-out jaw_open r^2 (ceiling)",
              "blink r^2 (ceiling)"]
    rows = [[*lead, _fmt(s["same_face_psnr"]), _fmt(s["novel_face_psnr"]), _fmt(s["same_eyes_psnr"]),
             _fmt(s["same_mouth_psnr"]), _fmt(s["same_detail_ratio"], ".2g"), _fmt(s["novel_detail_ratio"], ".2g"),
             r2(s, "jaw_open"), r2(s, "jaw_open", "heldout_"), r2(s, "blink")] for lead, s in rows_in]
    return markdown_table([*lead_header, *header], rows)


def _mean_face(entries: Sequence[dict]) -> dict:
    """Mean of `_face` dicts (None where any is None)."""
    keys = entries[0].keys()
    return {k: None if any(e.get(k) is None for e in entries) else float(np.mean([e[k] for e in entries]))
            for k in keys}


FACE_NOTE = ("Face: `hfagp.metrics.face_scores` on the world's part labels: PSNR in the face region (the features "
             "and the skin between them), in the eye and mouth regions (same view), and the detail ratio (3x3 "
             "Laplacian energy of luminance in the face region, render / truth: 1 = as sharp as the truth). "
             "Readback: r^2 of the mouth opening (eye opening) read from the rendered pixels alone against the true "
             "jaw_open (blink), over every frame of the video at its own view, and over the held-out frames "
             "alone; in brackets the same readback of the ground-truth frames (the ceiling).")


def part_table1(out: Path, exp, worlds_of: dict, log) -> str:
    wall, per_identity, rows = 0.0, {}, []
    for i in exp.identities:
        run = Run(f"rgb_id{i}", i)
        workdir, train_s = train(out, exp, run, worlds_of[i])
        method = evaluate_run(workdir, exp)
        pti = evaluate_run(workdir, exp, "pti")
        inversion = evaluate_run(workdir, exp, "inversion")
        wall += train_s + evaluation_wall_s(method, pti, inversion)
        # All three on the baselines' frames (the PTI evaluation scores HFA-GP on them too); HFA-GP on every
        # test frame beside.
        entry = {"hfagp": _scores(pti, "hfagp"), "pti": _scores(pti, "pti"), "inversion": _scores(inversion, "pti"),
                 "hfagp_all_test_frames": _scores(method, "hfagp"), "depth_error": depth_errors(workdir),
                 # Face scores on the baselines' frames; HFA-GP's readback over the whole video (a baseline is
                 # fitted per frame: a handful of frames, no readback).
                 "face": {"hfagp": {**_face(method, "hfagp"), **_face(pti, "hfagp", readback=False)},
                          "pti": _face(pti, "pti", readback=False),
                          "inversion": _face(inversion, "pti", readback=False)}}
        per_identity[i] = entry
        log(f"table 1, identity {i}: HFA-GP novel {entry['hfagp']['novel_psnr']:.2f} dB, PTI "
            f"{entry['pti']['novel_psnr']:.2f} dB, W+ inversion {entry['inversion']['novel_psnr']:.2f} dB")
        for name, label in (("hfagp", "HFA-GP (RGB)"), ("pti", "PTI"), ("inversion", "W+ inversion, no tuning")):
            s = entry[name]
            depth = entry["depth_error"] if name == "hfagp" else {}
            rows.append([i, label, _fmt(s["same_psnr"]), _fmt(s["same_ssim"], ".3f"), _fmt(s["novel_psnr"]),
                         _fmt(s["novel_ssim"], ".3f"), _fmt(depth.get("same_view"), ".3f"),
                         _fmt(depth.get("novel_views"), ".3f")])
    for name, label in (("hfagp", "HFA-GP (RGB)"), ("pti", "PTI"), ("inversion", "W+ inversion, no tuning")):
        mean = lambda key: float(np.mean([per_identity[i][name][key] for i in exp.identities]))
        depth = lambda key: float(np.mean([per_identity[i]["depth_error"][key] for i in exp.identities])) \
            if name == "hfagp" else None
        rows.append(["mean", label, _fmt(mean("same_psnr")), _fmt(mean("same_ssim"), ".3f"), _fmt(mean("novel_psnr")),
                     _fmt(mean("novel_ssim"), ".3f"), _fmt(depth("same_view"), ".3f"),
                     _fmt(depth("novel_views"), ".3f")])
    beats = {i: per_identity[i]["hfagp"]["novel_psnr"] > per_identity[i]["pti"]["novel_psnr"] for i in exp.identities}
    mean_all = lambda key: float(np.mean([per_identity[i]["hfagp_all_test_frames"][key] for i in exp.identities]))
    note = (f"The first {exp.pti.max_frames} of {exp.test_frames} test frames of each identity (HFA-GP on all of "
            f"them: same-view {mean_all('same_psnr'):.2f} dB, novel-view {mean_all('novel_psnr'):.2f} dB, mean over "
            f"identities). Novel views: the ground-truth views of each test frame (yaw +-20, +-35 deg, pitch +-15 "
            f"deg). PTI: "
            f"{exp.pti.w_steps} inversion steps in {exp.pti.latent_space.upper()} + {exp.pti.g_steps} tuning steps per "
            f"frame, L2{' + LPIPS' if exp.pti.lpips_weight > 0 else ''}; W+ inversion: the same inversion in W+, no "
            f"tuning. Depth error: mean |image_depth - ground truth| on the foreground, world units (the head is "
            f"~0.5 units tall). HFA-GP's novel-view PSNR beats PTI's on "
            f"{sum(beats.values())} of {len(beats)} identities.")
    labels = (("hfagp", "HFA-GP (RGB)"), ("pti", "PTI"), ("inversion", "W+ inversion, no tuning"))
    face_rows = [((i, label), per_identity[i]["face"][name]) for i in exp.identities for name, label in labels]
    face_rows += [(("mean", label), _mean_face([per_identity[i]["face"][name] for i in exp.identities]))
                  for name, label in labels]
    note += "\n\n" + face_table(["identity", "method"], face_rows) + "\n\n" + FACE_NOTE
    header = ["identity", "method", "same-view PSNR", "SSIM", "novel-view PSNR", "SSIM", "depth err (same)",
              "depth err (novel)"]
    figure = figure_table1(out, exp)
    note += (f"\n\nPictures: {figure.relative_to(out)} (per identity: rows = a test frame's own view, then its novel "
             f"views; columns = ground truth | HFA-GP | PTI | W+ inversion).")
    return write_table(out, exp, "table1", "Table 1: reconstruction and novel views, HFA-GP vs PTI", header, rows,
                       {"per_identity": per_identity, "hfagp_beats_pti_novel": beats}, wall, note)


def figure_table1(out: Path, exp) -> Path:
    """OUT/figures/table1.png: per identity (left to right), its first baseline frame with rows = the frame's own
    view then its ground-truth novel views, columns = ground truth | HFA-GP | PTI | W+ inversion."""
    from hfagp_common.images import read_image

    blocks = []
    for i in exp.identities:
        evals = out / "runs" / f"rgb_id{i}" / "eval"
        pti_png = sorted((evals / "pti" / "comparisons").glob("frame_*.png"))[0]
        pti = read_image(pti_png)
        inversion = read_image(evals / "inversion" / "comparisons" / pti_png.name)
        size = pti.shape[1] // 3
        blocks.append(np.concatenate([pti, inversion[:, 2 * size:]], axis=1))
    return _save_side_by_side(out / "figures" / "table1.png", blocks)


def _save_side_by_side(path: Path, blocks: Sequence[np.ndarray]) -> Path:
    """Writes the blocks ([H, W_i, 3] in [-1, 1]) left to right with a white gap of 8 pixels between them."""
    from hfagp_common.images import save_png, to_uint8

    gap = np.ones((blocks[0].shape[0], 8, 3), np.float32)
    save_png(path, to_uint8(np.concatenate([x for block in blocks for x in (block, gap)][:-1], axis=1)))
    return path


def figure_runs(out: Path, name: str, blocks: Sequence[Sequence[str]]) -> Path:
    """OUT/figures/<name>.png: one block per entry of `blocks` (run names, left to right), each the first test
    frame's ground truth then every run's render (columns), rows = the frame's own view then its novel views, as in
    the runs' evaluation comparisons (WORKDIR/eval/method/comparisons: ground truth | render)."""
    from hfagp_common.images import read_image

    columns_of = []
    for runs in blocks:
        columns = []
        for j, run in enumerate(runs):
            comparisons = out / "runs" / run / "eval" / "method" / "comparisons"
            pngs = sorted(comparisons.glob("frame_*.png"))
            if not pngs:
                raise FileNotFoundError(f"no evaluation comparisons in {comparisons}")
            image = read_image(pngs[0])
            size = image.shape[1] // 2
            columns += [image[:, :size], image[:, size:]] if j == 0 else [image[:, size:]]
        columns_of.append(np.concatenate(columns, axis=1))
    return _save_side_by_side(out / "figures" / f"{name}.png", columns_of)


def part_table2_3(out: Path, exp, worlds_of: dict, log) -> str:
    wall = 0.0
    recipes = [("rgb", "rgb", "video", "RGB frames"), ("expression_true", "expression", "true_expression",
                "expression: true parameters (10)"), ("expression_tracked", "expression", "video",
                "expression: tracked 76-d"), ("audio", "audio", "video", "audio: MFCC windows")]
    per_identity, rows = {}, []
    for i in exp.identities:
        per_identity[i] = {}
        for name, encoder, world, label in recipes:
            run = Run(f"{name}_id{i}", i, encoder=encoder, world=world)
            workdir, train_s = train(out, exp, run, worlds_of[i])
            summary = evaluate_run(workdir, exp)
            wall += train_s + evaluation_wall_s(summary)
            s = _scores(summary, "hfagp")
            s["expression_r2"] = expression_r2(workdir)
            s["face"] = _face(summary, "hfagp")
            per_identity[i][name] = s
            rows.append([i, label, _fmt(s["same_psnr"]), _fmt(s["same_ssim"], ".3f"), _fmt(s["novel_psnr"]),
                         _fmt(s["novel_ssim"], ".3f"), _fmt(s["expression_r2"]["all"], ".3f"),
                         _fmt(s["expression_r2"]["jaw_open"], ".3f")])
        log(f"tables 2-3, identity {i}: " + ", ".join(f"{n} {per_identity[i][n]['novel_psnr']:.2f}"
                                                     for n, *_ in recipes))
    for name, _, _, label in recipes:
        mean = lambda key: float(np.mean([per_identity[i][name][key] for i in exp.identities]))
        r2 = lambda key: float(np.mean([per_identity[i][name]["expression_r2"][key] for i in exp.identities]))
        rows.append(["mean", label, _fmt(mean("same_psnr")), _fmt(mean("same_ssim"), ".3f"), _fmt(mean("novel_psnr")),
                     _fmt(mean("novel_ssim"), ".3f"), _fmt(r2("all"), ".3f"), _fmt(r2("jaw_open"), ".3f")])
    face_rows = [((i, label), per_identity[i][name]["face"]) for i in exp.identities for name, _, _, label in recipes]
    face_rows += [(("mean", label), _mean_face([per_identity[i][name]["face"] for i in exp.identities]))
                  for name, _, _, label in recipes]
    figure = figure_runs(out, "table2_3", [[f"{name}_id{i}" for name, *_ in recipes] for i in exp.identities])
    note = ("Expression R^2: how much of the true expression parameters (jaw_open, smile, blinks, gaze, ...; "
            "pooled over those that vary; and jaw_open alone, the one speech moves) a linear map of the encoder's k "
            "coefficients predicts on frames it was not fitted on (every frame of the video, each fifth predicted "
            "from the other four fifths). With the true parameters as input the encoder is linear in them, so its "
            "1.0 is a check of the measure. Audio: "
            "MFCC windows of the speech (avatar_data.audio_features), not DeepSpeech.\n\n"
            f"Pictures: {figure.relative_to(out)} (per identity: rows = its first test frame's own view, then its "
            f"novel views; columns = ground truth | " + " | ".join(label for *_, label in recipes) + ").\n\n" +
            face_table(["identity", "driving signal"], face_rows) + "\n\n" + FACE_NOTE + " The held-out readback "
            "is the lip-sync analogue of the paper's SyncNet score: the held-out frames are driven by their own "
            "signal (frames, expression vectors or speech) only.")
    header = ["identity", "driving signal", "same-view PSNR", "SSIM", "novel-view PSNR", "SSIM", "expression R^2",
              "jaw_open R^2"]
    return write_table(out, exp, "table2_3", "Tables 2-3: expression- and audio-driven reenactment", header, rows,
                       {"per_identity": per_identity}, wall, note)


def fast_overrides(exp, generator_tuning_start: int) -> tuple:
    """Config overrides of the fast recipe (`exp.fast`) with the generator tuned from `generator_tuning_start`."""
    steps = int(exp.fast.total_steps)
    return (("schedule.total_steps", steps), ("schedule.generator_tuning_start", int(generator_tuning_start)),
            ("optim.learning_rate", float(exp.fast.learning_rate)), ("model.prior_init", exp.fast.prior_init),
            ("eval_every", steps), ("checkpoint.every", steps))


def ablation_runs(exp) -> list[tuple[str, list[Run]]]:
    """Table 4's runs: [(variant label, one Run per seed)], on the first identity, in `exp.ablations.recipe`."""
    recipe = exp.ablations.recipe
    if recipe not in ("fast", "faithful"):
        raise ValueError(f"ablations.recipe must be 'fast' or 'faithful', got {recipe!r}")
    base = fast_overrides(exp, exp.ablations.generator_tuning_start) if recipe == "fast" else ()
    suffix = "_fast" if recipe == "fast" else ""
    i = exp.identities[0]
    variants = [("qr (default)", ())] + [(name, tuple(v.items())) for name, v in ABLATIONS.items()]
    return [(label, [Run(f"ablation_{label.split()[0]}{suffix}_seed{seed}_id{i}", i, overrides=base + overrides,
                         seed=int(seed)) for seed in exp.ablations.seeds]) for label, overrides in variants]


def part_table4(out: Path, exp, worlds_of: dict, log) -> str:
    wall = 0.0
    i = exp.identities[0]
    results, rows = {}, []
    variants = ablation_runs(exp)
    for label, runs in variants:
        values = []
        for run in runs:
            workdir, train_s = train(out, exp, run, worlds_of[i])
            summary = evaluate_run(workdir, exp)
            wall += train_s + evaluation_wall_s(summary)
            face = _face(summary, "hfagp")
            values.append({**_scores(summary, "hfagp"), "novel_face_psnr": face["novel_face_psnr"],
                           "same_detail_ratio": face["same_detail_ratio"], "jaw_open_r2": face.get("all_jaw_open_r2")})
        stats = {k: (float(np.mean([v[k] for v in values])), float(np.std([v[k] for v in values])))
                 if all(v[k] is not None for v in values) else (None, None) for k in values[0]}
        results[label] = {"per_seed": values, "mean_std": stats}
        rows.append([label, *("—" if stats[k][0] is None else f"{stats[k][0]:.2f} ± {stats[k][1]:.2f}"
                              if "psnr" in k else f"{stats[k][0]:.2g} ± {stats[k][1]:.1g}" if "detail" in k
                              else f"{stats[k][0]:.3f} ± {stats[k][1]:.3f}"
                              for k in ("same_psnr", "same_ssim", "novel_psnr", "novel_ssim", "novel_face_psnr",
                                        "same_detail_ratio", "jaw_open_r2"))])
        log(f"table 4: {label}: novel {stats['novel_psnr'][0]:.2f} ± {stats['novel_psnr'][1]:.2f} dB")
    figure = figure_runs(out, "table4", [[runs[0].name for _, runs in variants]])
    recipe = (f"the fast recipe ({exp.fast.total_steps} steps, learning rate {exp.fast.learning_rate}, the generator "
              f"tuned from step {exp.ablations.generator_tuning_start})" if exp.ablations.recipe == "fast" else
              f"the faithful recipe ({exp.total_steps} steps)")
    default = results["qr (default)"]["mean_std"]["novel_psnr"]
    init = run_config(exp, variants[0][1][0], Path(".")).model.prior_init
    note = (f"Identity {i}, RGB encoder, {recipe}, k = {exp.k} and prior init {init} unless named; mean ± std over "
            f"seeds {list(exp.ablations.seeds)} (seed: parameter initialisation, batch order, rendering jitter). "
            f"The default's seed spread at novel views is ± {default[1]:.2f} dB: smaller differences are noise.\n\n"
            f"Pictures: {figure.relative_to(out)} (seed {exp.ablations.seeds[0]}; rows = the first test frame's own "
            f"view, then its novel views; columns = ground truth | " + " | ".join(label for label, _ in variants) +
            ").")
    note += ("\n\nFace PSNR at the novel views, the detail ratio at the frames' own view and the jaw_open readback "
             "r^2 over the whole video: `hfagp.metrics.face_scores` / `readback`, as in Tables 1-3.")
    header = ["variant", "same-view PSNR", "SSIM", "novel-view PSNR", "SSIM", "face PSNR (novel)",
              "detail ratio", "jaw_open r^2"]
    return write_table(out, exp, "table4", "Table 4: ablations", header, rows, {"results": results}, wall, note)


def part_prior_value(out: Path, exp, worlds_of: dict, log) -> str:
    wall, per_identity, rows = 0.0, {}, []
    for i in exp.identities:
        random_run = Run(f"random_generator_id{i}", i, overrides=(("generator.path", ""),
                                                                 ("generator.preset", "heads128")))
        scores = []
        for run in (Run(f"rgb_id{i}", i), random_run):
            workdir, train_s = train(out, exp, run, worlds_of[i])
            summary = evaluate_run(workdir, exp)
            wall += train_s + evaluation_wall_s(summary)
            scores.append(_scores(summary, "hfagp"))
        prior, random = scores
        per_identity[i] = {"prior": prior, "random": random}
        for label, s in (("pretrained prior", prior), ("random generator", random)):
            rows.append([i, label, _fmt(s["same_psnr"]), _fmt(s["novel_psnr"]), _fmt(s["novel_ssim"], ".3f")])
        log(f"prior value, identity {i}: novel {prior['novel_psnr']:.2f} (prior) vs {random['novel_psnr']:.2f} dB")
    header = ["identity", "generator", "same-view PSNR", "novel-view PSNR", "novel-view SSIM"]
    return write_table(out, exp, "prior_value", "The prior's value: the same run from a random generator", header, rows,
                       {"per_identity": per_identity}, wall,
                       "Random generator: the prior's architecture (preset heads128) with untrained weights.")


def part_time_to_avatar(out: Path, exp, worlds_of: dict, log) -> str:
    wall = 0.0
    i = exp.identities[0]
    step = max(int(exp.total_steps) // 6, 1)
    fast_steps = int(exp.fast.total_steps)
    recipes = [("faithful", Run(f"curve_faithful_id{i}", i, overrides=(("eval_every", step),)))]
    for start in exp.fast.generator_tuning_starts:
        recipes.append((f"fast, G from {start}", Run(f"curve_fast_g{start}_id{i}", i, overrides=(
            *fast_overrides(exp, start), ("eval_every", max(fast_steps // 3, 1))))))
    curves, rows = {}, []
    for label, run in recipes:
        workdir, train_s = train(out, exp, run, worlds_of[i])
        entries = [json.loads(x) for x in (workdir / "eval_metrics.jsonl").read_text().splitlines()]
        start = entries[0]["time"]
        curves[label] = [{"step": e["step"], "novel_psnr": e.get("eval/novel_psnr"), "same_psnr": e["eval/psnr"],
                          "wall_s": round(e["time"] - start, 1)} for e in entries]
        summary = evaluate_run(workdir, exp)
        wall += train_s + evaluation_wall_s(summary)
        s = _scores(summary, "hfagp")
        curves[label + " (final)"] = s
        rows.append([label, run_config(exp, run, Path(".")).schedule.total_steps, _fmt(s["same_psnr"]),
                     _fmt(s["novel_psnr"]), " ".join(f"{c['step']}:{_fmt(c['novel_psnr'])}" for c in curves[label]),
                     f"{curves[label][-1]['wall_s'] / 60:.1f}"])
        log(f"time to an avatar, {label}: novel {s['novel_psnr']:.2f} dB")
    faithful_novel = curves["faithful (final)"]["novel_psnr"]
    best = max((label for label, _ in recipes[1:]), key=lambda label: curves[label + " (final)"]["novel_psnr"])
    gap = curves[best + " (final)"]["novel_psnr"] - faithful_novel
    header = ["recipe", "steps", "same-view PSNR", "novel-view PSNR", "novel-view PSNR by step", "wall min"]
    note = (f"Faithful: the default recipe ({exp.total_steps} steps, learning rate 1e-3, generator tuned from step "
            f"{exp.generator_tuning_start}). Fast: {fast_steps} steps (a quarter), learning rate "
            f"{exp.fast.learning_rate}, the generator tuned from the step named. Identity {i}; wall minutes from the "
            f"first evaluation to the last, evaluations included. The best fast recipe ({best}) is {gap:+.2f} dB "
            f"from the faithful one's novel-view PSNR.")
    return write_table(out, exp, "time_to_avatar", "Time to an avatar", header, rows,
                       {"curves": curves, "best_fast": best, "best_fast_minus_faithful_novel_db": gap}, wall, note)


PARTS = {"table1": part_table1, "table2_3": part_table2_3, "table4": part_table4, "prior_value": part_prior_value,
         "time_to_avatar": part_time_to_avatar}


def run_experiments(exp, out) -> dict:
    """Runs the enabled parts (resumable); returns {part: its markdown}. Also writes OUT/results.md."""
    from tqdm.auto import tqdm

    config_schema.check(exp, experiments_config.SCHEMA, experiments_config.RELATIONS)  # before any write
    out = Path(out).absolute()
    workdir_lib.check_output_dir(out, "experiments", OUTPUT_LAYOUT, flag="--out")
    out.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    worlds_of = {}
    for i in tqdm(exp.identities, desc="worlds", unit="identity", file=sys.stderr):
        video = ensure_world(out, exp, i)
        worlds_of[i] = {"video": video, "true_expression": ensure_true_expression_world(out, video)}
    texts = {}
    parts = [p for p in PARTS if exp.parts[p]]
    for part in tqdm(parts, desc="parts", unit="part", file=sys.stderr):
        texts[part] = _part_done(out, exp, part) or PARTS[part](out, exp, worlds_of, log)
    write_text(out / "results.md", "# The paper's experiments on the head world\n\n" + "\n".join(texts.values()))
    return texts
