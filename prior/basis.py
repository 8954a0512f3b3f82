"""The personalized generative prior: a learnable k-vector basis in W+ plus a mean offset.

A latent is ``w = coeffs @ orth(B) + offset`` (paper Sec. 3.2, ``w = f(x)·B``; the official code
adds a learned mean ``delta``). W+ latents are flattened row-major: a basis row of length
``num_ws * w_dim`` reshapes to ``[num_ws, w_dim]``, as the official ``.view(b, -1, dim)`` does.

Official code (``networks/headnerf.py``, ``HeadNeRF_final.get_latent``), for reference:
``Q, R = torch.qr((bases + 1e-8).T)``; latent = ``weights @ Q.T`` reshaped to ``[b, 14, 512]``
plus ``delta.view(14, 512)``; at init ``bases ~ randn(k, 14*512)`` and ``delta = bases.mean(0)``.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ORTHOGONALITY_MODES = ("qr", "penalty", "none")
INIT_MODES = ("official", "w_avg")

# Official: ``bases + 1e-8`` before the QR (guards against an exactly-zero column).
QR_EPS = 1e-8

_HIGHEST = jax.lax.Precision.HIGHEST


def orthonormal_basis(basis: jax.Array, eps: float = QR_EPS) -> jax.Array:
    """Orthonormalizes the rows of ``basis`` [k, D] (k <= D) exactly as the official code.

    Reduced QR of ``(basis + eps).T`` ([D, k]); returns ``Q.T`` [k, D]. All of ``torch.qr``,
    ``numpy.linalg.qr`` and ``jnp.linalg.qr`` use Householder (LAPACK ``geqrf``) conventions: the
    diagonal of ``R`` is not forced positive, so row ``q_i`` may point opposite to the
    Gram-Schmidt direction of ``b_i``; rows ``q_0..q_i`` span ``b_0..b_i``. Differentiable.
    """
    if basis.ndim != 2 or basis.shape[0] > basis.shape[1]:
        raise ValueError(f"orthonormal_basis: expected basis [k, D] with k <= D, got {basis.shape}")
    q, _ = jnp.linalg.qr((basis + eps).T, mode="reduced")
    return q.T


def orthogonality_penalty(basis: jax.Array) -> jax.Array:
    """Soft orthonormality penalty ``||B Bᵀ - I||_F²`` for ``basis`` [k, D]; a float32 scalar.

    Normalization: the plain sum over all k*k Gram entries (no mean, no 1/k), so for unit-norm
    rows it is twice the sum of squared pairwise cosines. Weight it in the trainer.
    """
    if basis.ndim != 2:
        raise ValueError(f"orthogonality_penalty: expected basis [k, D], got {basis.shape}")
    gram = jnp.matmul(basis, basis.T, precision=_HIGHEST)
    return jnp.sum(jnp.square(gram - jnp.eye(basis.shape[0], dtype=gram.dtype)))


def effective_basis(basis: jax.Array, orthogonality: str) -> jax.Array:
    """The rows actually combined into latents: ``orthonormal_basis(B)`` for 'qr', else ``B``."""
    _check_mode(orthogonality)
    return orthonormal_basis(basis) if orthogonality == "qr" else basis


def combine(
    coeffs: jax.Array, rows: jax.Array, offset: jax.Array, num_ws: int, w_dim: int
) -> jax.Array:
    """``coeffs`` [B, k] @ ``rows`` [k, D] + ``offset`` [D] -> [B, num_ws, w_dim] (HIGHEST prec)."""
    flat = jnp.matmul(coeffs, rows, precision=_HIGHEST) + offset
    return flat.reshape(coeffs.shape[0], num_ws, w_dim)


class PersonalizedPrior(nn.Module):
    """Personalized subspace of W+: coefficients [B, k] -> latents [B, num_ws, w_dim].

    Params: ``basis`` [k, num_ws*w_dim] and ``offset`` [num_ws*w_dim] (the official ``bases`` and
    ``delta``). Use it as a submodule named ``"prior"`` so its params sit at ``params["prior"]``,
    where a basis from another run can be loaded and frozen (``hfagp.train.optim``).

    Attributes:
      num_ws: number of W+ latents (14 for EG3D at 512, as in the official code).
      w_dim: latent width (512).
      k: number of basis vectors (paper: 50).
      orthogonality: "qr" (default, official): rows are orthonormalized by a QR decomposition in
        every forward pass. "penalty": raw rows are used and ``penalty()`` returns
        ``||B Bᵀ - I||_F²`` for the trainer to add to the loss. "none": raw rows, no constraint
        (the paper's Table 4 / Fig. 6 ablation).
      init_mode: "official": ``basis ~ N(0, 1)`` and ``offset = basis.mean(0)`` of that same draw
        (each offset entry ~ N(0, 1/k)); the generator's ``w_avg`` is not used. "w_avg": the same
        basis draw; the offset is created as zeros and must then be set by
        ``init_offset_from_w_avg`` (the trainer does, from the generator's ``w_avg``).
        (Named ``init_mode`` because ``init`` is ``nn.Module.init``.)
        In "penalty" and "none" modes the stored basis is that draw times ``1/sqrt(D)``: rows start
        with unit norm (nearly orthonormal) so latents have the scale they have in "qr" mode. QR is
        invariant to the scale, so "qr" keeps the official N(0, 1) values.
    """

    num_ws: int
    w_dim: int
    k: int = 50
    orthogonality: str = "qr"
    init_mode: str = "official"

    def setup(self):
        _check_mode(self.orthogonality)
        if self.init_mode not in INIT_MODES:
            raise ValueError(
                f"PersonalizedPrior: init_mode must be one of {INIT_MODES}, got {self.init_mode!r}"
            )
        dim = self.num_ws * self.w_dim
        if not 0 < self.k <= dim:
            raise ValueError(f"PersonalizedPrior: need 0 < k <= num_ws*w_dim={dim}, got {self.k}")
        draw = {}

        def basis_init(rng, shape):
            draw["basis"] = jax.random.normal(rng, shape, jnp.float32)
            if self.orthogonality == "qr":
                return draw["basis"]
            return draw["basis"] / np.sqrt(shape[1])

        def offset_init(rng, shape):
            del rng
            if self.init_mode == "w_avg":
                return jnp.zeros(shape, jnp.float32)
            return jnp.mean(draw["basis"], axis=0)

        self.basis = self.param("basis", basis_init, (self.k, dim))
        self.offset = self.param("offset", offset_init, (dim,))

    def __call__(self, coeffs: jax.Array) -> jax.Array:
        """coeffs [B, k] float32 -> W+ latents [B, num_ws, w_dim]."""
        if coeffs.ndim != 2 or coeffs.shape[1] != self.k:
            raise ValueError(f"PersonalizedPrior: want coeffs [B, {self.k}], got {coeffs.shape}")
        rows = effective_basis(self.basis, self.orthogonality)
        return combine(coeffs, rows, self.offset, self.num_ws, self.w_dim)

    def penalty(self) -> jax.Array:
        """``orthogonality_penalty`` of the raw basis in "penalty" mode, else 0.0."""
        if self.orthogonality == "penalty":
            return orthogonality_penalty(self.basis)
        return jnp.zeros((), jnp.float32)

    def basis_ws(self, scale: float = 10.0) -> jax.Array:
        """Latents ``offset + scale * row_i``, [k, num_ws, w_dim]; see ``basis_vectors_ws``."""
        params = {"basis": self.basis, "offset": self.offset}
        return basis_vectors_ws(params, scale, w_dim=self.w_dim, orthogonality=self.orthogonality)


def basis_vectors_ws(
    params: Mapping[str, Any],
    scale: float = 10.0,
    *,
    w_dim: int = 512,
    orthogonality: str = "qr",
) -> jax.Array:
    """Latents that visualize each basis direction, [k, num_ws, w_dim].

    Latent i is ``offset + scale * row_i`` (``row_i`` the effective, i.e. orthonormalized for
    "qr", basis row): the latent of the one-hot coefficients ``scale * e_i``. The official
    trainers' ``sample_bases`` render exactly these, one image per basis vector at the frontal
    camera (radius 2.7, yaw = pitch = pi/2), with scale 10 (RGB) or 5 (3DMM, audio). Pass a
    negative ``scale`` for the opposite direction.

    Args:
      params: the prior's own params ``{"basis": [k, D], "offset": [D]}`` (``params["prior"]``).
      scale: the coefficient given to each basis vector.
      w_dim: latent width; ``num_ws = D // w_dim``.
      orthogonality: the prior's mode ("qr" orthonormalizes; the others use the raw rows).
    """
    basis, offset = params["basis"], params["offset"]
    k, dim = basis.shape
    if offset.shape != (dim,) or dim % w_dim:
        raise ValueError(
            f"basis_vectors_ws: basis {basis.shape} and offset {offset.shape} do not form a "
            f"[k, num_ws*{w_dim}] prior"
        )
    rows = effective_basis(basis, orthogonality)
    coeffs = scale * jnp.eye(k, dtype=basis.dtype)
    return combine(coeffs, rows, offset, dim // w_dim, w_dim)


def init_offset_from_w_avg(params: Mapping[str, Any], w_avg: jax.Array) -> dict[str, Any]:
    """Returns the prior's params with ``offset`` = ``w_avg`` tiled over the num_ws latents.

    Args:
      params: the prior's own params ``{"basis": [k, D], "offset": [D]}``.
      w_avg: the mapping network's ``w_avg`` [w_dim] (or an already tiled [num_ws, w_dim]).
    """
    offset = params["offset"]
    w_avg = jnp.asarray(w_avg, offset.dtype)
    if w_avg.ndim == 1 and offset.shape[0] % w_avg.shape[0] == 0:
        tiled = jnp.tile(w_avg, offset.shape[0] // w_avg.shape[0])
    elif w_avg.ndim == 2 and w_avg.size == offset.shape[0]:
        tiled = w_avg.reshape(-1)
    else:
        raise ValueError(
            f"init_offset_from_w_avg: w_avg of shape {w_avg.shape} cannot fill an offset of "
            f"shape {offset.shape}"
        )
    return {**params, "offset": tiled}


def _check_mode(orthogonality: str) -> None:
    if orthogonality not in ORTHOGONALITY_MODES:
        raise ValueError(
            f"orthogonality must be one of {ORTHOGONALITY_MODES}, got {orthogonality!r}"
        )
