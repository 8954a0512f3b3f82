"""HFA-GP's personalized prior: a learnable, orthonormalized k-vector basis in EG3D's W+ space."""

from prior.basis import (
    INIT_MODES,
    ORTHOGONALITY_MODES,
    PersonalizedPrior,
    basis_vectors_ws,
    effective_basis,
    init_offset_from_w_avg,
    orthogonality_penalty,
    orthonormal_basis,
)

__all__ = [
    "INIT_MODES",
    "ORTHOGONALITY_MODES",
    "PersonalizedPrior",
    "basis_vectors_ws",
    "effective_basis",
    "init_offset_from_w_avg",
    "orthogonality_penalty",
    "orthonormal_basis",
]
