"""Documented maxima of sizes, for config fields (`hfagp_common.config_schema`) and command-line flags
(`hfagp_common.cli`): beyond them a request needs more memory, disk or time than any machine this project runs on
has, so it is refused up front, naming the bound, instead of ending in MemoryError or an overflow.

A 512 px frame is 0.75 MiB as uint8 (100k frames: 75 GiB of video, 67 hours at 25 fps); a 1024^3 density grid
of float32 is 4 GiB.
"""

from __future__ import annotations

from typing import Optional

# Training or inversion steps.
MAX_STEPS = 100_000_000
# Frames of a video, a world, an orbit or a rendered sequence.
MAX_FRAMES = 100_000
# Image (and neural rendering) resolution in pixels, per side.
MAX_RESOLUTION = 1024
# Density-grid resolution of a mesh, per axis.
MAX_GRID_RESOLUTION = 1024
# Images per batch (training, evaluation, rendering).
MAX_BATCH = 4096
# Identities of a data set.
MAX_IDENTITIES = 100_000
# Random seeds (numpy's and JAX's 32-bit range).
MAX_SEED = 2**31 - 1
# Worker threads or processes.
MAX_JOBS = 256


class TooLargeError(ValueError):
    """A request whose memory estimate exceeds what this machine has available (a user error: one line)."""


def available_memory_bytes() -> Optional[int]:
    """MemAvailable of /proc/meminfo (what can be allocated without swapping), or None where it is not known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_fits_in_memory(needed_bytes: int, what: str, available: Optional[int] = None) -> None:
    """Raises TooLargeError when `what` (e.g. 'a head world of 100000 frames at 1024 px') needs more than the
    memory available now (`available`: bytes, default `available_memory_bytes()`), with the estimate in the message.
    Nothing is checked where the available memory is unknown."""
    available = available_memory_bytes() if available is None else available
    if available is not None and needed_bytes > available:
        raise TooLargeError(f"{what} needs about {needed_bytes / 2**30:.1f} GiB of memory, and "
                            f"{available / 2**30:.1f} GiB are available; ask for fewer frames or a lower resolution")
