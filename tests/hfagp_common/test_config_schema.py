"""The rules of hfagp_common.config_schema on their own: what each accepts and refuses, and how `check` reports."""

from __future__ import annotations

import math

import pytest

from hfagp_common.cli import ConfigError
from hfagp_common.config_schema import (Bool, Choice, Float, Int, Mapping, PowerOfTwo, Relation, Seq, Text, check,
                                        check_saved, flatten, undeclared)


def test_int_refuses_bools_floats_strings_and_out_of_range():
    rule = Int(1, 10)
    assert rule.accepts(1) and rule.accepts(10)
    for value in (0, 11, True, 2.0, "3", None):
        assert not rule.accepts(value), value
    assert all(not rule.accepts(v) for v in rule.bad_values())


def test_power_of_two_and_float_bounds():
    assert PowerOfTwo(16, 1024).accepts(128) and not PowerOfTwo(16, 1024).accepts(96)
    rule = Float(0.0, 1.0, lo_open=True, hi_open=True)
    assert rule.accepts(0.5) and rule.accepts(1) is False and not rule.accepts(0.0)
    assert not rule.accepts(math.nan) and not rule.accepts(math.inf) and not rule.accepts(False)
    assert rule.describe() == "a number in (0, 1)"
    assert Float(-1.0, 1.0).accepts(-1)


def test_choice_text_seq_mapping_bool():
    assert Choice("a", "b").accepts("a") and not Choice(1, 2).accepts(True)
    assert Text(path=True).accepts("") and not Text(path=True).accepts("  ") and not Text(path=True).accepts("a\0")
    assert not Text(allow_empty=False).accepts("")
    seq = Seq(Int(0, 9), 1, 3)
    assert seq.accepts((1, 2)) and seq.accepts([3]) and not seq.accepts([]) and not seq.accepts([1, 2, 3, 4])
    assert not seq.accepts("12") and not seq.accepts([10])
    assert Mapping().accepts({"a": 1}) and not Mapping().accepts("a=1")
    assert Bool().accepts(False) and not Bool().accepts(0)
    for rule in (Choice("a"), Text(path=True), seq, Mapping(), Bool()):
        assert all(not rule.accepts(v) for v in rule.bad_values()), rule


SCHEMA = {"n": Int(1, 5), "opt.name": Choice("x", "y"), "opt.kwargs": Mapping()}
RELATIONS = (Relation(("n", "opt.name"), lambda n, name: name == "x" or n > 2, "opt.name='y' needs n > 2"),)


def test_check_names_the_key_the_value_and_the_allowed_values():
    good = {"n": 3, "opt": {"name": "y", "kwargs": {"depth": 2}}}
    check(good, SCHEMA, RELATIONS)
    assert flatten(good, SCHEMA) == {"n": 3, "opt.name": "y", "opt.kwargs": {"depth": 2}}
    assert undeclared(good, SCHEMA) == []
    with pytest.raises(ConfigError, match=r"^cfg: n must be an integer in \[1, 5\], got 0$"):
        check({**good, "n": 0}, SCHEMA, RELATIONS, source="cfg: ")
    with pytest.raises(ConfigError, match=r"^opt\.name='y' needs n > 2 \(n=1, opt\.name='y'\)$"):
        check({**good, "n": 1}, SCHEMA, RELATIONS)
    with pytest.raises(ConfigError, match=r"^opt\.nme is not a setting \(did you mean opt\.name\?\)$"):
        check({"n": 3, "opt": {"nme": "y", "kwargs": {}}}, SCHEMA, RELATIONS)
    with pytest.raises(ConfigError, match=r"^opt\.name is missing$"):
        check({"n": 3, "opt": {"kwargs": {}}}, SCHEMA, RELATIONS)
    check_saved({"n": 3, "opt": {"kwargs": {}}}, SCHEMA, RELATIONS)
    with pytest.raises(ConfigError, match=r"^n must be"):
        check_saved({"n": "3"}, SCHEMA, RELATIONS)
