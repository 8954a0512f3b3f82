"""The command-line contract shared by every entry point of the project.

A user error (a bad flag, a missing or malformed file, a value out of range) ends the command with one
line on stderr, ``<name>: error: <what is wrong>``, and exit code 2; never a traceback. Interrupting
(Ctrl-C) exits with 130. An unexpected exception (a bug) is also reported in one line naming its type;
set ``HFAGP_TRACEBACK=1`` to see the traceback instead.

    parser = cli.ArgumentParser("avatar_data.heads", description=...)
    ...
    def main(argv=None) -> int:
        return cli.run(NAME, lambda: _main(parser.parse_args(argv)))

`run` treats `UserError`, `ValueError` and `OSError` (missing files, permissions, a full disk) as user
errors. Modules raise `UserError` subclasses (`ConfigError`, ...) for conditions they know are the
user's to fix.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from typing import Callable, Optional, Sequence

TRACEBACK_VARIABLE = "HFAGP_TRACEBACK"


class UserError(Exception):
    """An expected failure caused by the user's input or environment (printed as one line)."""


class ConfigError(UserError, ValueError):
    """A configuration value that cannot work; the message names the knob."""


EXPECTED_ERRORS = (UserError, ValueError, OSError)


def one_line(message) -> str:
    """A (possibly multi-line) message as one line: inner line breaks become ' | '."""
    return re.sub(r"\s*\n\s*", " | ", str(message).strip())


def error_line(name: str, message) -> str:
    return f"{name}: error: {one_line(message)}"


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors follow the one-line contract: usage, then ``<name>: error: ...``, exit 2.

    name: the command's short name in error lines (e.g. 'hfagp.render'); `prog` defaults to
    ``python -m <name>``. Subcommand parsers (``add_subparsers``) derive it from their `prog`.
    """

    def __init__(self, name: Optional[str] = None, **kwargs):
        if name is not None:
            kwargs.setdefault("prog", f"python -m {name}")
        super().__init__(**kwargs)
        self.error_name = name or self.prog.removeprefix("python -m ").split()[0]

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, error_line(self.error_name, message) + "\n")


def run(name: str, body: Callable[[], Optional[int]], expected: Sequence[type] = EXPECTED_ERRORS) -> int:
    """Runs `body()` under the one-line error contract; returns the exit code (body's, or 0)."""
    try:
        code = body()
    except KeyboardInterrupt:
        print(error_line(name, "interrupted"), file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except tuple(expected) as e:
        print(error_line(name, e), file=sys.stderr)
        return 2
    except Exception as e:  # a bug or an input nobody anticipated: still one line, unless asked otherwise
        if os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0"):
            traceback.print_exc()
        print(error_line(name, f"unexpected {type(e).__name__}: {e} (set {TRACEBACK_VARIABLE}=1 for the "
                               f"traceback)"), file=sys.stderr)
        return 2
    return 0 if code is None else int(code)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


__all__ = ["ArgumentParser", "ConfigError", "EXPECTED_ERRORS", "UserError", "error_line", "one_line",
           "positive_int", "run"]
