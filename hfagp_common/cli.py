"""The command-line contract shared by every entry point of the project.

A user error (a bad flag, a missing or malformed file, a value out of range) ends the command with one
line on stderr, ``<name>: error: <what is wrong>``, and exit code 2; never a traceback. Interrupting
(Ctrl-C) exits with 130. An unexpected exception (a bug) is also reported in one line naming its type;
set ``HFAGP_TRACEBACK=1`` to see the traceback instead.

    def build_parser() -> cli.ArgumentParser:
        p = cli.ArgumentParser(NAME, description=...)
        ...

    def _main(args) -> None:
        ...
        cli.print_json(summary)

    main = cli.entry_point(NAME, build_parser, _main)

    if __name__ == "__main__":
        cli.exit(main())

`run` treats `UserError`, `ValueError` and `OSError` (missing files, permissions, a full disk) as user
errors, and so is a `SystemExit` with a message (``raise SystemExit("needs torch")``). Modules raise
`UserError` subclasses (`ConfigError`, ...) for conditions they know are the user's to fix. absl entry points
(`train.py`, `hfagp.pretrain`) parse their flags with `absl_flags_parser(name)`, so a bad flag or config
override is the same one line.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import re
import signal
import sys
import threading
import traceback
from typing import Callable, Iterator, NoReturn, Optional, Sequence

from hfagp_common import limits

TRACEBACK_VARIABLE = "HFAGP_TRACEBACK"


class UserError(Exception):
    """An expected failure caused by the user's input or environment (printed as one line)."""


class ConfigError(UserError, ValueError):
    """A configuration value that cannot work; the message names the knob."""


EXPECTED_ERRORS = (UserError, ValueError, OSError)


def one_line(message) -> str:
    """A (possibly multi-line) message as one line: inner line breaks become ' | '."""
    return re.sub(r"\s*\n\s*", " | ", str(message).strip())


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, cut to `limit` characters ('...' marks a cut): the detail that a
    one-line error quotes from a lower-level failure."""
    text = str(error).strip()
    text = text.splitlines()[0] if text else ""
    return text if len(text) <= limit else text[:limit] + "..."


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


_interrupt_requested = threading.Event()


def interrupted() -> bool:
    """Whether Ctrl-C (SIGINT) arrived during the command: code that turns a library's failure into a user error
    (a checkpoint read judged damaged) asks this first, since an interrupt can surface as any exception there."""
    return _interrupt_requested.is_set()


def _in_gc_callback(frame) -> bool:
    codes = {getattr(callback, "__code__", None) for callback in gc.callbacks}
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


def _on_interrupt(signum, frame) -> None:
    """SIGINT during a command: KeyboardInterrupt, as Python's own handler, except inside a garbage-collector
    callback (JAX runs one), where Python would report the exception as unraisable and the command would go on as
    if nothing happened; there the signal is delivered again a moment later, outside the callback."""
    _interrupt_requested.set()
    if _in_gc_callback(frame):
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupt_handler() -> Iterator[None]:
    """`_on_interrupt` for the block, where Python's default SIGINT handler is in place (the main thread of a
    process nobody else configured); training's stop requests install their own within it."""
    install = (threading.current_thread() is threading.main_thread()
               and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if install:
        _interrupt_requested.clear()
        signal.signal(signal.SIGINT, _on_interrupt)
    try:
        yield
    finally:
        if install:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def run(name: str, body: Callable[[], Optional[int]], expected: Sequence[type] = EXPECTED_ERRORS) -> int:
    """Runs `body()` under the one-line error contract; returns the exit code (body's, or 0). After Ctrl-C, any
    exception is the interrupt's (a library may have wrapped the KeyboardInterrupt in its own error): 130."""
    _drop_closed_loop_callbacks()
    try:
        with _interrupt_handler():
            code = body()
    except KeyboardInterrupt:
        return _interrupted(name)
    except SystemExit as e:
        if isinstance(e.code, str):  # `raise SystemExit("message")`: a user error in one line
            print(error_line(name, e.code), file=sys.stderr)
            return 2
        raise
    except tuple(expected) as e:
        if interrupted():
            return _interrupted(name)
        print(error_line(name, e), file=sys.stderr)
        _quiet_secondary_async_errors()
        return 2
    except Exception as e:  # a bug or an input nobody anticipated: still one line, unless asked otherwise
        if interrupted():
            return _interrupted(name)
        if os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0"):
            traceback.print_exc()
        print(error_line(name, f"unexpected {type(e).__name__}: {e} (set {TRACEBACK_VARIABLE}=1 for the "
                               f"traceback)"), file=sys.stderr)
        _quiet_secondary_async_errors()
        return 2
    return 0 if code is None else int(code)


def _interrupted(name: str) -> int:
    print(error_line(name, "interrupted"), file=sys.stderr)
    _quiet_secondary_async_errors()
    return 130


def _quiet_secondary_async_errors() -> None:
    """After a command's error line, the failure's echoes are dropped: the failed or interrupted operation's
    sibling asyncio tasks (orbax reads a checkpoint's arrays in parallel; the first failure is the one reported)
    are collected at interpreter exit, and asyncio would log each one, 'Task exception was never retrieved' with
    its traceback, dozens of times. Those records are dropped; nothing else asyncio logs is (the same reads'
    late completion callbacks: `_drop_closed_loop_callbacks`)."""
    import logging

    logging.getLogger("asyncio").addFilter(lambda record: "exception was never retrieved" not in record.getMessage())


def _drop_closed_loop_callbacks() -> None:
    """From now on, the unraisable 'Event loop is closed' of a read that finishes after its operation was
    abandoned (a failed or interrupted checkpoint read: tensorstore's completion callback finds orbax's event loop
    closed, during the failure or at interpreter exit) is not printed; any other unraisable exception is."""
    report = sys.unraisablehook
    if getattr(report, "drops_closed_loop_callbacks", False):
        return

    def hook(unraisable):
        value = unraisable.exc_value
        if not (isinstance(value, RuntimeError) and str(value) == "Event loop is closed"):
            report(unraisable)

    hook.drops_closed_loop_callbacks = True
    sys.unraisablehook = hook


def entry_point(name: str, build_parser: Callable[[], argparse.ArgumentParser],
                body: Callable[[argparse.Namespace], Optional[int]],
                expected: Sequence[type] = EXPECTED_ERRORS) -> Callable[[Optional[Sequence[str]]], int]:
    """``main(argv=None) -> exit code``: parses `argv` (default: sys.argv[1:]) with a fresh `build_parser()`, then
    runs `body(args)` under `run`'s one-line error contract."""
    def main(argv: Optional[Sequence[str]] = None) -> int:
        args = build_parser().parse_args(argv)
        return run(name, lambda: body(args), expected)

    main.__doc__ = f"The `{name}` command: exit code 0, or 2 with one error line (hfagp_common.cli)."
    return main


def exit(code: Optional[int]) -> NoReturn:
    """The end of a command's ``__main__`` block: ``sys.exit(code)``, except after an interruption (code 130): then
    the process ends at once, its output flushed, so that work still running in native threads (XLA's, a video
    encoder's) is not torn down by the interpreter's shutdown, which can crash after the error line."""
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


def print_json(summary: dict) -> None:
    """A command's summary on stdout, as indented JSON (what scripts read back)."""
    import json

    print(json.dumps(summary, indent=2))


def path(text: str) -> str:
    """argparse type of an argument that names a file or folder: the text, unless it is empty or blank (an unset
    shell variable), which would mean the current directory; that is a bad flag."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (an unset shell variable?); name a file or directory")
    return text


def path_object(text: str):
    """`path`, as a `pathlib.Path`."""
    from pathlib import Path

    return Path(path(text))


def optional_path(text: str) -> str:
    """argparse type of an argument whose "" means none (or the default): "" or a path, never blank ("  ")."""
    return text and path(text)


path.bad_values = path_object.bad_values = ("", "  ")
optional_path.bad_values = ("  ", "\t")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _argument_type(parse: Callable[[str], object], name: str, bad_values: Sequence[str], doc: str = ""):
    """`parse` named for argparse's messages, with the texts it must refuse (the fault suite generates its flag
    cases from them, so every typed flag is covered)."""
    parse.__name__ = name
    parse.__doc__ = doc or parse.__doc__
    parse.bad_values = tuple(bad_values)
    return parse


def int_in(lo: int, hi: Optional[int] = None):
    """argparse type: an integer in [lo, hi] (hi: a documented maximum of `hfagp_common.limits` for a size; None:
    no upper bound)."""
    def parse(text: str) -> int:
        value = _int(text)
        if hi is None and value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        if hi is not None and not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be in [{lo}, {hi}], got {value}")
        return value

    beyond = () if hi is None else (str(hi + 1),)
    return _argument_type(parse, f"int_in({lo}, {hi})", (str(lo - 1), *beyond, "x", "1.5", ""))


def float_in(lo: float, hi: Optional[float] = None, lo_open: bool = False):
    """argparse type: a finite number in [lo, hi] (`lo_open`: lo itself excluded; hi None: no upper bound)."""
    def parse(text: str) -> float:
        value = _finite(text)
        above = value > lo if lo_open else value >= lo
        if hi is None and not above:
            raise argparse.ArgumentTypeError(f"must be {'>' if lo_open else '>='} {lo:g}, got {text}")
        if hi is not None and not (above and value <= hi):
            raise argparse.ArgumentTypeError(f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {text}")
        return value

    below = str(lo) if lo_open else str(lo - abs(lo) - 1)
    beyond = () if hi is None else (str(hi + abs(hi) + 1),)
    return _argument_type(parse, f"float_in({lo:g}, {hi})", (below, *beyond, "nan", "inf", "x", ""))


positive_int = _argument_type(int_in(1), "positive_int", ("0", "-3", "x", "1.5"),
                              "argparse type: an integer >= 1 (a count that is not a size; sizes use `int_in`).")
non_negative_int = _argument_type(int_in(0), "non_negative_int", ("-1", "x", "1.5"),
                                  "argparse type: an integer >= 0.")
finite_float = _argument_type(_finite, "finite_float", ("nan", "inf", "-inf", "x"),
                              "argparse type: a finite number (no nan/inf).")
positive_float = _argument_type(float_in(0.0, lo_open=True), "positive_float", ("0", "-1", "nan", "x"),
                                "argparse type: a finite number > 0.")
non_negative_float = _argument_type(float_in(0.0), "non_negative_float", ("-1", "nan", "x"),
                                    "argparse type: a finite number >= 0.")
fraction = _argument_type(float_in(0.0, 1.0), "fraction", ("1.5", "-0.1", "nan", "x"),
                          "argparse type: a number in [0, 1].")


def int_list(lo: int, hi: int, max_len: int):
    """argparse type: comma-separated integers in [lo, hi], 1..max_len of them ('0,1,2'), as a list."""
    def parse(text: str) -> list:
        items = [item.strip() for item in text.split(",")]
        if not text.strip() or not all(items):
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
        values = [_int(item) for item in items]
        if len(values) > max_len:
            raise argparse.ArgumentTypeError(f"at most {max_len} values, got {len(values)}")
        bad = [v for v in values if not lo <= v <= hi]
        if bad:
            raise argparse.ArgumentTypeError(f"values must be in [{lo}, {hi}], got {bad[0]}")
        return values

    return _argument_type(parse, f"int_list({lo}, {hi})", ("", "1,,2", "x", str(lo - 1), str(hi + 1),
                                                            ",".join(["0"] * (max_len + 1))))


# Sizes and indices, bounded by the documented maxima (hfagp_common.limits).
frame_count = int_in(1, limits.MAX_FRAMES)
frame_index = int_in(0, limits.MAX_FRAMES - 1)
batch_size = int_in(1, limits.MAX_BATCH)
resolution = int_in(8, limits.MAX_RESOLUTION)
grid_resolution = int_in(8, limits.MAX_GRID_RESOLUTION)
seed = int_in(0, limits.MAX_SEED)
step = int_in(0, limits.MAX_STEPS)
jobs = int_in(1, limits.MAX_JOBS)


# What reading absl flags and an ml_collections config file can raise for a user's mistake: an unknown flag
# or config key, a value of the wrong type, a config file that is missing or does not run.
_FLAG_ERRORS = (AttributeError, KeyError, ValueError, TypeError, OSError, SyntaxError, ImportError)


def _flag_error_message(e: BaseException) -> str:
    if isinstance(e, (AttributeError, KeyError)):  # ml_collections: an override of a key the config lacks
        return f"unknown config key {str(e).strip(chr(34))} (check the --config.* overrides)"
    message = f"{type(e).__name__}: {e}" if isinstance(e, SyntaxError) else str(e)
    if "Traceback (most recent call last)" in message:  # a config file that raised: its own last line
        head, _, trace = message.partition("Traceback (most recent call last)")
        message = head.rstrip(" :\n") + ": " + trace.strip().splitlines()[-1].strip()
    return message


@contextlib.contextmanager
def flag_errors(name: str) -> Iterator[None]:
    """Turns an error in defining or parsing absl / ml_collections flags into ``<name>: error: ...`` and exit 2.

    `config_flags.DEFINE_config_file` already loads the default config and applies the ``--config.*``
    overrides of sys.argv, so a script wraps its flag definitions in this as well as its parsing."""
    from absl import flags

    try:
        yield
    except flags.Error as e:
        _exit_with_error(name, _flag_error_message(e))
    except _FLAG_ERRORS as e:
        _exit_with_error(name, _flag_error_message(e))
    except Exception as e:  # a config file's own error (its get_config raised): named with its type
        _exit_with_error(name, f"{type(e).__name__}: {e}")


def require_path_flags(*names: str) -> None:
    """absl validators: each of the string flags `names`, when given, must name a path. An empty or blank value
    (an unset shell variable, ``--workdir=$RUN``) would otherwise mean the current directory, and a run would
    write its files there; it is refused as a bad flag (one line, exit 2), before any work."""
    from absl import flags

    for name in names:
        flags.register_validator(name, lambda value: value is None or bool(str(value).strip()),
                                 message=f"--{name} is empty (an unset shell variable?); name a directory")


def absl_flags_parser(name: str, config_flag: Optional[str] = "config") -> Callable[[list], list]:
    """`flags_parser` for `absl.app.run` under the one-line contract: a bad flag, config file or config
    override prints ``<name>: error: ...`` and exits 2 (absl's own parser prints a 'FATAL' block and exits 1).

    config_flag: an `ml_collections.config_flags` flag read right after parsing, so that a config file that
    fails to load is reported here, not at its first use."""

    def parse(argv):
        from absl import flags

        with flag_errors(name):
            remaining = flags.FLAGS(argv)
            if config_flag is not None and config_flag in flags.FLAGS:
                getattr(flags.FLAGS, config_flag)
        return remaining

    return parse


def absl_main(name: str, body: Callable[[], Optional[int]]) -> Callable[[list], None]:
    """``main(argv)`` for `absl.app.run` (flags parsed by `absl_flags_parser(name)`, see `run_absl`): absl's
    logging at WARNING (orbax logs every checkpoint step at INFO, absl its backend discovery; neither is the
    command's output), then `body()` under `run`'s one-line error contract; exits with its code."""

    def main(argv):
        del argv
        from absl import logging

        logging.set_verbosity(logging.WARNING)
        exit(run(name, body))

    return main


def run_absl(name: str, main: Callable[[list], None], huge_pages: bool = True) -> None:
    """The ``__main__`` block of an absl entry point: with `huge_pages`, restart under glibc malloc with
    transparent huge pages first (`hfagp_common.host.reexec_with_huge_pages`: ~25% faster CPU steps), then
    `absl.app.run(main)` with `absl_flags_parser(name)` (a bad flag: one line, exit 2)."""
    from absl import app

    from hfagp_common.host import reexec_with_huge_pages

    if huge_pages:
        reexec_with_huge_pages()
    app.run(main, flags_parser=absl_flags_parser(name))


def _exit_with_error(name: str, message) -> None:
    print(error_line(name, message), file=sys.stderr)
    sys.exit(2)


__all__ = ["ArgumentParser", "ConfigError", "EXPECTED_ERRORS", "UserError", "absl_flags_parser", "absl_main",
           "batch_size", "entry_point", "error_line", "exit", "finite_float", "first_line", "flag_errors", "float_in",
           "fraction", "frame_count", "frame_index", "grid_resolution", "int_in", "int_list", "interrupted", "jobs",
           "non_negative_float", "non_negative_int", "one_line", "optional_path", "path", "path_object",
           "positive_float", "positive_int", "print_json", "require_path_flags", "resolution", "run", "run_absl",
           "seed", "step"]
