"""Real dumps and profiles of the issue-2 fixture programs, taken once per test session.

``capture(name, version)`` runs tests/goprograms/<name> built with Go ``version`` with
``-n 200`` and takes its goroutine dump (debug=2), debug=1 text and protobuf profile, and on
Go 1.27 its goroutineleak dump and profile; they are written under a session directory so
tests can also hand the files to the CLI and to `go tool pprof`.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gofixtures
from dumpwait import settle
from gopark.formats.load import load_bytes
from gopark.model import Snapshot

N = 200
VERSIONS = ("1.21", "1.24", "1.27")
LEAKY = ("sendaftertimeout", "rangeunclosed", "mutexpileup", "waitgroupmissing",
         "httpbodyunclosed", "tickerloop")
HEALTHY = ("healthypool", "idlehttpserver")

# The file names of each form, and the pprof path it comes from.
FORMS = {
    "debug2": "goroutine?debug=2",
    "debug1": "goroutine?debug=1",
    "proto": "goroutine",
}
LEAK_FORMS = {"leak-debug2": "goroutineleak?debug=2", "leak-debug1": "goroutineleak?debug=1",
              "leak-proto": "goroutineleak"}

_DIR = Path(tempfile.mkdtemp(prefix="gopark-captures-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)


@dataclass(frozen=True)
class Capture:
    """The files taken from one run of one program."""

    name: str
    version: str
    files: dict[str, Path]
    binary: Path

    def snapshot(self, form: str) -> Snapshot:
        """The parsed snapshot of one form."""
        items = load_bytes(self.files[form].read_bytes(), str(self.files[form]))
        snaps = [i for i in items if isinstance(i, Snapshot)]
        assert len(snaps) == 1, (form, items)
        return snaps[0]


@functools.cache
def capture(name: str, version: str) -> Capture:
    """Run the program once and take every form (cached for the session), once its
    goroutines have reached the places they block at (tests count them exactly)."""
    files: dict[str, Path] = {}
    forms = dict(FORMS, **(LEAK_FORMS if version == "1.27" else {}))
    with gofixtures.run(name, version, ["-n", str(N)]) as p:
        settled = settle(p)
        for form, path in forms.items():
            out = _DIR / f"{name}-{version}.{form}"
            out.write_bytes(settled if form == "debug2" else gofixtures.fetch(p, path))
            files[form] = out
    return Capture(name, version, files, gofixtures.program(name, version))


def source_line_number(name: str, marker: str, after: str | None = None) -> int:
    """The line of tests/goprograms/<name>/main.go that contains ``marker`` (the first one
    after the line containing ``after``, if given)."""
    lines = (gofixtures.GOPROGRAMS / name / "main.go").read_text().splitlines()
    start = 0 if after is None else next(i for i, ln in enumerate(lines) if after in ln)
    hits = [i + 1 for i, line in enumerate(lines) if i >= start and marker in line]
    assert hits and (after is not None or len(hits) == 1), (name, marker, hits)
    return hits[0]
