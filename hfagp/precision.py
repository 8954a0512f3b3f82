"""The float32 matmul/convolution precision policy: one named setting for a whole program.

On GPUs and TPUs "float32" is ambiguous. XLA's default precision lets Ampere/Hopper GPUs run float32
matrix products and convolutions on TF32 tensor cores (10-bit mantissa inputs, float32 accumulation) and
TPUs in one bfloat16 pass. The official EG3D training loop turns TF32 off (its super-resolution blocks
run in float16 instead); the parity tests need true float32. So every entry point (training through
`hfagp.train.loop`, `hfagp.eval`, `hfagp.render`, the benchmarks) runs under one of these names:

  highest   true float32: XLA HIGHEST (GPU: no TF32; TPU: six bfloat16 passes). The default, and what the
            paper-setting configs use, as the official EG3D training loop does.
  tf32      XLA HIGH (GPU: TF32 tensor cores; TPU: three bfloat16 passes).
  default   XLA DEFAULT, the backend's own choice (GPU: TF32; TPU: one bfloat16 pass); what JAX does
            when nothing is set.

It is applied with `jax.default_matmul_precision` as a context around tracing, so it reaches every
`dot_general`/`conv_general_dilated` that does not fix its own precision (the encoders, the generator's
convolutions and decoder, the loss); the few ops that pin HIGHEST themselves (camera and tri-plane
projections, the FIR resampling matrices, LPIPS) keep it. `jax.jit` keys its cache on the setting, so
one process may compile the same function under two of them. CPUs ignore it: XLA:CPU computes float32
products in float32 whatever the setting. Values in bfloat16 (`generator.compute_dtype='bfloat16'`)
are unaffected. (JAX is imported only when a setting is applied: the names serve argument parsers.)
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

PRECISIONS = ("highest", "tf32", "default")
DEFAULT_PRECISION = "highest"
# The `jax_default_matmul_precision` value of each name (accepted by jax 0.4 .. 0.12).
JAX_NAMES = {"highest": "highest", "tf32": "tensorfloat32", "default": "default"}
_MEANING = {"highest": "true float32 (XLA HIGHEST)", "tf32": "TF32 on GPU tensor cores (XLA HIGH)",
            "default": "the backend's default (XLA DEFAULT; TF32 on Ampere+ GPUs)"}


def check(name: str, knob: str = "precision") -> str:
    """`name` if it is one of PRECISIONS; raises ValueError naming `knob` otherwise."""
    if name not in PRECISIONS:
        raise ValueError(f"{knob} must be one of {PRECISIONS}, got {name!r}")
    return name


def of_config(config) -> str:
    """The precision a training config (or one read back from a workdir) names; older runs: the default."""
    name = config.get("precision") if hasattr(config, "get") else getattr(config, "precision", None)
    return check(name or DEFAULT_PRECISION)


@contextlib.contextmanager
def matmul_precision(name: str) -> Iterator[str]:
    """Everything traced inside runs its float32 matmuls/convolutions at `name` (see the module doc)."""
    import jax

    with jax.default_matmul_precision(JAX_NAMES[check(name)]):
        yield name


def describe(name: str, compute_dtype: Optional[str] = None) -> str:
    """One line for the start of a run: the precision, what it means, the compute dtype and the device."""
    import jax

    dev = jax.devices()[0]
    dtype = f"; generator convolutions in {compute_dtype}" if compute_dtype else ""
    note = " (ignored on CPU: float32 is float32 there)" if dev.platform == "cpu" and name != "highest" else ""
    return (f"precision: {name}: float32 matmuls/convolutions {_MEANING[check(name)]}{note}{dtype}; "
            f"{jax.default_backend()} ({dev.device_kind})")


__all__ = ["DEFAULT_PRECISION", "JAX_NAMES", "PRECISIONS", "check", "describe", "matmul_precision", "of_config"]
