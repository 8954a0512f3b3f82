"""Assemble what the GPU device check needs that does not travel with the checkout, in `.device_bundle/`.

    python scripts/device_bundle.py --eg3d ~/src/eg3d                 # fixtures + EG3D code
    python scripts/device_bundle.py --eg3d ~/src/eg3d --loader        # + the input pipeline's wheels
    python scripts/device_bundle.py --wheel ml-collections==1.1.0     # + any wheel, for Python 3.12 x86-64

The device tool copies the working tree (tracked and untracked-not-ignored files) and up to 8 ignored
paths named in `carry`, 64 MiB in all; `../shared` beside the checkout does not travel and the lent
machines have no network. So this puts into one ignored folder (carry `.device_bundle`):

  shared/fixtures/eg3d/    the parity tests' EG3D fixtures: tiny128 and small512 pickles and reference
                           arrays, the manifests (~38 MB; the 16 MB full training snapshot stays behind:
                           only the converter's tests read it)
  shared/fixtures/lpips/   the AlexNet LPIPS weights and reference (~7 MB; VGG's 21 MB stay behind, the
                           device check deselects the VGG tests)
  eg3d/                    the code of the user's NVlabs/eg3d clone (dnnlib, torch_utils, training,
                           camera_utils.py, the licence; ~0.5 MB) for the PyTorch baseline; never committed
  wheels/                  optional wheels for Python 3.12 manylinux x86-64 (`pip download`, no
                           dependencies resolved: name each one); `benchmarks/device_check.py` installs
                           them into a temporary folder first

The device check needs no wheel: the step, render and precision benchmarks and the parity tests import
only what the lent machines have (jax, flax, optax, orbax, numpy, pytest; torch for the baseline).
`--loader` adds grain, array_record, tensorflow-datasets and their missing dependencies (versions of
this venv) so the input-pipeline part runs too; training itself (`train.py`: ml_collections, grain,
tensorflow-datasets, tensorboardX) is not part of the check.

Prints each part's size, the total with the working tree against the 64 MiB limit (refusing to finish
above it), and the device command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hfagp_common import cli  # noqa: E402

NAME = "scripts/device_bundle.py"
LIMIT_BYTES = 64 * 2**20
FIXTURES = {
    "eg3d": ["tiny128.pkl", "small512.pkl", "tiny128_reference.npz", "small512_reference.npz",
             "manifest_tiny128.json", "manifest_small512.json", "manifest_ffhq512-128.json", "README.md"],
    "lpips": ["lpips_alex_weights.npz", "lpips_alex_reference.npz", "README.md"],
}
EG3D_PARTS = ("dnnlib", "torch_utils", "training", "camera_utils.py")
EG3D_SUFFIXES = (".py", ".cpp", ".cu", ".h")
# The input pipeline's packages that the lent GPU machines lack (their other dependencies are there).
LOADER_PACKAGES = ("grain", "array-record", "tensorflow-datasets", "dm-tree", "immutabledict", "promise",
                   "simple-parsing", "docstring-parser", "tensorflow-metadata", "termcolor", "toml", "portpicker")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def working_tree_bytes(repo: Path = REPO) -> int:
    """Bytes of what the device tool copies besides carried paths: tracked + untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                         capture_output=True, check=True).stdout
    total = 0
    for name in filter(None, out.split(b"\0")):
        p = repo / os.fsdecode(name)
        if p.is_file():
            total += p.stat().st_size
    return total


def copy_fixtures(shared: Path, out: Path) -> list[str]:
    missing = []
    for kind, names in FIXTURES.items():
        (out / "fixtures" / kind).mkdir(parents=True, exist_ok=True)
        for n in names:
            src = shared / "fixtures" / kind / n
            if src.is_file():
                shutil.copyfile(src, out / "fixtures" / kind / n)
            elif not n.endswith(".md"):
                missing.append(str(src))
    return missing


def eg3d_source(path: Path) -> Path:
    """The folder holding EG3D's packages: PATH or PATH/eg3d (as benchmarks/torch_step.py accepts)."""
    for cand in (path / "eg3d", path):
        if (cand / "training" / "triplane.py").is_file():
            return cand
    raise cli.UserError(f"--eg3d {path} is not a clone of NVlabs/eg3d (no training/triplane.py in it or in eg3d/)")


def copy_eg3d(path: Path, out: Path) -> None:
    src = eg3d_source(path)
    for part in EG3D_PARTS:
        p = src / part
        if p.is_file():
            shutil.copyfile(p, out / part)
            continue
        for f in sorted(p.rglob("*")):
            if f.is_file() and f.suffix in EG3D_SUFFIXES:
                dest = out / f.relative_to(src)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)
    for licence in ("LICENSE.txt", "LICENSE"):
        for base in (src, src.parent):
            if (base / licence).is_file():
                shutil.copyfile(base / licence, out / licence)
                return


def pinned(name: str) -> str:
    """`name==version` of this venv's copy, or `name` if it has none."""
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return name


def download_wheels(specs: list[str], out: Path, python: str = sys.executable) -> None:
    """Wheels for CPython 3.12 x86-64 (binary where the index has one; a pure-Python sdist is built here)."""
    out.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        cmd = [python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
               "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(out), spec]
        if subprocess.run(cmd, capture_output=True, text=True).returncode == 0:
            continue
        proc = subprocess.run([python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), spec],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise cli.UserError(f"no wheel for {spec}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(NAME, prog=f"python {NAME}", description=__doc__.split("\n\n")[0],
                           epilog="See the module docstring and README.md ('Checking on a GPU').")
    p.add_argument("--out", default=str(REPO / ".device_bundle"), help="the bundle folder (default .device_bundle)")
    p.add_argument("--shared", default=None,
                   help="the folder holding fixtures/ (default: $HFAGP_SHARED_DIR, else ../shared)")
    p.add_argument("--eg3d", default=None, help="the user's clone of NVlabs/eg3d (for the PyTorch baseline)")
    p.add_argument("--wheel", action="append", default=[], help="a wheel to add, NAME or NAME==VERSION (repeat)")
    p.add_argument("--loader", action="store_true", help="add the input pipeline's wheels (see the module doc)")
    return p


def _main(args) -> int:
    out = Path(args.out).resolve()
    shared = Path(args.shared or os.environ.get("HFAGP_SHARED_DIR") or REPO.parent / "shared").expanduser()
    if not (shared / "fixtures").is_dir():
        raise cli.UserError(f"no fixtures/ in {shared} (give --shared DIR)")
    if out.is_relative_to(REPO) and subprocess.run(["git", "check-ignore", "-q", f"{out}/"], cwd=REPO).returncode:
        raise cli.UserError(f"{out} is not ignored by git: it would travel twice (add it to .gitignore)")
    if out.exists():
        shutil.rmtree(out)
    (out / "shared").mkdir(parents=True)
    missing = copy_fixtures(shared, out / "shared")
    if missing:
        raise cli.UserError(f"fixtures missing: {', '.join(missing)}")
    if args.eg3d:
        (out / "eg3d").mkdir()
        copy_eg3d(Path(args.eg3d).expanduser(), out / "eg3d")
    specs = list(args.wheel) + ([pinned(n) for n in LOADER_PACKAGES] if args.loader else [])
    if specs:
        download_wheels(specs, out / "wheels")
    sizes = {name: tree_size(out / name) for name in ("shared", "eg3d", "wheels")}
    tree = working_tree_bytes()
    total = tree + sum(sizes.values())
    manifest = {"sizes_bytes": sizes, "working_tree_bytes": tree, "total_bytes": total, "limit_bytes": LIMIT_BYTES,
                "shared_from": str(shared), "eg3d_from": args.eg3d, "wheels": sorted(
                    f.name for f in (out / "wheels").glob("*.whl")) if (out / "wheels").is_dir() else []}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for name, size in sizes.items():
        print(f"{name + '/':9} {size / 2**20:6.1f} MiB")
    print(f"working tree {tree / 2**20:6.1f} MiB; total {total / 2**20:.1f} of {LIMIT_BYTES / 2**20:.0f} MiB")
    if total > LIMIT_BYTES:
        raise cli.UserError(f"{total / 2**20:.1f} MiB would travel, over the device tool's 64 MiB: drop wheels or "
                            "the EG3D clone")
    rel = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    print(f"device command: carry [\"{rel}\"], timeout_s 600:\n"
          f"  PYTHONUNBUFFERED=1 timeout 570 python3 benchmarks/device_check.py --out $OUT")
    return 0


main = cli.entry_point(NAME, build_parser, _main)


if __name__ == "__main__":
    cli.exit(main())
