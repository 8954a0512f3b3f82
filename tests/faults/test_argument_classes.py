"""Every argument of every argparse command, by class, with its bad values generated from the parsers themselves:
a new argument is covered when it is declared, and one that belongs to no class fails `test_every_argument_has_a_class`.

Classes (each ends in one error line naming the argument, at parsing: before any work and before a byte is written):
  path      `type=cli.path` / `cli.path_object`: "" and blank (an unset shell variable would mean the current
            directory); `cli.optional_path` ("" means none or the default): blank
  typed     a type with `bad_values` (`cli.int_in` / `cli.float_in` sizes bounded by `hfagp_common.limits`,
            `cli.positive_int`, `cli.fraction`, the commands' own parsers): every bad value
  choice    `choices=`: a value not among them
  switch    a flag without a value (`store_true`): given a value
Arguments whose text the command reads later (a free-form string, checked where it is used) are listed in
FREE_TEXT with the fault-table case that covers them (tests/faults/test_bad_inputs.py).
"""

from __future__ import annotations

import argparse
import importlib
import re

import pytest

from hfagp_common import cli

# The argparse commands: module -> the function that builds its parser. The absl ones (train.py, hfagp.pretrain,
# hfagp.experiments, hfagp.make_world) take a config, whose fields tests/faults/test_config_fields.py covers, and
# path flags checked by `cli.require_path_flags` (test_bad_inputs.py, the empty_* cases).
ENTRY_POINTS = {
    "avatar_data.worlds.synthetic": "build_parser", "avatar_data.worlds.heads.__main__": "build_parser",
    "avatar_data.worlds.heads.dataset": "build_parser", "avatar_data.worlds.heads.sheet": "build_parser",
    "avatar_data.prepare.__main__": "build_parser", "convert_weights.__main__": "build_parser",
    "convert_weights.export": "build_parser", "convert_weights.lpips": "build_parser",
    "hfagp.from_official": "build_parser", "hfagp.render.__main__": "build_parser", "hfagp.eval.__main__": "build_parser",
    "hfagp.pretrain.report": "build_parser", "benchmarks.step_throughput": "build_parser",
}
PATH_TYPES = (cli.path, cli.path_object, cli.optional_path)
# Positional arguments named like this are paths.
PATH_NAME = re.compile(r"(^|_)(dir|workdir|out|output|input|video|checkpoint|generator|path)$")
# (command, dest): why its text is checked later, and where a bad value of it is tried.
FREE_TEXT = {
    ("convert_weights.__main__", "network"): "a network of the snapshot, checked when it is read: "
                                             "tests/convert_weights/test_convert_cli.py 'network_is_none'",
    ("avatar_data.worlds.heads.__main__", "speech"): "'synthetic', 'espeak' or a .wav file, checked before the world "
                                                     "is made: test_bad_inputs.py heads 'speech_*'",
}


def _parsers(module_name: str) -> list[tuple[list[str], argparse.ArgumentParser, argparse.ArgumentParser]]:
    """[(the argv prefix that selects it, its parser, the command's parser)]: the command's parser, or each of its
    sub-commands'."""
    parser = getattr(importlib.import_module(module_name), ENTRY_POINTS[module_name])()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [([], parser, parser)]
    return [([name], sub, parser) for name, sub in subs[0].choices.items()]


def _class(action: argparse.Action) -> str:
    if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
        return "none"
    if action.nargs == 0:
        return "switch"
    if action.type in PATH_TYPES:
        return "path"
    if action.choices is not None:
        return "choice"
    if getattr(action.type, "bad_values", None):
        return "typed"
    return "free"


def _bad_values(action: argparse.Action) -> list[str]:
    kind = _class(action)
    if kind == "path":
        return list(action.type.bad_values)
    if kind == "typed":
        return list(action.type.bad_values)
    if kind == "choice":
        return ["not-a-choice"]
    if kind == "switch":
        return ["x"]
    return []


def _filler(action: argparse.Action) -> list[str]:
    """A value the parser accepts for a required argument (its first choice, or a harmless value)."""
    if action.choices:
        value = str(list(action.choices)[0])
    elif getattr(action.type, "bad_values", None) and action.type not in PATH_TYPES:
        value = "1"
    else:
        value = "x"
    return [value] if not action.option_strings else [action.option_strings[-1], value]


def _cases():
    for module_name in ENTRY_POINTS:
        for prefix, parser, _ in _parsers(module_name):
            for action in parser._actions:
                for i, value in enumerate(_bad_values(action)):
                    yield pytest.param(module_name, prefix, action.dest, value,
                                       id=f"{module_name}:{' '.join(prefix) or '-'}:{action.dest}:{i}")


CASES = list(_cases())


def _argv(parser: argparse.ArgumentParser, prefix: list[str], dest: str, value: str) -> list[str]:
    """prefix, the positionals in order, then the required options; `dest` set to `value` (a switch given a value
    as --flag=value)."""
    argv = list(prefix)
    for action in parser._actions:
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            argv.append(value if action.dest == dest else _filler(action)[0])
    for action in parser._actions:
        if action.option_strings and action.dest == dest:
            argv.append(f"{action.option_strings[-1]}={value}")
        elif action.option_strings and action.required:
            argv += _filler(action)
    return argv


@pytest.mark.parametrize("module_name, prefix, dest, value", CASES)
def test_a_bad_argument_is_one_error_line_naming_it(module_name, prefix, dest, value, capsys, ledger):
    parser, command = {tuple(p): (q, c) for p, q, c in _parsers(module_name)}[tuple(prefix)]
    action = [a for a in parser._actions if a.dest == dest][0]
    with ledger.bad_input(module_name.removesuffix(".__main__")):
        with pytest.raises(SystemExit) as e:
            command.parse_args(_argv(parser, prefix, dest, value))
        assert e.value.code == 2
        lines = capsys.readouterr().err.splitlines()
        last = lines[-1]
        name = "/".join(action.option_strings) if action.option_strings else dest
        assert last.startswith(f"{parser.error_name}: error: argument {name}: "), last
        assert all(line.startswith("usage:") or line.startswith(" ") or line == last for line in lines), lines


def test_every_argument_has_a_class():
    unclassified, counted = [], {}
    for module_name in ENTRY_POINTS:
        for prefix, parser, _ in _parsers(module_name):
            for action in parser._actions:
                kind = _class(action)
                counted[kind] = counted.get(kind, 0) + 1
                if kind == "free" and (module_name, action.dest) not in FREE_TEXT:
                    unclassified.append(f"{module_name} {' '.join(prefix)} {action.dest}")
    assert not unclassified, f"arguments without a class (give them a checked type, or list them in FREE_TEXT): " \
                             f"{unclassified}"
    assert counted["typed"] >= 60 and counted["path"] >= 30, counted


def test_positional_path_arguments_declare_a_path_type():
    untyped = []
    for module_name in ENTRY_POINTS:
        for prefix, parser, _ in _parsers(module_name):
            for action in parser._actions:
                if not action.option_strings and PATH_NAME.search(action.dest) and action.type not in PATH_TYPES:
                    untyped.append(f"{module_name} {' '.join(prefix)} {action.dest}")
    assert not untyped, untyped


def test_free_text_arguments_exist():
    known = {(m, a.dest) for m in ENTRY_POINTS for _, parser, _ in _parsers(m) for a in parser._actions}
    assert set(FREE_TEXT) <= known, sorted(set(FREE_TEXT) - known)
