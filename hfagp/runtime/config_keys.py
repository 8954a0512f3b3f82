"""Config values as dotted keys, for comparing a resumed run's config with the one in its config.json.

A key pattern covers itself and everything below it ('optim' covers 'optim.learning_rate'); '*' covers every key.
"""

from __future__ import annotations

from typing import Any, Iterable


def flatten(values: Any, prefix: str = "") -> dict:
    """Nested JSON values -> {'a.b.c': leaf} (lists and other leaves kept whole)."""
    if isinstance(values, dict) and values:
        out = {}
        for key, value in values.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: values}


def covered(key: str, patterns: Iterable[str]) -> bool:
    """Whether one of `patterns` (keys or whole sections, '*' any) covers `key`."""
    return any(p == "*" or key == p or key.startswith(p + ".") for p in patterns)


__all__ = ["covered", "flatten"]
