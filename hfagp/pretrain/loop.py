"""Pretraining a miniature EG3D prior on the head world: `pretrain(config, workdir)`.

Decide how to run. The order is important, and every stage resumes where a stopped run left it:
  1. the data set, rendered once into shards (`avatar_data.worlds.heads.dataset`), and the validation identities;
  2. the auto-decoder (`hfagp.pretrain.objective`: free scene codes or a code map of the world's parameters),
     trained with the project's train step (`hfagp.runtime.step.make_train_step`), checkpointed every
     `checkpoint_every` steps (orbax), and on a signal or after `stop_after_hours` (then rerun to continue);
  3. every `eval_every` steps the held-out identities are inverted (`hfagp.pretrain.validate`; a picture of truth
     over inversion in WORKDIR/samples/validation_STEP.png, and for a code map its renders of the same people's
     expressions in expressions_STEP.png); the best generator so far (by novel-view PSNR) is
     kept in WORKDIR/best/, and training stops early after `patience` validations without improvement;
  4. the export: the best generator with its mapping network fitted to the codes and `w_avg` set to the mean
     code (`hfagp.pretrain.export`), stored as `export.dtype`, validated again as stored, with a provenance
     file (command, commit, seed, data, steps, wall time, machine, held-out metrics, checksums).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import jax
import numpy as np

import eg3d_flax
from configs import pretrain_heads as pretrain_config
from hfagp import workdir as workdir_lib
from hfagp.pretrain import data as data_lib
from hfagp.pretrain import export as export_lib
from hfagp.pretrain import objective
from hfagp.pretrain.validate import invert_and_score
from hfagp.runtime import checkpointing, summaries
from hfagp.runtime.config_keys import covered, flatten
from hfagp.runtime.step import create_train_state, make_train_step
from hfagp.runtime.stopping import StopRequest, TrainingError
from hfagp_common import config_schema
from hfagp_common.atomic import atomic_directory, write_text
from hfagp_common.cli import ConfigError
from hfagp_common.digest import sha256_file

BEST_DIR = "best"
SAMPLES_DIR = "samples"
TIMING_FILE = "timing.json"
# What a pretraining workdir holds: a directory with only these (or a pretraining config.json) is one.
PRETRAIN_LAYOUT = frozenset({workdir_lib.CONFIG_FILE, workdir_lib.CHECKPOINTS_DIR, workdir_lib.RANDOM_GENERATOR_DIR,
                             workdir_lib.METRICS_FILE, workdir_lib.EVAL_METRICS_FILE, workdir_lib.TENSORBOARD_DIR,
                             workdir_lib.LOCK_FILE, workdir_lib.CORRUPT_CHECKPOINTS_DIR, BEST_DIR, SAMPLES_DIR,
                             TIMING_FILE, data_lib.VALIDATION_FILE, data_lib.SWEEP_FILE, "data"})
PROVENANCE_FILE = "provenance.json"
REPO_ROOT = Path(__file__).resolve().parents[2]


def generator_config(gen_cfg) -> eg3d_flax.GeneratorConfig:
    """The architecture a pretraining config names (a preset with its overrides)."""
    base = eg3d_flax.preset(gen_cfg.preset)
    render = dataclasses.replace(base.render, depth_resolution=int(gen_cfg.depth_resolution),
                                 depth_resolution_importance=int(gen_cfg.depth_resolution_importance))
    return base.replace(channel_base=int(gen_cfg.channel_base), channel_max=int(gen_cfg.channel_max),
                        neural_rendering_resolution=int(gen_cfg.neural_rendering_resolution), render=render)


def _timing(workdir: Path) -> dict:
    path = workdir / TIMING_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _add_time(workdir: Path, stage: str, seconds: float) -> None:
    timing = _timing(workdir)
    timing[stage] = round(timing.get(stage, 0.0) + seconds, 1)
    write_text(workdir / TIMING_FILE, json.dumps(timing, indent=1) + "\n")


def _generator_with(G: eg3d_flax.Generator, params: dict, scene_codes: np.ndarray) -> eg3d_flax.Generator:
    """The generator with trained params and w_avg = the mean scene code (where inversion starts)."""
    G = G.replace_variables({"params": params, "buffers": G.variables["buffers"]})
    return export_lib.with_w_avg(G, scene_codes.mean(axis=0))


def _save_best(workdir: Path, G: eg3d_flax.Generator, model: dict, scene_codes: np.ndarray, step: int,
               scores: dict) -> None:
    """WORKDIR/best/: the generator (float32), codes.npz ('scene_codes' [S, w_dim], the W code of every data-set
    scene, and the auto-decoder's own params under their '/'-joined paths) and the validation scores, replaced
    atomically."""
    flat = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v)
            for path, v in jax.tree_util.tree_flatten_with_path(model)[0]}
    with atomic_directory(workdir / BEST_DIR, overwrite=True) as tmp:
        eg3d_flax.save_generator(G, tmp / "generator")
        np.savez(tmp / "codes.npz", scene_codes=scene_codes, **flat)
        (tmp / "best.json").write_text(json.dumps({"step": step, **_summary(scores)}, indent=1) + "\n")


def save_validation_sheet(path: Path, validation: dict, scores: dict) -> None:
    """A PNG of the held-out identities: per identity a row of ground-truth views over a row of the inverted
    prior's renders (columns: the frontal view, then the novel ones)."""
    from hfagp_common.images import image_grid, save_png, to_uint8

    truth, renders = validation["image"], scores["renders"]
    rows = np.concatenate([np.stack([t, r]) for t, r in zip(truth, renders)])    # [2I, V, R, R, 3]
    save_png(path, image_grid(to_uint8(rows.reshape((-1,) + rows.shape[2:])), columns=rows.shape[1]))


def save_expression_sheet(path: Path, G: eg3d_flax.Generator, code_map: dict, data: data_lib.PretrainData,
                          sweep: dict) -> None:
    """A PNG of what the code map learned of expressions: per held-out identity (`data_lib.expression_sweep`) a
    row of ground truth over a row of the generator rendering the code map's code of the same identity and
    expression parameters (columns: `data_lib.SWEEP_EXPRESSIONS`), frontal camera."""
    import jax.numpy as jnp

    from hfagp_common.images import image_grid, save_png, to_uint8

    vectors, expressions = sweep["identity_vectors"], sweep["expressions"]
    n = len(expressions)
    rows = []
    for i, vector in enumerate(vectors):
        codes = objective.apply_code_map(code_map, jnp.asarray(data.condition_of(np.repeat(vector[None], n, 0),
                                                                                 expressions)))
        ws = jnp.broadcast_to(codes[:, None], (n, G.num_ws, codes.shape[-1]))
        render = np.clip(np.asarray(G.synthesis(ws, np.repeat(sweep["label"][None], n, axis=0))["image"]), -1, 1)
        rows += [sweep["image"][i], render]
    save_png(path, image_grid(to_uint8(np.concatenate(rows)), columns=n))


def _summary(scores: dict) -> dict:
    keep = ("same_view_psnr", "novel_view_psnr", "gap_db", "same_view_ssim", "novel_view_ssim",
            "same_view_face_psnr", "novel_view_face_psnr", "same_view_detail_ratio", "novel_view_detail_ratio")
    # A detail ratio is a few 1e-4 for a blurred face: significant digits, not decimals.
    out = {k: float(f"{scores[k]:.3g}") if "detail" in k else round(scores[k], 4) for k in keep if k in scores}
    out["psnr_per_identity_and_view"] = np.round(scores["psnr"], 3).tolist()
    return out


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+uncommitted changes" if dirty else "") if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def file_checksums(directory: Path) -> dict:
    """{relative path: sha256} of every file under `directory` (sorted)."""
    out = {}
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        out[str(path.relative_to(directory))] = sha256_file(path)
    return out


def check_config(config, source: str = "") -> None:
    """Raises ConfigError naming the first knob that cannot work (configs/pretrain_heads.py's declared schema),
    before anything is written or rendered."""
    config_schema.check(config, pretrain_config.SCHEMA, pretrain_config.RELATIONS, source=source)


def pretrain(config, workdir, command: Optional[str] = None) -> dict:
    """Runs (or resumes) every stage in `workdir`, holding the workdir's lock (`hfagp.workdir.lock`: a second
    process on the same workdir stops at once); returns the provenance dict of the exported generator."""
    check_config(config)
    workdir = Path(workdir).absolute()
    workdir_lib.check_output_dir(workdir, "pretrain", PRETRAIN_LAYOUT)
    saved = workdir_lib.read_config_values(workdir) if workdir.is_dir() else None
    if saved is not None:
        config_schema.check_saved(saved, pretrain_config.SCHEMA, pretrain_config.RELATIONS,
                                  source=f"{workdir / workdir_lib.CONFIG_FILE}: ")
    workdir.mkdir(parents=True, exist_ok=True)
    with workdir_lib.lock(workdir, command or ""):
        return _pretrain(config, workdir, command)


# Config keys a resumed pretraining may change: the run's length and how often it validates, checkpoints and
# logs (the learning-rate schedule follows the new length from the resumed step on), and the export.
RESUMABLE_KEYS = ("schedule.total_steps", "schedule.eval_every", "schedule.checkpoint_every", "schedule.patience",
                  "schedule.keep", "schedule.stop_after_hours", "log_every", "progress_bar", "compilation_cache_dir",
                  "export")


def resume_changes(saved: dict, new: dict) -> list[str]:
    """Keys (sorted) whose values differ between the run's config.json `saved` and `new`, other than
    `RESUMABLE_KEYS` (keys or whole sections)."""
    old, cur = flatten(saved), flatten(new)
    keys = sorted(k for k in set(old) | set(cur) if old.get(k, object()) != cur.get(k, object()))
    return [k for k in keys if not covered(k, RESUMABLE_KEYS)]


def _pretrain(config, workdir: Path, command: Optional[str]) -> dict:
    workdir_lib.use_compilation_cache(config)
    config_json = config.to_json_best_effort(indent=2) + "\n"
    config_path = workdir / workdir_lib.CONFIG_FILE
    saved = workdir_lib.read_config_values(workdir)
    if saved is not None:
        changed = resume_changes(saved, json.loads(config_json))
        if changed:
            raise ConfigError(f"{workdir} holds a pretraining run of another config ({config_path}: changed "
                              f"{', '.join(changed[:8])}); resume with the run's config or use a new workdir")
    write_text(config_path, config_json)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)

    # 1. Data.
    from avatar_data.worlds.heads.dataset import default_identity_seeds

    seeds = default_identity_seeds(config.data.identities)
    data_dir = Path(config.data.dir or workdir / "data")
    t0 = time.perf_counter()
    rendered = data_lib.ensure_dataset(data_dir, seeds, config.data.scenes_per_identity, config.data.views_per_scene,
                                       config.data.resolution, config.seed, config.progress_bar)
    validation = data_lib.ensure_validation(workdir, config.validation.identity_seeds, config.validation.novel_yaw_deg,
                                            config.data.resolution)
    _add_time(workdir, "data_s", time.perf_counter() - t0)
    data = data_lib.load_data(data_dir)
    log(f"data: {len(data.image)} images, {data.num_scenes} scenes of {data.num_identities} identities "
        f"({rendered['shards_rendered']} shards rendered now); {len(validation['seeds'])} validation identities")

    # 2. Model, optimizer, state (restored if a checkpoint exists).
    gcfg = generator_config(config.generator)
    if gcfg.img_resolution != data.resolution:
        raise ConfigError(f"the generator renders {gcfg.img_resolution}px, the data is {data.resolution}px")
    if config.loss.face_weight > 0 and not data.has_part_labels:
        raise ConfigError(f"loss.face_weight={config.loss.face_weight} needs the data set's part labels, and "
                          f"{data_dir} is a version-1 data set without them; render a new one (data.dir)")
    G = eg3d_flax.random_generator(gcfg, seed=config.generator.init_seed)
    model = objective.init_model(config.model, data, gcfg.w_dim, config.seed)
    params = {"model": model, "generator": G.variables["params"]}
    total = int(config.schedule.total_steps)
    tx = objective.make_optimizer(config.optim, total, params)
    state = create_train_state(params, tx, jax.random.PRNGKey(config.seed))
    ckpt = checkpointing.Checkpointer(workdir, keep=config.schedule.keep)
    restored = ckpt.restore_latest(state, jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    if restored is not None:
        state = restored[0]
        log(f"resumed from {ckpt.directory} at step {int(state.step)}")
    start = int(state.step)
    best_path = workdir / BEST_DIR / "best.json"
    best = json.loads(best_path.read_text()) if best_path.is_file() else None
    history_path = workdir / workdir_lib.EVAL_METRICS_FILE
    history = [json.loads(x) for x in history_path.read_text().splitlines()] if history_path.is_file() else []

    # 3. Training with validation and early stopping.
    constants = {"generator_buffers": G.variables["buffers"]}
    loss_fn = objective.make_loss_fn(config, G.module, gcfg.num_ws)
    step_fn = jax.jit(make_train_step(loss_fn, tx, train_generator=True), donate_argnums=(0,))
    opt = config.optim
    patience, since_best = int(config.schedule.patience), 0
    if best is not None:
        since_best = sum(1 for h in history if h["step"] > best["step"])
    stopped_early = since_best >= patience and start < total

    def validate(done, state, best, since_best):
        """Inverts the held-out identities with the current weights; keeps the best generator so far."""
        codes = objective.scene_codes(state.params["model"], data)
        Gt = _generator_with(G, state.params["generator"], codes)
        scores = invert_and_score(Gt, validation, config.validation.invert_steps, config.validation.invert_lr)
        entry = {"step": done, **_summary(scores)}
        save_validation_sheet(workdir / SAMPLES_DIR / f"validation_{done:07d}.png", validation, scores)
        if "code_map" in state.params["model"]:
            save_expression_sheet(workdir / SAMPLES_DIR / f"expressions_{done:07d}.png", Gt,
                                  state.params["model"]["code_map"], data,
                                  data_lib.expression_sweep(workdir, config.validation.identity_seeds,
                                                            config.data.resolution))
        history.append(entry)
        with open(history_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        writer.scalars(done, {f"validation/{k}": v for k, v in entry.items() if isinstance(v, float)})
        log(f"step {done}: held-out same-view {entry['same_view_psnr']:.2f} dB, novel-view "
            f"{entry['novel_view_psnr']:.2f} dB (gap {entry['gap_db']:.2f} dB)")
        if best is None or entry["novel_view_psnr"] > best["novel_view_psnr"]:
            _save_best(workdir, Gt, state.params["model"], codes, done, scores)
            return entry, 0
        return best, since_best + 1

    bar = summaries.ProgressBar(total, start, enabled=config.progress_bar)
    writer = summaries.SummaryWriter(workdir, enabled=True)
    if start > 0 and (start % config.schedule.eval_every == 0 or start == total) and \
            not any(h["step"] == start for h in history):  # a run stopped between its checkpoint and validation
        best, since_best = validate(start, state, best, since_best)
        stopped_early = since_best >= patience
    t_train = time.perf_counter()
    limit_s = 3600.0 * float(config.schedule.stop_after_hours)
    t_rate, steps_rate = time.time(), 0
    try:
        with StopRequest() as stop:
            for step in range(start, total):
                if stopped_early:
                    break
                batch = data.batch(step, config.seed, opt.scenes_per_batch, opt.views_per_scene,
                                   gcfg.neural_rendering_resolution)
                state, metrics = step_fn(state, batch, constants)
                done = step + 1
                steps_rate += 1
                if done % config.log_every == 0 or done == total:
                    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
                    if not values.pop("finite"):
                        raise TrainingError(f"non-finite pretraining loss at step {done} ({values}); the last good "
                                            f"checkpoint is step {ckpt.latest_step()} in {ckpt.directory}")
                    rate = steps_rate / max(time.time() - t_rate, 1e-9)
                    t_rate, steps_rate = time.time(), 0
                    # Training images per second since the last log (validations and checkpoints included).
                    values["images_per_s"] = rate * opt.scenes_per_batch * opt.views_per_scene
                    ckpt.log_metrics(done, values)
                    writer.scalars(done, {f"train/{k}": v for k, v in values.items()})
                    bar.update(done, values, rate)
                out_of_time = limit_s > 0 and time.perf_counter() - t_train >= limit_s
                if done % config.schedule.checkpoint_every == 0 or done % config.schedule.eval_every == 0 or \
                        done == total or stop.signal is not None or out_of_time:
                    ckpt.save(done, state, None)  # before validating: a failed validation loses no training
                if done % config.schedule.eval_every == 0 or done == total:
                    best, since_best = validate(done, state, best, since_best)
                    stopped_early = since_best >= patience
                    if stopped_early:
                        break
                if stop.signal is not None:
                    log(f"stopped by signal {stop.signal} at step {done}; rerun the same command to resume")
                    return {"stopped_at": done}
                if out_of_time and done < total:
                    log(f"stopped after {config.schedule.stop_after_hours:g} h of training (schedule.stop_after_hours) "
                        f"at step {done} of {total}; rerun the same command to continue")
                    return {"stopped_at": done}
    finally:
        ckpt.wait()
        bar.close()
        writer.close()
        _add_time(workdir, "train_s", time.perf_counter() - t_train)
    if best is None:
        raise RuntimeError("no validation was run (schedule.eval_every > total_steps?)")

    # 4. Export.
    return export_best(config, workdir, data, validation, command=command)


def export_best(config, workdir: Path, data: data_lib.PretrainData, validation: dict,
                command: Optional[str] = None) -> dict:
    """Exports WORKDIR/best/ (see the module doc) into `export.dir` (default WORKDIR/generator)."""
    t0 = time.perf_counter()
    best = json.loads((workdir / BEST_DIR / "best.json").read_text())
    out_dir = Path(config.export.dir or workdir / "generator")
    done = out_dir / PROVENANCE_FILE
    if done.is_file():
        previous = json.loads(done.read_text())
        if previous.get("best_step") == best["step"] and previous.get("config") == json.loads(config.to_json_best_effort()):
            return previous  # this best generator was exported already
    G = eg3d_flax.load_generator(workdir / BEST_DIR / "generator")
    with np.load(workdir / BEST_DIR / "codes.npz") as f:
        scene_codes = f["scene_codes"]
    params, swd = export_lib.fit_mapping(G, scene_codes, config.export.mapping_steps, seed=config.seed)
    G = export_lib.with_w_avg(G.replace_variables({"params": params, "buffers": G.variables["buffers"]}),
                              scene_codes.mean(axis=0))
    stored = export_lib.storage_cast(G, config.export.dtype)
    scores = invert_and_score(stored, validation, config.validation.invert_steps, config.validation.invert_lr)
    timing = _timing(workdir)
    timing["export_s"] = round(time.perf_counter() - t0, 1)
    provenance = {
        "command": command or "python -m hfagp.pretrain --config=configs/pretrain_heads.py --workdir=WORKDIR",
        "commit": _git_commit(),
        "seed": int(config.seed),
        "config": json.loads(config.to_json_best_effort()),
        "data": {"identities": int(data.num_identities), "scenes": int(data.num_scenes), "images": int(len(data.image)),
                 "resolution": int(data.resolution), "views_per_scene": int(config.data.views_per_scene),
                 "identity_seeds": f"{data.metadata['identity_seeds'][0]}..{data.metadata['identity_seeds'][-1]}"},
        "best_step": int(best["step"]),
        "steps_run": int(max(h["step"] for h in _read_jsonl(workdir / workdir_lib.EVAL_METRICS_FILE))),
        "validation_during_training": best,
        "held_out_metrics": {**_summary(scores), "identity_seeds": [int(s) for s in validation["seeds"]],
                             "views_deg": validation["views"].tolist(), "invert_steps": int(config.validation.invert_steps),
                             "invert_lr": float(config.validation.invert_lr), "stored_dtype": config.export.dtype},
        "mapping_fit": {"steps": int(config.export.mapping_steps), "sliced_wasserstein_first_last":
                        [round(swd[0], 5), round(swd[-1], 5)] if swd else None},
        "wall_time_s": timing,
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count(),
                    "jax": jax.__version__, "backend": jax.default_backend(),
                    "device": str(jax.devices()[0].device_kind)},
    }
    export_lib.save(G, out_dir, config.export.dtype, metadata={"pretraining": f"see {PROVENANCE_FILE}"})
    provenance["checksums"] = file_checksums(out_dir)
    write_text(out_dir / PROVENANCE_FILE, json.dumps(provenance, indent=1) + "\n")
    return provenance


def _read_jsonl(path: Path) -> list:
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()] if Path(path).is_file() else []
