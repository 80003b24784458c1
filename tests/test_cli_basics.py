"""The CLI's contract: help reads, errors are one line with exit code 2."""

import subprocess
import sys

from gopark import _core, __version__
from gopark.cli import main


def test_version_matches_core(capsys: object) -> None:
    assert _core.version() == __version__


def test_help_lists_subcommands() -> None:
    out = subprocess.run([sys.executable, "-m", "gopark", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for cmd in ():
        assert cmd in out.stdout


def test_no_command_is_usage_error() -> None:
    assert main([]) == 2
