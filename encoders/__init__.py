"""HFA-GP's encoders f: driving signal (RGB frame, 3DMM expression, audio) -> k coefficients."""

from __future__ import annotations

import flax.linen as nn

from encoders.audio import AudioEncoder, smoothing_windows
from encoders.expression import ExpressionEncoder
from encoders.rgb import RGBEncoder

ENCODERS = {"rgb": RGBEncoder, "expression": ExpressionEncoder, "audio": AudioEncoder}


def make_encoder(kind: str, k: int, **cfg) -> nn.Module:
    """Builds the encoder for ``kind`` in {'rgb', 'expression', 'audio'} with ``k`` outputs.

    ``cfg`` holds the chosen class's other attributes (e.g. ``nonlinear``, ``input_size``,
    ``temporal_smoothing``); unknown keys raise ``TypeError`` naming the class.
    """
    if kind not in ENCODERS:
        raise ValueError(f"make_encoder: kind must be one of {sorted(ENCODERS)}, got {kind!r}")
    cls = ENCODERS[kind]
    try:
        return cls(k=k, **cfg)
    except TypeError as e:
        raise TypeError(f"make_encoder({kind!r}): bad config for {cls.__name__}: {e}") from None


__all__ = [
    "AudioEncoder",
    "ENCODERS",
    "ExpressionEncoder",
    "RGBEncoder",
    "make_encoder",
    "smoothing_windows",
]
