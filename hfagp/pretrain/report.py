"""What a head prior knows, in numbers and pictures: ``python -m hfagp.pretrain.report GENERATOR_DIR --out DIR``.

Held-out identities (evaluation seeds the prior never saw) are inverted in W+ from one frontal view with the
generator frozen (`hfagp.pretrain.validate`), then rendered at that view and at novel views, beside the head
world's ground truth. The same inversion of a randomly initialised generator of the same architecture is the
baseline (`--no-baseline` skips it): it shows what the inversion alone reaches without a prior. Writes
DIR/inversion.json (PSNR/SSIM per identity and view, means, the gap between same-view and novel-view PSNR, the
face region's PSNR and detail ratio (`hfagp.metrics`, from the head world's part labels); the baseline's under
'random_generator'), DIR/inversion.md (the tables) and DIR/orbit_strip.png (rows per identity:
ground truth, the inverted prior, the inverted random generator; columns: yaw from -40 to +40 degrees).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from hfagp_common import cli
from hfagp_common.atomic import write_text

NAME = "hfagp.pretrain.report"
# The figure's yaw sweep (degrees from frontal); the scored novel views are +-30.
STRIP_YAW_DEG = (-40.0, -30.0, -15.0, 0.0, 15.0, 30.0, 40.0)


def _table(seeds, scores, novel: str) -> list[str]:
    lines = [f"| identity | same-view PSNR | same-view SSIM | novel-view PSNR (yaw {novel}) | novel-view SSIM "
             "| gap (dB) | face PSNR (same / novel) | detail ratio (same / novel) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    finite_mean = lambda x: float(np.mean(x[np.isfinite(x)])) if np.isfinite(x).any() else float("nan")
    for i, seed in enumerate(seeds):
        p, q = scores["psnr"][i], scores["ssim"][i]
        f, d = scores["face_psnr"][i], scores["detail_ratio"][i]
        lines.append(f"| {seed} | {p[0]:.2f} | {q[0]:.3f} | {p[1:].mean():.2f} | {q[1:].mean():.3f} | "
                     f"{p[0] - p[1:].mean():.2f} | {f[0]:.2f} / {finite_mean(f[1:]):.2f} | "
                     f"{d[0]:.2g} / {finite_mean(d[1:]):.2g} |")
    lines.append(f"| mean | {scores['same_view_psnr']:.2f} | {scores['same_view_ssim']:.3f} | "
                 f"{scores['novel_view_psnr']:.2f} | {scores['novel_view_ssim']:.3f} | {scores['gap_db']:.2f} | "
                 f"{scores['same_view_face_psnr']:.2f} / {scores['novel_view_face_psnr']:.2f} | "
                 f"{scores['same_view_detail_ratio']:.2g} / {scores['novel_view_detail_ratio']:.2g} |")
    return lines


def _stats(scores) -> dict:
    return {"psnr": np.round(scores["psnr"], 3).tolist(), "ssim": np.round(scores["ssim"], 4).tolist(),
            "face_psnr": np.round(scores["face_psnr"], 3).tolist(),
            "detail_ratio": [[float(f"{v:.3g}") for v in row] for row in scores["detail_ratio"]],
            **{k: round(scores[k], 4) for k in ("same_view_psnr", "novel_view_psnr", "gap_db", "same_view_ssim",
                                                "novel_view_ssim", "same_view_face_psnr", "novel_view_face_psnr")},
            # A ratio of a few 1e-4: significant digits, not decimals.
            **{k: float(f"{scores[k]:.3g}") for k in ("same_view_detail_ratio", "novel_view_detail_ratio")}}


def report(generator_dir, out_dir, identity_seeds: Sequence[int] = (0, 1, 2, 3, 4), invert_steps: int = 150,
           invert_lr: float = 0.02, novel_yaw_deg: Sequence[float] = (-30.0, 30.0), baseline: bool = True,
           baseline_seed: int = 0, latent_space: str = "w+") -> dict:
    """Writes the report into `out_dir` (see the module doc); returns inversion.json's dict. The baseline is
    `eg3d_flax.random_generator(G.config, seed=baseline_seed)`. latent_space: 'w+' (a code per layer) or 'w'
    (one code on every layer: the space the pretraining's scene codes live in)."""
    import jax.numpy as jnp

    import eg3d_flax
    from hfagp.pretrain.data import ensure_validation
    from hfagp.pretrain.validate import invert_and_score
    from hfagp_common.images import image_grid, save_png, to_uint8

    G = eg3d_flax.load_generator(generator_dir)
    out = Path(out_dir)
    for sub in ("scored", "strip"):   # the ground truth of the scored views and of the strip's yaw sweep
        (out / sub).mkdir(parents=True, exist_ok=True)
    resolution = G.config.img_resolution
    scored = ensure_validation(out / "scored", identity_seeds, novel_yaw_deg, resolution)
    scores = invert_and_score(G, scored, invert_steps, invert_lr, latent_space)
    generators = [(G, scores)]
    if baseline:
        R = eg3d_flax.random_generator(G.config, seed=baseline_seed)
        generators.append((R, invert_and_score(R, scored, invert_steps, invert_lr, latent_space)))
    # The orbit strip: ground truth and the inverted codes along a yaw sweep.
    strip_views = [y for y in STRIP_YAW_DEG if y != 0.0]
    strip = ensure_validation(out / "strip", identity_seeds, strip_views, resolution)
    order = np.argsort(np.concatenate([[0.0], strip_views]))
    rows = []
    for i in range(len(identity_seeds)):
        views = strip["label"][i]
        rows.append(strip["image"][i][order])
        for gen, gen_scores in generators:
            ws = jnp.broadcast_to(jnp.asarray(gen_scores["ws"][i]), (len(views),) + gen_scores["ws"].shape[1:])
            rows.append(np.clip(np.asarray(gen.synthesis(ws, views)["image"]), -1, 1)[order])
    grid = image_grid(to_uint8(np.concatenate(rows)), columns=len(order))
    save_png(out / "orbit_strip.png", grid)
    summary = {"generator": str(Path(generator_dir).absolute()), "identity_seeds": [int(s) for s in identity_seeds],
               "views_deg": scored["views"].tolist(), "invert_steps": int(invert_steps), "invert_lr": float(invert_lr),
               "latent_space": latent_space, **_stats(scores),
               "strip_yaw_deg": [float(y) for y in np.concatenate([[0.0], strip_views])[order]],
               "strip_rows": ["ground truth", "prior"] + (["random generator"] if baseline else [])}
    novel = ", ".join(f"{v[0]:+g}" for v in scored["views"][1:])
    space = {"w+": "W+", "w": "W"}[latent_space]
    lines = [f"The prior ({Path(generator_dir).name}), inverted in {space}:", "", *_table(identity_seeds, scores, novel)]
    if baseline:
        summary["random_generator"] = {"seed": int(baseline_seed), **_stats(generators[1][1])}
        lines += ["", f"A random generator of the same architecture (seed {baseline_seed}), inverted the same way:",
                  "", *_table(identity_seeds, generators[1][1], novel)]
    write_text(out / "inversion.json", json.dumps(summary, indent=1) + "\n")
    write_text(out / "inversion.md", "\n".join(lines) + "\n")
    return summary


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(NAME, description="Invert held-out head-world identities in W+ from a frontal view with "
                                             "a head prior frozen; score same and novel views; draw an orbit strip.")
    p.add_argument("generator", type=cli.path, help="a generator directory (e.g. pretrained/heads128)")
    p.add_argument("--out", required=True, type=cli.path, help="output directory")
    p.add_argument("--identities", type=cli.int_list(0, 999, 1000), default=[0, 1, 2, 3, 4],
                   help="evaluation identity seeds (0-999), comma-separated")
    p.add_argument("--invert-steps", type=cli.int_in(1, 100_000), default=150)
    p.add_argument("--invert-lr", type=cli.positive_float, default=0.02)
    p.add_argument("--latent-space", default="w+", choices=("w+", "w"), help="invert a code per layer (W+) or one "
                                                                              "code on every layer (W)")
    p.add_argument("--no-baseline", action="store_true", help="skip the random generator's inversion")
    return p


def _main(args) -> int:
    summary = report(args.generator, args.out, args.identities, args.invert_steps, args.invert_lr, baseline=not args.no_baseline,
                     latent_space=args.latent_space)
    keys = ("same_view_psnr", "novel_view_psnr", "gap_db")
    shown = {"prior": {k: summary[k] for k in keys}}
    if "random_generator" in summary:
        shown["random_generator"] = {k: summary["random_generator"][k] for k in keys}
    print(json.dumps(shown, indent=1))
    return 0


main = cli.entry_point(NAME, build_parser, _main)


if __name__ == "__main__":
    cli.exit(main())
