"""Runs an entry point with a fault injected: ``python tests/faults/inject.py SCRIPT [ARGS...]``.

The fault is named by environment variables, so the command line stays the entry point's own:
  HFAGP_FAULT_SLOW_SAVE=STEP[/ITEM]  the orbax save of that checkpoint step (or of one item of it, 'state' or
                                     'data') pauses HFAGP_FAULT_SECONDS (default 3600) right before its atomic
                                     rename, i.e. with everything written into the temporary directory; the
                                     moment it starts pausing, the file HFAGP_FAULT_MARKER is created, so a
                                     test can send its signal exactly then.
Nothing else changes: the script runs as ``__main__`` with ``sys.argv = [SCRIPT, ARGS...]``.
"""

from __future__ import annotations

import asyncio
import os
import runpy
import sys
from pathlib import Path


def _slow_save(target: str, marker: Path, seconds: float) -> None:
    from orbax.checkpoint._src.path import atomicity

    original = atomicity.AtomicRenameTemporaryPath.finalize

    async def finalize(self):
        final = Path(str(self.get_final()))
        step_dir = final.parent.name.split(".")[0]
        name = final.name if "/" not in target else f"{step_dir}/{final.name}"
        if name == target:
            marker.write_text(f"{os.getpid()}\n")
            await asyncio.sleep(seconds)
        return await original(self)

    atomicity.AtomicRenameTemporaryPath.finalize = finalize


def main() -> None:
    script, *args = sys.argv[1:]
    target = os.environ.get("HFAGP_FAULT_SLOW_SAVE")
    if target:
        _slow_save(target, Path(os.environ["HFAGP_FAULT_MARKER"]), float(os.environ.get("HFAGP_FAULT_SECONDS", 3600)))
    sys.argv = [script, *args]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
