"""The one place that turns failures into one-line CLI errors (`hfagp_common.cli.run`): user errors, bugs,
interrupts and `SystemExit(message)`; a bug shows its type in one line, HFAGP_TRACEBACK=1 the traceback."""

from __future__ import annotations

import re
import sys

import pytest

from faults.harness import assert_one_line_error, run_command


def _bug():
    raise TypeError("an input nobody anticipated")


@pytest.mark.parametrize("body, code, expect", [
    (lambda: (_ for _ in ()).throw(FileNotFoundError(2, "No such file or directory", "x.npy")), 2, r"x\.npy"),
    (lambda: (_ for _ in ()).throw(ValueError("--frames must be >= 1")), 2, r"--frames must be >= 1"),
    (lambda: (_ for _ in ()).throw(SystemExit("needs torch")), 2, r"needs torch"),
    (lambda: (_ for _ in ()).throw(KeyboardInterrupt()), 130, r"interrupted"),
    (_bug, 2, r"unexpected TypeError: an input nobody anticipated \(set HFAGP_TRACEBACK=1"),
])
def test_run_reports_one_line(body, code, expect, capsys, monkeypatch):
    from hfagp_common import cli

    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    assert cli.run("tool", body) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tool: error: ") and "Traceback" not in err
    assert re.search(expect, err), err


def test_traceback_on_request(capsys, monkeypatch):
    from hfagp_common import cli

    monkeypatch.setenv(cli.TRACEBACK_VARIABLE, "1")
    assert cli.run("tool", _bug) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in _bug" in err
    assert err.strip().splitlines()[-1].startswith("tool: error: unexpected TypeError")


def test_a_bug_in_an_entry_point_is_one_line_with_its_type(monkeypatch, capsys, tmp_path):
    """A real entry point with a bug planted in its body: one line naming the exception type."""
    from hfagp.render import __main__ as render_cli

    monkeypatch.delenv("HFAGP_TRACEBACK", raising=False)
    monkeypatch.setattr(render_cli, "_check_out", lambda args: _bug())   # the first thing its body does
    code = render_cli.main(["basis", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "hfagp.render: error: unexpected TypeError" in err, err


def test_an_absl_entry_point_reports_a_config_file_that_raises(tmp_path, ledger):
    bad = tmp_path / "bad_config.py"
    bad.write_text("def get_config():\n    raise RuntimeError('this config cannot be built')\n")
    with ledger.bad_input("train.py"):
        result = run_command([sys.executable, "train.py", f"--config={bad}", f"--workdir={tmp_path / 'w'}"])
        assert_one_line_error(result.returncode, result.stderr, "train.py", r"this config cannot be built")
        assert not (tmp_path / "w").exists()
