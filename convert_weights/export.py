"""CLI: python -m convert_weights.export GENERATOR_DIR OUT.pth [--overwrite] [--quiet]

Writes a converted (or fine-tuned) generator back as a PyTorch state dict with EG3D's keys and
layouts, without torch: OUT.pth is in torch's zip format (see `convert_weights.torch_zip`), an
OrderedDict of contiguous float32 CPU tensors that EG3D's `TriPlaneGenerator.load_state_dict`
takes (keys as in `G.state_dict()`, minus the unused `dataset_label_std` buffer of training
snapshots; the order is this port's, not torch's, which `load_state_dict` does not mind):

    G.load_state_dict(torch.load("OUT.pth", weights_only=True))

Not verified with a real torch here (none is installed): the format follows torch's
serialization sources, and every written file is read back with this package's own restricted
reader and compared bitwise before it is moved into place.

Progress goes to stderr (2 lines, none with --quiet), a JSON summary to stdout; a failure prints
one line `convert_weights.export: error: ...`, exits with status 2 and leaves OUT.pth untouched.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from convert_weights.torch_zip import TorchZipError, read_torch_zip_state_dict, torch_zip_bytes
from convert_weights.unpickler import SnapshotError
from hfagp_common import cli

NAME = "convert_weights.export"


class ExportError(RuntimeError):
    """The generator directory cannot be exported."""


def generator_state_dict(generator_dir: os.PathLike) -> dict[str, np.ndarray]:
    """EG3D-layout float32 state dict of a generator directory (parameters cast to float32)."""
    from convert_weights import eg3d_keys
    from eg3d_flax.checkpoint import GeneratorCheckpointError, load_generator

    try:
        generator = load_generator(generator_dir)
    except GeneratorCheckpointError as e:  # its messages name the directory
        raise ExportError(str(e)) from e
    except (ValueError, KeyError, TypeError) as e:  # e.g. a hand-edited generator.json
        raise ExportError(f"{generator_dir}: cannot load the generator: {type(e).__name__}: {e}") from e
    return eg3d_keys.variables_to_state_dict(generator.variables)


def export_generator(
    generator_dir: os.PathLike,
    output_path: os.PathLike,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> dict:
    """Writes `output_path` (torch zip state dict) from a generator directory; returns a summary.

    The file is written to a temporary sibling, read back and compared bitwise, then renamed into
    place, so `output_path` is either untouched or complete.
    """
    generator_dir, output_path = Path(generator_dir), Path(output_path).absolute()
    if not generator_dir.is_dir():
        raise ExportError(f"{generator_dir}: no such generator directory")
    if output_path.exists() and not overwrite:
        raise FileExistsError(f"output {output_path} already exists (use --overwrite to replace it)")
    if output_path.is_dir():
        raise ExportError(f"refusing to replace {output_path}: it is a directory")
    t0 = time.time()
    log(f"[1/2] loading {generator_dir}")
    state_dict = generator_state_dict(generator_dir)
    data = torch_zip_bytes(state_dict)
    tmp = output_path.parent / f".{output_path.name}.tmp-{secrets.token_hex(4)}"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        check = read_torch_zip_state_dict(tmp)
        same = list(check) == list(state_dict) and all(
            check[k].dtype == v.dtype and check[k].shape == v.shape and check[k].tobytes() == v.tobytes()
            for k, v in state_dict.items())
        if not same:
            raise ExportError(f"{output_path}: the written file does not read back identically (a bug)")
        os.replace(tmp, output_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log(f"[2/2] wrote {output_path} ({len(data):,} bytes, {len(state_dict)} tensors) in {time.time() - t0:.1f}s")
    return {
        "output": str(output_path),
        "source": str(generator_dir.absolute()),
        "num_tensors": len(state_dict),
        "num_elements": int(sum(v.size for v in state_dict.values())),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(NAME, description="Export a generator directory as a PyTorch state dict file (EG3D keys and "
                            "layouts, float32), without PyTorch.")
    p.add_argument("generator_dir", type=cli.path, help="directory written by `python -m convert_weights`")
    p.add_argument("output", type=cli.path, help="file to write, e.g. G_ema_state_dict.pth")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--quiet", action="store_true", help="only print the final summary")
    return p


def _main(args) -> int:
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    summary = export_generator(args.generator_dir, args.output, overwrite=args.overwrite, log=log)
    cli.print_json(summary)


main = cli.entry_point(NAME, build_parser, _main,
                       expected=(*cli.EXPECTED_ERRORS, ExportError, SnapshotError, TorchZipError))


if __name__ == "__main__":
    cli.exit(main())
