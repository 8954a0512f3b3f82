"""Declared schemas of the `ml_collections` configs: every field's type and range, and the relations between fields.

A config module declares, beside its fields, a `SCHEMA` ({dotted key: rule}) and `RELATIONS` (checks that
involve several fields). `check(values, schema, relations)` runs before any work or any write (train.py,
`hfagp.pretrain`, `hfagp.experiments`, and a workdir's config.json read back) and raises `ConfigError` naming
the dotted key, the value and what is allowed:

    SCHEMA = {"optim.batch_size": Int(1, 4096), "model.encoder": Choice("rgb", "expression", "audio"), ...}
    RELATIONS = (Relation(("data.heads.test_frames", "data.heads.frames"), lambda test, frames: test < frames,
                          "held-out frames must be fewer than the frames"),)

Sizes have upper bounds (documented maxima: `hfagp_common.limits`), so a request too large for any machine this project
runs on is refused up front instead of ending in MemoryError or overflow. Each rule also lists values it must
refuse (`bad_values`): the fault suite generates its cases from the schemas, so a new field is covered when it
is declared.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Callable, Mapping as MappingType, Optional, Sequence

from hfagp_common.cli import ConfigError


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Rule:
    """What one field may hold. `check` raises ConfigError; `bad_values` are values the rule must refuse."""

    def describe(self) -> str:
        raise NotImplementedError

    def accepts(self, value) -> bool:
        raise NotImplementedError

    def bad_values(self) -> tuple:
        raise NotImplementedError

    def check(self, key: str, value) -> None:
        if not self.accepts(value):
            raise ConfigError(f"{key} must be {self.describe()}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Int(Rule):
    """An integer in [lo, hi] (bools refused)."""

    lo: int
    hi: int

    def describe(self) -> str:
        return f"an integer in [{self.lo}, {self.hi}]"

    def accepts(self, value) -> bool:
        return _is_int(value) and self.lo <= value <= self.hi

    def bad_values(self) -> tuple:
        return (self.lo - 1, self.hi + 1, 1.5, "1", True, None)


@dataclasses.dataclass(frozen=True)
class PowerOfTwo(Int):
    """A power of two in [lo, hi] (image resolutions: the generators halve and double them)."""

    def describe(self) -> str:
        return f"a power of two in [{self.lo}, {self.hi}]"

    def accepts(self, value) -> bool:
        return super().accepts(value) and value & (value - 1) == 0

    def bad_values(self) -> tuple:
        return super().bad_values() + (self.lo + 1 if self.lo > 1 else 3,)


@dataclasses.dataclass(frozen=True)
class Float(Rule):
    """A finite number in [lo, hi] (`lo_open` / `hi_open`: the bound itself excluded); integers accepted, bools
    refused."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        return f"a number in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"

    def accepts(self, value) -> bool:
        if not _is_number(value) or not math.isfinite(value):
            return False
        above_lo = value > self.lo if self.lo_open else value >= self.lo
        below_hi = value < self.hi if self.hi_open else value <= self.hi
        return above_lo and below_hi

    def bad_values(self) -> tuple:
        below = self.lo if self.lo_open else self.lo - abs(self.lo) - 1.0
        above = self.hi if self.hi_open else self.hi + abs(self.hi) + 1.0
        return (below, above, float("nan"), float("inf"), "0.5", True, None)


@dataclasses.dataclass(frozen=True)
class Bool(Rule):
    def describe(self) -> str:
        return "true or false"

    def accepts(self, value) -> bool:
        return isinstance(value, bool)

    def bad_values(self) -> tuple:
        return (1, "true", None)


class Choice(Rule):
    """One of the listed values."""

    def __init__(self, *values):
        self.values = tuple(values)

    def __repr__(self) -> str:
        return f"Choice{self.values!r}"

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def accepts(self, value) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)

    def bad_values(self) -> tuple:
        return ("not-a-choice", 3, None)


@dataclasses.dataclass(frozen=True)
class Text(Rule):
    """A string. path=True: a file or folder name, '' meaning the default; a blank one (an unset shell variable
    quoted) or one with a NUL refused."""

    path: bool = False
    allow_empty: bool = True

    def describe(self) -> str:
        if self.path:
            return "a path" + (" ('' for the default)" if self.allow_empty else "") + ", not blank"
        return "a string" + ("" if self.allow_empty else ", not empty")

    def accepts(self, value) -> bool:
        if not isinstance(value, str):
            return False
        if not value:
            return self.allow_empty
        return not self.path or (bool(value.strip()) and "\0" not in value)

    def bad_values(self) -> tuple:
        bad = (3, None, ["a"])
        if self.path:
            bad += ("   ", "a\0b")
        if not self.allow_empty:
            bad += ("",)
        return bad


@dataclasses.dataclass(frozen=True)
class Seq(Rule):
    """A list or tuple of `min_len`..`max_len` items, each accepted by `item`."""

    item: Rule
    min_len: int = 1
    max_len: int = 10_000

    def describe(self) -> str:
        return f"a list of {self.min_len}..{self.max_len} items, each {self.item.describe()}"

    def accepts(self, value) -> bool:
        return (isinstance(value, (list, tuple)) and self.min_len <= len(value) <= self.max_len
                and all(self.item.accepts(v) for v in value))

    def bad_values(self) -> tuple:
        return (5, "1,2", [self.item.bad_values()[0]]) + (([],) if self.min_len > 0 else ())


@dataclasses.dataclass(frozen=True)
class Mapping(Rule):
    """A dict of keyword options (checked by a relation that knows the consumer, e.g. an encoder's fields)."""

    def describe(self) -> str:
        return "a mapping of options"

    def accepts(self, value) -> bool:
        return isinstance(value, MappingType) or hasattr(value, "to_dict")

    def bad_values(self) -> tuple:
        return ("a=1", 3, None)


@dataclasses.dataclass(frozen=True)
class Relation:
    """A check over several fields: `holds(*values)` must be true; `message` says what is required (the keys and
    their values are appended)."""

    keys: tuple
    holds: Callable[..., bool]
    message: str


def flatten(values, schema: Optional[MappingType[str, Rule]] = None, prefix: str = "") -> dict:
    """{dotted key: leaf value} of a ConfigDict or nested dict; a key whose rule is a `Mapping` is one leaf."""
    if hasattr(values, "to_dict"):
        values = values.to_dict()
    out = {}
    for name, value in values.items():
        key = f"{prefix}{name}"
        nested = isinstance(value, MappingType) or hasattr(value, "to_dict")
        if nested and not isinstance((schema or {}).get(key), Mapping):
            out.update(flatten(value, schema, key + "."))
        else:
            out[key] = value
    return out


def _unknown_key_message(key: str, schema) -> str:
    close = difflib.get_close_matches(key, list(schema), n=1)
    return f"{key} is not a setting" + (f" (did you mean {close[0]}?)" if close else "")


def check(values, schema: MappingType[str, Rule], relations: Sequence[Relation] = (), *, source: str = "",
          allow_missing: bool = False) -> None:
    """Raises ConfigError for the first field of `values` (a ConfigDict or the nested dict of a config.json) that
    breaks `schema` or `relations`. source: prefixed to messages (e.g. 'runs/a/config.json: '). allow_missing: a
    field may be absent (see `check_saved`)."""
    flat = flatten(values, schema)
    for key in flat:
        if key not in schema:
            raise ConfigError(source + _unknown_key_message(key, schema))
    for key, rule in schema.items():
        if key not in flat:
            if allow_missing:
                continue
            raise ConfigError(f"{source}{key} is missing")
        try:
            rule.check(key, flat[key])
        except ConfigError as e:
            raise ConfigError(source + str(e)) from None
    for relation in relations:
        if not all(k in flat for k in relation.keys):
            continue
        args = [flat[k] for k in relation.keys]
        if not relation.holds(*args):
            shown = ", ".join(f"{k}={v!r}" for k, v in zip(relation.keys, args))
            raise ConfigError(f"{source}{relation.message} ({shown})")


def check_saved(values, schema: MappingType[str, Rule], relations: Sequence[Relation] = (), *,
                source: str = "") -> None:
    """`check` of a config read back from a workdir's config.json: a run made before a setting existed lacks its
    key (the code reading the run supplies the default), every present key must still be valid."""
    check(values, schema, relations, source=source, allow_missing=True)


def undeclared(values, schema: MappingType[str, Rule]) -> list[str]:
    """Fields of `values` without a rule, and rules without a field (sorted): both empty for a complete schema."""
    flat = flatten(values, schema)
    return sorted(set(flat) ^ set(schema))

