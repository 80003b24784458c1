"""Execution traces made by real Go programs, and Go's own tools as oracles.

Traces come from tests/goprograms/tracebusy (which records its own trace) and from the
test programs in each Go release's GOROOT (src/internal/trace/testdata/testprog, read
there at test time, built into the test cache, never copied into the repo).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from gofixtures import CACHE, GO_VERSIONS, GOPROGRAMS, fetch, go_binary, goroot, program
from gopark.demo.goprocess import GoProcess
from gopark.formats.load import load_bytes
from gopark.formats.trace import load_trace
from gopark.model import Snapshot
from gopark.report.trace_events import render_parsed

# Trace format versions the v2 reader handles, by the Go release that writes them.
V2_GO = ("1.22", "1.23", "1.25", "1.26", "1.27")


def go_env() -> dict[str, str]:
    """Environment for go commands and Go programs in tests."""
    import os

    env = dict(os.environ)
    env.update(GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-mod=mod",
               GOCACHE=str(CACHE / "gocache"), GOPATH=str(CACHE / "gopath"))
    return env


def busy_trace(short: str, out: Path, duration: str = "150ms", workers: int = 4,
               cpu: bool = True, flight: bool = False, leaks: int = 20,
               godebug: str = "") -> Path:
    """Run tracebusy built with Go `short` so it records a trace into `out`."""
    exe = program("tracebusy", short)
    args = [str(exe), "-trace", str(out), "-for", duration, "-workers", str(workers),
            "-leaks", str(leaks)]
    if cpu:
        args.append("-cpu")
    if flight:
        args.append("-flight")
    env = go_env() | ({"GODEBUG": godebug} if godebug else {})
    subprocess.run(args, check=True, env=env, timeout=120, capture_output=True)
    return out


def go_test_trace(short: str, out: Path) -> Path:
    """`go test -trace` of tracebusy's TestBusy with Go `short`."""
    subprocess.run([str(go_binary(short)), "test", "-count=1", "-run", "TestBusy", f"-trace={out}",
                    "./tracebusy"], cwd=GOPROGRAMS, env=go_env(), check=True, capture_output=True,
                   timeout=600)
    return out


def find_testprog_dir(short: str) -> Path:
    """Where Go `short` keeps its trace test programs."""
    src = goroot(short) / "src" / "internal" / "trace"
    for d in (src / "testdata" / "testprog", src / "v2" / "testdata" / "testprog"):
        if d.is_dir():
            return d
    raise FileNotFoundError(f"no trace testprog in Go {short}")


def record_testprog(short: str, name: str, out: Path) -> Path:
    """Build GOROOT's testprog/<name>.go with Go `short` (cached) and record its trace."""
    src = find_testprog_dir(short) / f"{name}.go"
    exe = CACHE / "bin" / "trace-testprog" / f"{name}-go{GO_VERSIONS[short]}"
    if not exe.exists():
        work = exe.parent / f"{exe.name}.src"
        work.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, work / "main.go")
        env = go_env() | {"GO111MODULE": "off"}
        subprocess.run([str(go_binary(short)), "build", "-o", str(exe), "main.go"], cwd=work,
                       env=env, check=True, capture_output=True, timeout=600)
    with open(out, "wb") as f:
        subprocess.run([str(exe)], stdout=f, env=go_env(), check=True, timeout=120,
                       stderr=subprocess.DEVNULL)
    return out


def go_tool(short: str, *args: str, stdout: Path | None = None) -> str:
    """Run `go tool ARGS` of Go `short`; returns stdout (or writes it to `stdout`)."""
    cmd = [str(go_binary(short)), "tool", *args]
    if stdout is not None:
        with open(stdout, "wb") as f:
            subprocess.run(cmd, stdout=f, env=go_env(), check=True, timeout=600)
        return ""
    return subprocess.run(cmd, capture_output=True, text=True, env=go_env(), check=True,
                          timeout=600).stdout


def go_parsed(trace: Path) -> list[str]:
    """What Go 1.27's `go tool trace -d=parsed` prints for the trace, as lines."""
    return go_tool("1.27", "trace", "-d=parsed", str(trace)).splitlines()


def gopark_parsed(trace: Path) -> list[str]:
    """gopark's ordered stream of the trace in the -d=parsed form, as lines."""
    t = load_trace(trace)
    assert t.damage is None, t.damage
    text = "\n".join(render_parsed(t.events, t.catalog, t.generations)) + "\n"
    return text.splitlines()


def first_difference(want: list[str], got: list[str]) -> str:
    """A short description of where two line lists first differ ("" if equal)."""
    for i, (a, b) in enumerate(zip(want, got, strict=False)):
        if a != b:
            return f"line {i + 1}:\n  go:     {a}\n  gopark: {b}"
    if len(want) != len(got):
        return f"go printed {len(want)} lines, gopark {len(got)}"
    return ""


def parked(dump: bytes, function: str, state: str = "") -> int:
    """How many goroutines of a debug=2 dump have ``function`` on their stack (and are in
    ``state``, if given)."""
    [snap] = load_bytes(dump, "dump.txt")
    assert isinstance(snap, Snapshot)
    return sum(1 for g in snap.goroutines
               if (not state or g.state == state)
               and any(f.function == function for f in g.frames))


def wait_parked(p: GoProcess, function: str, state: str, n: int, timeout: float = 120.0) -> int:
    """Poll goroutine dumps of ``p`` until at least ``n`` goroutines have ``function`` on
    their stack in ``state`` ("" for any), so that a trace started next sees them all
    blocked (the fixtures' 300 ms head start is not enough on a loaded machine); returns
    how many the last dump shows."""
    deadline = time.monotonic() + timeout
    while True:
        count = parked(fetch(p, "goroutine?debug=2"), function, state)
        if count >= n or time.monotonic() > deadline:
            assert count >= n, f"only {count} of {n} goroutines at {function} after {timeout} s"
            return count
        time.sleep(0.2)
