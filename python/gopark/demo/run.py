"""`gopark demo`: build the bundled leaky service, leak some goroutines, diagnose it.

The program (gopark/demo/leaky, plain Go, standard library only) is built once per Go
version and source hash into the user's cache, run on a free loopback port, driven with
real HTTP requests on its leaky path (/search, whose upstream call outlives its deadline)
and its healthy path (/health); its goroutine dump and profile are then read from
/debug/pprof and diagnosed like any other target.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from gopark.analysis.diagnose import diagnose
from gopark.analysis.findings import Diagnosis
from gopark.demo.goprocess import GoProcess, build, find_go, go_env
from gopark.errors import GoparkError
from gopark.formats.load import load_bytes
from gopark.model import Profile, Snapshot

SOURCE_DIR = Path(__file__).parent / "leaky"


@dataclass(slots=True)
class DemoRun:
    """What the demo took from the program, and the diagnosis."""

    diagnosis: Diagnosis
    url: str
    requests: int
    timed_out: int
    dump: bytes
    profile: bytes


def cache_dir() -> Path:
    """Where built demo programs are kept ($GOPARK_CACHE, else ~/.cache/gopark)."""
    base = os.environ.get("GOPARK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "gopark")
    return Path(base) / "demo"


def go_version(go: str) -> str:
    """``go env GOVERSION`` of a go command, e.g. ``go1.27.3``."""
    proc = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                          env=go_env(go), timeout=60)
    if proc.returncode != 0:
        raise GoparkError(f"{go} env GOVERSION failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def build_demo(go: str | None = None) -> Path:
    """Build the demo with ``go`` (default: find_go()) unless a build of the same sources
    with the same Go is cached; returns the binary."""
    go = go or find_go()
    h = hashlib.sha256(go_version(go).encode())
    for p in sorted(SOURCE_DIR.iterdir()):
        if p.suffix in (".go", ".mod"):
            h.update(p.name.encode() + p.read_bytes())
    out = cache_dir() / h.hexdigest()[:16] / "leaky"
    if not out.exists():
        tmp = out.with_name(f"leaky.{os.getpid()}.tmp")
        build(SOURCE_DIR, "", tmp, go)
        tmp.replace(out)
    return out


def drive(base: str, requests: int, workers: int = 16) -> int:
    """Send ``requests`` searches (the leaky path) and as many health checks; returns how
    many searches timed out (each leaves a goroutine behind)."""
    def search(i: int) -> int:
        r = client.get(f"{base}/search", params={"q": f"item-{i}"})
        client.get(f"{base}/health").raise_for_status()
        return 1 if r.status_code == 504 else 0

    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(search, range(requests)))


def run_demo(requests: int = 200, go: str | None = None,
             say: Callable[[str], None] = lambda _: None) -> DemoRun:
    """Build, run, drive and diagnose the demo program; it is stopped before returning."""
    say("building the demo service (gopark/demo/leaky) ...")
    binary = build_demo(go)
    with GoProcess(binary, ["-addr", "127.0.0.1:0"]) as proc:
        base = f"http://{proc.addr}"
        say(f"running it on {base}; sending {requests} searches and {requests} health checks ...")
        timed_out = drive(base, requests)
        with httpx.Client(timeout=60) as client:
            dump = client.get(f"{proc.base_url}goroutine", params={"debug": "2"})
            profile = client.get(f"{proc.base_url}goroutine")
        dump.raise_for_status()
        profile.raise_for_status()
    say(f"{timed_out} searches timed out; took its goroutine dump and profile; stopped it.")
    url = proc.base_url
    inputs: list[Snapshot | Profile | Path] = []
    inputs += load_bytes(profile.content, url + "goroutine")
    inputs += load_bytes(dump.content, url + "goroutine?debug=2")
    d = diagnose(inputs, target=url)
    return DemoRun(d, url, requests, timed_out, dump.content, profile.content)
