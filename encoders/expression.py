"""3DMM-expression encoder f_e: beta [B, 76] -> k coefficients (official ``Weights_3DMM``).

Official: EqualLinear(76, 512), 5 x EqualLinear(512, 512), EqualLinear(512, k): seven
equalized linear layers with no activation in between (``nonlinear=False``).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from encoders.layers import CoefficientMLP


class ExpressionEncoder(nn.Module):
    """expressions [B, in_dim] float32 -> coefficients [B, k].

    Attributes:
      k: number of coefficients.
      in_dim: expression-coefficient length (76 in the paper's 3DMM fits).
      hidden: hidden width (official 512).
      num_layers: total EqualLinear layers (official 7).
      nonlinear: fused leaky ReLU between layers (official: none).
    """

    k: int
    in_dim: int = 76
    hidden: int = 512
    num_layers: int = 7
    nonlinear: bool = False

    @nn.compact
    def __call__(self, expressions: jax.Array) -> jax.Array:
        if expressions.ndim != 2 or expressions.shape[1] != self.in_dim:
            raise ValueError(
                f"ExpressionEncoder: expected expressions [B, {self.in_dim}], got "
                f"{expressions.shape}"
            )
        return CoefficientMLP(self.k, self.hidden, self.num_layers, self.nonlinear, name="fc")(
            expressions
        )
