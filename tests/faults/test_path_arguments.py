"""Every path argument of every argparse entry point, given as "" or blank (an unset shell variable, which would
otherwise mean the current directory), ends in one error line naming the argument, at parsing: before any work
and before a byte is written. Generated from the parsers themselves, so a new path argument is covered when it
declares `type=cli.path` (or `cli.path_object`), and a new positional path argument that does not is caught."""

from __future__ import annotations

import argparse
import importlib
import re

import pytest

from hfagp_common import cli

# The argparse entry points (module with `build_parser`); the absl ones check their path flags with
# `cli.require_path_flags` (tests/faults/test_bad_inputs.py, the empty_* cases).
ENTRY_POINTS = ("avatar_data.worlds.synthetic", "avatar_data.worlds.heads.__main__", "avatar_data.worlds.heads.dataset",
                "avatar_data.worlds.heads.sheet", "avatar_data.prepare.__main__", "convert_weights.__main__",
                "convert_weights.export", "convert_weights.lpips", "hfagp.from_official", "hfagp.render.__main__",
                "hfagp.eval.__main__", "hfagp.pretrain.report")
PATH_TYPES = (cli.path, cli.path_object)
# Positional arguments named like this are paths.
PATH_NAME = re.compile(r"(^|_)(dir|workdir|out|output|input|video|checkpoint|generator|path)$")


def _parsers(module_name: str) -> list[tuple[list[str], argparse.ArgumentParser, argparse.ArgumentParser]]:
    """[(the argv prefix that selects it, its parser, the command's parser)]: the command's parser, or each of its
    sub-commands'."""
    parser = importlib.import_module(module_name).build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [([], parser, parser)]
    return [([name], sub, parser) for name, sub in subs[0].choices.items()]


def _filler(action: argparse.Action) -> list[str]:
    """A value the parser accepts for a required argument (its first choice, or a harmless path)."""
    value = str(action.choices[0] if action.choices else "1" if action.type in (cli.positive_int, int) else "x")
    return [value] if not action.option_strings else [action.option_strings[-1], value]


def _cases():
    for module_name in ENTRY_POINTS:
        for prefix, parser, _ in _parsers(module_name):
            for action in parser._actions:
                if action.type in PATH_TYPES:
                    yield pytest.param(module_name, prefix, action.dest,
                                       id=f"{module_name}:{' '.join(prefix) or '-'}:{action.dest}")


CASES = list(_cases())


def _argv(parser: argparse.ArgumentParser, prefix: list[str], dest: str, value: str) -> list[str]:
    """prefix, the positionals in order, then the required options; `dest` set to `value`."""
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


@pytest.mark.parametrize("module_name, prefix, dest", CASES)
@pytest.mark.parametrize("value", ["", "  "], ids=["empty", "blank"])
def test_an_empty_path_is_one_error_line_naming_the_argument(module_name, prefix, dest, value, capsys, ledger):
    parser, command = {tuple(p): (q, c) for p, q, c in _parsers(module_name)}[tuple(prefix)]
    action = [a for a in parser._actions if a.dest == dest][0]
    with ledger.bad_input(module_name.removesuffix(".__main__")):
        with pytest.raises(SystemExit) as e:
            command.parse_args(_argv(parser, prefix, dest, value))
        assert e.value.code == 2
        last = capsys.readouterr().err.splitlines()[-1]
        name = "/".join(action.option_strings) if action.option_strings else dest
        assert last.startswith(f"{parser.prog.removeprefix('python -m ').split()[0]}: error: argument {name}: is "
                               "empty (an unset shell variable?)"), last


def test_positional_path_arguments_declare_a_path_type():
    untyped = []
    for module_name in ENTRY_POINTS:
        for prefix, parser, _ in _parsers(module_name):
            for action in parser._actions:
                if not action.option_strings and PATH_NAME.search(action.dest) and action.type not in PATH_TYPES:
                    untyped.append(f"{module_name} {' '.join(prefix)} {action.dest}")
    assert not untyped, untyped
    assert len(CASES) >= 20
