"""`go tool pprof` as the oracle for profile parsing: runs it on a file and reads its output.

`-raw` prints a profile as decoded (sample values, location ids, labels, and the location
table with every inlined line); `-traces` prints each sample's stack as pprof users see it.
Both run with `-symbolize=none`, so the tool reports only what is in the file.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from gofixtures import go_binary, goroot

Line = tuple[str, str, int]  # function, file, line


@dataclass
class RawSample:
    values: tuple[int, ...]
    location_ids: tuple[int, ...]
    labels: dict[str, list[str]] = field(default_factory=dict)
    num_labels: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class RawProfile:
    """What `go tool pprof -raw` says about a profile."""

    sample_types: list[tuple[str, str]]
    default_sample_type: str
    period_type: tuple[str, str] | None
    period: int
    time: str | None
    comments: list[str]
    samples: list[RawSample]
    locations: dict[int, tuple[int, list[Line]]]
    """id -> (address, lines innermost first)."""

    def stack(self, s: RawSample) -> tuple[Line, ...]:
        """A sample's frames, innermost first, inlined lines expanded."""
        return tuple(ln for lid in s.location_ids for ln in self.locations[lid][1])

    def addresses(self, s: RawSample) -> tuple[int, ...]:
        return tuple(self.locations[lid][0] for lid in s.location_ids)


def run_pprof(short: str, *args: str) -> str:
    """Output of `go tool pprof ARGS` from Go `short`.

    Newer Go releases ship without a prebuilt pprof: the first call builds it (GOCACHE).
    """
    env = dict(os.environ, GOTOOLCHAIN="local", GOROOT=str(goroot(short)))
    proc = subprocess.run([str(go_binary(short)), "tool", "pprof", "-symbolize=none", *args],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


_LOCATION = re.compile(r"^\s*(\d+): (0x[0-9a-f]+) (?:M=\d+ )?(?:\[F\] )?(.*)$")
_LABEL = re.compile(r"(\S+?):\[([^\]]*)\]")


def _line(text: str) -> Line:
    """'main.work /src/main.go:39:0 s=34' (Go 1.21: no column) -> (function, file, line)."""
    text = re.sub(r" s=\d+(\(.*\))?$", "", text.strip())
    if not text or text == "??":
        return ("", "", 0)
    func, _, where = text.rpartition(" ")
    m = re.match(r"^(.*):(\d+):\d+$", where) or re.match(r"^(.*):(\d+)$", where)
    assert m, where
    return (func, m.group(1), int(m.group(2)))


def raw(short: str, path: Path) -> RawProfile:
    """Parse `go tool pprof -raw path`."""
    out = run_pprof(short, "-raw", str(path)).splitlines()
    period_type, period, time, comments = None, 0, None, []
    i = 0
    while out[i] != "Samples:":
        key, _, value = out[i].partition(": ")
        if key == "PeriodType":
            t, u = value.split(" ")
            period_type = (t, u)
        elif key == "Period":
            period = int(value)
        elif key == "Time":
            time = value
        elif key == "Comment":
            comments.append(value)
        i += 1
    sample_types, default = [], ""
    for col in out[i + 1].split():
        if col.endswith("[dflt]"):
            col = col[: -len("[dflt]")]
            default = col.split("/")[0]
        t, u = col.split("/")
        sample_types.append((t, u))
    i += 2
    samples: list[RawSample] = []
    while out[i] != "Locations":
        line = out[i]
        if line.startswith(" " * 16) and samples and not re.match(r"^\s+-?\d+(\s+-?\d+)*:", line):
            for key, vals in _LABEL.findall(line):
                parts = vals.split()
                if all(re.fullmatch(r"-?\d+", p) for p in parts) and key not in samples[-1].labels:
                    samples[-1].num_labels[key] = [int(p) for p in parts]
                else:
                    samples[-1].labels[key] = parts
        else:
            values, _, ids = line.partition(":")
            samples.append(RawSample(tuple(int(v) for v in values.split()),
                                     tuple(int(x) for x in ids.split())))
        i += 1
    i += 1
    locations: dict[int, tuple[int, list[Line]]] = {}
    last = 0
    while out[i] != "Mappings":
        m = _LOCATION.match(out[i])
        if m:
            last = int(m.group(1))
            lines = [_line(m.group(3))] if m.group(3).strip() else []
            locations[last] = (int(m.group(2), 16), lines)
        else:
            locations[last][1].append(_line(out[i]))
        i += 1
    return RawProfile(sample_types, default, period_type, period, time, comments, samples,
                      locations)


@dataclass(frozen=True)
class Trace:
    """One sample as `go tool pprof -traces` prints it."""

    value: str
    functions: tuple[str, ...]
    """Innermost first, with " (inline)" on frames inlined into the next one."""
    labels: tuple[tuple[str, str], ...]


def traces(short: str, path: Path) -> list[Trace]:
    """Parse `go tool pprof -traces path`."""
    out = run_pprof(short, "-traces", str(path))
    result: list[Trace] = []
    separator = "-----------+-------------------------------------------------------"
    for block in out.split(separator)[1:]:
        labels: list[tuple[str, str]] = []
        value = ""
        functions: list[str] = []
        for line in block.splitlines():
            if not line.strip():
                continue
            label = re.match(r"^\s*(\S+):  (.*)$", line)
            if label and not value:
                labels.append((label.group(1), label.group(2)))
            elif line.startswith(" " * 13):  # "%10s   %s" with no value: a caller
                functions.append(line.strip())
            else:
                value, _, func = line.strip().partition("   ")
                functions = [func.strip()]
        if functions:  # the text after the last separator is empty
            result.append(Trace(value, tuple(functions), tuple(sorted(labels))))
    return result
