"""Multi-process training: initialisation, the device mesh and a barrier (all on public JAX/orbax API)."""

from __future__ import annotations

import jax
from jax.sharding import Mesh

# Seconds a process waits at a barrier for the others (set-up and compilation can take minutes).
BARRIER_TIMEOUT_S = 3600


def initialize(dist_cfg) -> None:
    """`jax.distributed.initialize` from the config's `distributed` section (CPU hosts: gloo collectives)."""
    if dist_cfg.cpu_collectives:  # must be set before the backend starts
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=dist_cfg.coordinator_address or None,
        num_processes=dist_cfg.num_processes or None,
        process_id=dist_cfg.process_id if dist_cfg.process_id >= 0 else None)


def make_mesh() -> Mesh:
    """A 1-D data-parallel mesh over every device of every process (axis 'data', topology-ordered by
    `jax.make_mesh`; 'Auto' axes: shardings are given explicitly to `jax.jit`, not carried by types)."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def barrier(name: str, timeout_s: int = BARRIER_TIMEOUT_S) -> None:
    """Waits until every process reaches `name` (no-op in a single process).

    Uses the coordination service, not a collective: CPU collectives (gloo) give up after ~30 s while
    another process is still compiling, so processes meet here after long local work."""
    if jax.process_count() == 1:
        return
    import orbax.checkpoint as ocp

    ocp.multihost.get_barrier_sync_fn()(key=name, timeout_ms=timeout_s * 1000)
