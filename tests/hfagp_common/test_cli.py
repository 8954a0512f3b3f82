"""The command-line contract's entry-point helpers (`hfagp_common.cli`): parse, run under the one-line error
contract, print the summary."""

from __future__ import annotations

import json

import pytest

from hfagp_common import cli


def _parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser("demo_tool", description="a test command")
    p.add_argument("count", type=cli.positive_int)
    return p


def _body(args):
    if args.count == 13:
        raise ValueError("13 is unlucky")
    cli.print_json({"count": args.count})


def test_entry_point_parses_runs_and_prints_the_summary(capsys):
    main = cli.entry_point("demo_tool", _parser, _body)
    assert main(["3"]) == 0
    assert json.loads(capsys.readouterr().out) == {"count": 3}


def test_entry_point_errors_are_one_line(capsys):
    main = cli.entry_point("demo_tool", _parser, _body)
    assert main(["13"]) == 2
    assert capsys.readouterr().err == "demo_tool: error: 13 is unlucky\n"
    with pytest.raises(SystemExit) as e:
        main(["0"])
    assert e.value.code == 2
    err = capsys.readouterr().err.splitlines()   # a bad flag: the usage line, then the error line
    assert len(err) == 2 and err[0].startswith("usage:")
    assert err[1] == "demo_tool: error: argument count: must be >= 1, got 0"


def test_entry_point_expected_errors_are_the_callers(capsys):
    class Refused(Exception):
        pass

    def body(args):
        raise Refused("not today")

    main = cli.entry_point("demo_tool", _parser, body, expected=(Refused,))
    assert main(["1"]) == 2
    assert capsys.readouterr().err == "demo_tool: error: not today\n"


def test_absl_main_exits_with_the_bodys_code(capsys):
    def body():
        raise OSError("disk full")

    with pytest.raises(SystemExit) as e:
        cli.absl_main("train.py", body)(["train.py"])
    assert e.value.code == 2
    assert capsys.readouterr().err == "train.py: error: disk full\n"
    with pytest.raises(SystemExit) as e:
        cli.absl_main("train.py", lambda: None)(["train.py"])
    assert e.value.code == 0
