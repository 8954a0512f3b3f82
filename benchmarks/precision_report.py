"""How far each compute dtype and float32 precision moves the generator from the official PyTorch outputs.

    python benchmarks/precision_report.py --out precision.json
    python benchmarks/precision_report.py --generators tiny128 --settings float32:highest,float32:tf32

For each fixture generator (the official EG3D's random-weight tiny128 / small512 pickles, converted here)
and each setting `DTYPE:PRECISION` (generator compute dtype : float32 matmul/conv precision,
`hfagp/precision.py`), one jitted program renders the fixture's W+ codes and cameras and differentiates
sum(image * R) with respect to the codes and every parameter, as `tests/eg3d_flax/test_generator_parity.py`
does. Each row gives, against the PyTorch reference arrays of `fixtures/eg3d/*_reference.npz` (float32,
CPU): the image's max-abs and rel-L2 error, the loss's relative error, the W+ gradient's rel-L2 error and
the largest rel-L2 error of the five reference parameter gradients; and the same image/gradient
differences against this port's own first setting (normally float32:highest), which isolates what the
setting itself changes. `within_parity_tolerance` applies the parity tests' bounds (forward atol/rtol
1e-4, gradients rel-L2 1e-2).

Fixtures: `--fixtures DIR` (the folder holding eg3d/), else `$HFAGP_SHARED_DIR/fixtures`, else
`../shared/fixtures` beside the repository (as the tests find them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SETTINGS = "float32:highest,float32:tf32,float32:default,bfloat16:highest"
FORWARD_TOL = 1e-4   # the parity tests' atol = rtol of forward arrays
GRADIENT_TOL = 1e-2  # the parity tests' rel-L2 bound of gradients through the renderer


def fixtures_dir(explicit: str | None = None) -> Path:
    """The fixture folder (holding eg3d/), found as the tests find it."""
    if explicit:
        return Path(explicit).expanduser()
    shared = os.environ.get("HFAGP_SHARED_DIR")
    return (Path(shared).expanduser() if shared else REPO.parent / "shared") / "fixtures"


def parse_settings(text: str) -> list[tuple[str, str]]:
    from hfagp.precision import PRECISIONS

    out = []
    for item in text.split(","):
        dtype, _, precision = item.strip().partition(":")
        if dtype not in ("float32", "bfloat16") or precision not in PRECISIONS:
            raise ValueError(f"--settings: {item!r} is not DTYPE:PRECISION with DTYPE float32|bfloat16 and "
                             f"PRECISION one of {PRECISIONS}")
        out.append((dtype, precision))
    return out


def rel_l2(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def load_fixture_generator(name: str, eg3d_fixtures: Path, workdir: Path):
    """The fixture pickle converted by the project's converter, loaded as an `eg3d_flax.Generator`."""
    import eg3d_flax
    from convert_weights.convert import convert_snapshot

    out = workdir / name
    convert_snapshot(eg3d_fixtures / f"{name}.pkl", out, log=lambda msg: None)
    return eg3d_flax.load_generator(out)


def evaluate(G, ref: dict, R):
    """(image NHWC, loss, grad of the codes, {torch key: parameter gradient}) of sum(image * R)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from convert_weights import eg3d_keys

    m, buffers = G.module, G.variables["buffers"]
    c = jnp.asarray(ref["c"])
    R = jnp.asarray(np.transpose(R, (0, 2, 3, 1)))

    def loss(params, ws):
        out = m.apply({"params": params, "buffers": buffers}, ws, c, method=m.synthesis)
        image = out["image"].astype(jnp.float32)
        return jnp.sum(image * R), image

    (value, image), (g_params, g_ws) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
        G.variables["params"], jnp.asarray(ref["ws"]))
    flat = {eg3d_keys.flax_path_to_torch_key(tuple(k.key for k in kp)): v
            for kp, v in jax.tree_util.tree_flatten_with_path(g_params)[0]}
    grads = {}
    for key in ref:
        if key.startswith("grad_param__"):
            torch_key = key[len("grad_param__"):].replace("__", ".")
            grads[torch_key] = eg3d_keys.flax_to_torch_array(torch_key.rsplit(".", 1)[-1],
                                                              np.asarray(flat[torch_key], np.float32))
    return np.asarray(image), float(value), np.asarray(g_ws, np.float32), grads


def report(names: list[str], settings: list[tuple[str, str]], eg3d_fixtures: Path, emit=print) -> list[dict]:
    """One row per (generator, setting); `emit` gets each row as it is measured."""
    import eg3d_flax
    import jax
    import numpy as np

    from hfagp import precision as precision_lib

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            with np.load(eg3d_fixtures / f"{name}_reference.npz") as z:
                ref = {k: z[k] for k in z.files}
            R = ref["R"] if "R" in ref else np.random.RandomState(7).randn(2, 3, *ref["image"].shape[2:]).astype(
                np.float32)  # the parity test's R where the fixture stores none (small512)
            ref_image = np.transpose(ref["image"], (0, 2, 3, 1))
            base = load_fixture_generator(name, eg3d_fixtures, Path(tmp))
            first = None
            for dtype, precision in settings:
                G = eg3d_flax.Generator(base.config.replace(compute_dtype=dtype), base.variables)
                t0 = time.perf_counter()
                with precision_lib.matmul_precision(precision):
                    image, value, g_ws, grads = evaluate(G, ref, R)
                row = {
                    "generator": name, "compute_dtype": dtype, "precision": precision,
                    "backend": jax.default_backend(), "device": str(jax.devices()[0].device_kind),
                    "jax_version": jax.__version__, "seconds": round(time.perf_counter() - t0, 2),
                    "image_max_abs_vs_torch": float(np.abs(image - ref_image).max()),
                    "image_rel_l2_vs_torch": rel_l2(image, ref_image),
                    "loss_rel_vs_torch": abs(value - float(ref["loss_image_dot_R"][0])) / abs(
                        float(ref["loss_image_dot_R"][0])),
                    "grad_ws_rel_l2_vs_torch": rel_l2(g_ws, ref["grad_ws"]),
                    "grad_params_max_rel_l2_vs_torch": max(
                        rel_l2(g, ref["grad_param__" + k.replace(".", "__")]) for k, g in grads.items()),
                    "finite": bool(np.isfinite(image).all() and np.isfinite(g_ws).all()),
                }
                forward_ok = bool(np.all(np.abs(image - ref_image) <= FORWARD_TOL + FORWARD_TOL * np.abs(ref_image)))
                row["within_parity_tolerance"] = forward_ok and row["grad_ws_rel_l2_vs_torch"] <= GRADIENT_TOL \
                    and row["grad_params_max_rel_l2_vs_torch"] <= GRADIENT_TOL
                if first is None:
                    first = (dtype, precision, image, g_ws)
                else:
                    row["relative_to"] = f"{first[0]}:{first[1]}"
                    row["image_max_abs_vs_first"] = float(np.abs(image - first[2]).max())
                    row["grad_ws_rel_l2_vs_first"] = rel_l2(g_ws, first[3])
                emit(row)
                rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| generator | dtype | precision | image max-abs vs torch | image rel-L2 | grad ws rel-L2 "
             "| grad params max rel-L2 | image max-abs vs first | within parity tolerance |", "| --- " * 9 + "|"]
    for r in rows:
        vs_first = r.get("image_max_abs_vs_first")
        lines.append(
            f"| {r['generator']} | {r['compute_dtype']} | {r['precision']} | {r['image_max_abs_vs_torch']:.2e} | "
            f"{r['image_rel_l2_vs_torch']:.2e} | {r['grad_ws_rel_l2_vs_torch']:.2e} | "
            f"{r['grad_params_max_rel_l2_vs_torch']:.2e} | {'—' if vs_first is None else f'{vs_first:.2e}'} | "
            f"{'yes' if r['within_parity_tolerance'] else 'NO'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generators", default="tiny128,small512", help="fixture generators (tiny128, small512)")
    p.add_argument("--settings", default=DEFAULT_SETTINGS, help="comma-separated DTYPE:PRECISION, the first "
                                                                 "is the baseline of the '_vs_first' columns")
    p.add_argument("--fixtures", default=None, help="the fixture folder holding eg3d/ (see the module doc)")
    p.add_argument("--out", default=None, help="write the rows as JSON here (after each row)")
    args = p.parse_args(argv)
    try:
        settings = parse_settings(args.settings)
    except ValueError as e:
        p.error(str(e))
    names = [n for n in args.generators.split(",") if n]
    eg3d = fixtures_dir(args.fixtures) / "eg3d"
    missing = [str(eg3d / f) for n in names for f in (f"{n}.pkl", f"{n}_reference.npz") if not (eg3d / f).is_file()]
    if missing:
        p.error(f"fixtures missing: {', '.join(missing)}")
    rows = []

    def emit(row):
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")

    report(names, settings, eg3d, emit)
    print("\n" + markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
