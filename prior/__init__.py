"""HFA-GP's personalized prior: a learnable, orthonormalized k-vector basis in EG3D's W+ space."""

from prior.basis import (
    INIT_MODES,
    ORTHOGONALITY_MODES,
    PersonalizedPrior,
    basis_vectors_ws,
    effective_basis,
    init_offset_from_w_avg,
    init_prior,
    orthogonality_penalty,
    orthonormal_basis,
)
from prior.freeze import FROZEN, PRIOR_NAME, TRAINABLE, param_labels

__all__ = [
    "FROZEN",
    "INIT_MODES",
    "ORTHOGONALITY_MODES",
    "PRIOR_NAME",
    "PersonalizedPrior",
    "TRAINABLE",
    "basis_vectors_ws",
    "effective_basis",
    "init_offset_from_w_avg",
    "init_prior",
    "orthogonality_penalty",
    "orthonormal_basis",
    "param_labels",
]
