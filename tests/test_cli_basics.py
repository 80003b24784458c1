"""The CLI's contract: help reads, every subcommand has help, usage errors exit 2."""

import subprocess
import sys

import pytest
from gopark import __version__, _core
from gopark.cli import COMMANDS, main


def test_version_matches_core() -> None:
    assert _core.version() == __version__


def test_help_lists_every_subcommand() -> None:
    out = subprocess.run([sys.executable, "-m", "gopark", "--help"], capture_output=True,
                         text=True)
    assert out.returncode == 0
    for cmd in ("diagnose", "goroutines", "trace", "collect", "watch", "diff", "demo"):
        assert cmd in COMMANDS and cmd in out.stdout


@pytest.mark.parametrize("cmd", COMMANDS)
def test_each_subcommand_has_help(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert "usage: gopark " + cmd in capsys.readouterr().out


def test_no_command_is_usage_error() -> None:
    assert main([]) == 2


def test_missing_file_is_one_line_exit_2() -> None:
    out = subprocess.run([sys.executable, "-m", "gopark", "goroutines", "/nonexistent/dump.txt"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "/nonexistent/dump.txt" in out.stderr
    assert "Traceback" not in out.stderr
