"""Documented maxima of sizes, for config fields (`hfagp_common.config_schema`) and command-line flags
(`hfagp_common.cli`): beyond them a request needs more memory, disk or time than any machine this project runs on
has, so it is refused up front, naming the bound, instead of ending in MemoryError or an overflow.

A 512 px frame is 0.75 MiB as uint8 (100k frames: 75 GiB of video, 67 hours at 25 fps); a 1024^3 density grid
of float32 is 4 GiB.
"""

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
