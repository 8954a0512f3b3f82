"""CLI: python -m convert_weights INPUT.pkl OUTPUT_DIR [--network G_ema|G] [--dtype float32|bfloat16].

Progress goes to stderr (4 lines, none with --quiet), a JSON summary to stdout. Any failure
prints exactly one line `convert_weights: error: ...` to stderr, exits with status 2 (130 when
interrupted) and leaves no output directory behind (an existing one is left as it was).
"""

from __future__ import annotations

import json
import sys

from convert_weights.convert import DTYPES, ConversionError, convert_snapshot
from convert_weights.unpickler import SnapshotError
from hfagp_common import cli

NAME = "convert_weights"


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        NAME,
        description="Convert an EG3D PyTorch snapshot (e.g. ffhqrebalanced512-128.pkl, the checkpoint HFA-GP "
                    "fine-tunes, or ffhq512-128.pkl) into a JAX/Flax generator directory. Needs no PyTorch and "
                    "never executes code stored in the pickle.")
    p.add_argument("input", type=cli.path, help="EG3D snapshot pickle (released model or training snapshot)")
    p.add_argument("output_dir", type=cli.path, help="directory to create (orbax variables + generator.json)")
    p.add_argument("--network", default="G_ema", help="which network of the snapshot to convert (default G_ema)")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="storage dtype of the parameters")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUTPUT_DIR if it is an earlier generator directory (atomically)")
    p.add_argument("--quiet", action="store_true", help="only print the final summary")
    return p


def _main(args) -> int:
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    summary = convert_snapshot(args.input, args.output_dir, network=args.network, dtype=args.dtype,
                               overwrite=args.overwrite, log=log)
    keep = ("output", "network", "params_dtype", "num_tensors", "num_parameters", "num_buffer_elements",
            "skipped_keys", "source_sha256")
    print(json.dumps({k: summary[k] for k in keep}, indent=2))
    return 0


main = cli.entry_point(NAME, build_parser, _main, expected=(*cli.EXPECTED_ERRORS, SnapshotError, ConversionError))


if __name__ == "__main__":
    cli.exit(main())
