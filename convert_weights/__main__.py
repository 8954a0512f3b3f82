"""CLI: python -m convert_weights INPUT.pkl OUTPUT_DIR [--network G_ema|G] [--dtype float32|bfloat16].

Progress goes to stderr (4 lines, none with --quiet), a JSON summary to stdout. Any failure
prints exactly one line `convert_weights: error: ...` to stderr, exits with status 2 and
leaves no output directory behind (an existing one is left as it was).
"""

from __future__ import annotations

import argparse
import json
import sys

from convert_weights.convert import DTYPES, ConversionError, convert_snapshot, one_line
from convert_weights.snapshot_reader import SnapshotError

ERROR_PREFIX = "convert_weights: error:"


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in the same one-line format as conversion errors."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"{ERROR_PREFIX} {one_line(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m convert_weights",
        description="Convert an EG3D PyTorch snapshot (e.g. ffhq512-128.pkl) into a JAX/Flax generator "
                    "directory. Needs no PyTorch and never executes code stored in the pickle.")
    p.add_argument("input", help="EG3D snapshot pickle (released model or training snapshot)")
    p.add_argument("output_dir", help="directory to create (orbax variables + generator.json)")
    p.add_argument("--network", default="G_ema", help="which network of the snapshot to convert (default G_ema)")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="storage dtype of the parameters")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUTPUT_DIR if it is an earlier generator directory (atomically)")
    p.add_argument("--quiet", action="store_true", help="only print the final summary")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        summary = convert_snapshot(args.input, args.output_dir, network=args.network, dtype=args.dtype,
                                   overwrite=args.overwrite, log=log)
    except (SnapshotError, ConversionError, OSError) as e:  # OSError includes FileExistsError.
        print(f"{ERROR_PREFIX} {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{ERROR_PREFIX} interrupted (no partial output is left behind)", file=sys.stderr)
        return 130
    except Exception as e:  # A bug, or an input this converter does not anticipate: still one line.
        print(f"{ERROR_PREFIX} unexpected {type(e).__name__} while converting {args.input}: {one_line(e)}",
              file=sys.stderr)
        return 2
    keep = ("output", "network", "params_dtype", "num_tensors", "num_parameters", "num_buffer_elements",
            "skipped_keys", "source_sha256")
    print(json.dumps({k: summary[k] for k in keep}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
