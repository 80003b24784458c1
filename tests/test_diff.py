"""`gopark diff A B` on real dumps, profiles and bundles; group counts checked against
`go tool pprof -raw` on the same goroutine profiles, heap sites against `pprof -raw -base`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gofixtures
import pproforacle
import pytest
from dumpwait import settle
from gopark.collect import CollectOptions, collect_bundle
from gopark.demo.goprocess import GoProcess
from test_heap import oracle_site_deltas

DIFF = [sys.executable, "-m", "gopark", "diff"]


def _diff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIFF, *args], capture_output=True, text=True, timeout=120)


def _json(*args: str) -> dict[str, Any]:
    out = _diff(*args, "--format", "json")
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _row(d: dict[str, Any], function: str) -> dict[str, Any]:
    rows = [g for g in d["goroutines"]["groups"]
            if g["location"] and g["location"]["function"] == function]
    assert len(rows) == 1, rows
    return rows[0]


@pytest.fixture(scope="module", params=["1.22", "1.27"])
def leak_files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[str, dict[str, Path]]:
    """Two moments of a leaking service, each as a debug=2 dump and a protobuf profile."""
    tmp = tmp_path_factory.mktemp("diff")
    files: dict[str, Path] = {}
    with gofixtures.run("sendaftertimeout", request.param, ["-n", "30", "-rate", "20"]) as p:
        for moment in ("a", "b"):
            if moment == "b":
                # 20/s for 1.5 s; on a loaded machine, until the dump shows 15 more
                time.sleep(1.5)
                _wait_for_dump(p, lambda d: _senders(d) >= _senders(files["a-dump"]) + 15)
            for name, path in (("proto", "goroutine"), ("dump", "goroutine?debug=2")):
                f = tmp / f"{moment}-{name}"
                f.write_bytes(gofixtures.fetch(p, path))
                files[f"{moment}-{name}"] = f
    return request.param, files


def _senders(dump: bytes | Path) -> int:
    """Goroutines of a sendaftertimeout dump blocked in its leaky send."""
    text = dump.read_bytes() if isinstance(dump, Path) else dump
    return sum(1 for b in text.split(b"\n\n")
               if b"[chan send" in b.split(b"\n", 1)[0] and b"\nmain.fetch.func1(" in b)


def _wait_for_dump(p: GoProcess, condition: Callable[[bytes], bool],
                   timeout: float = 90.0) -> bytes:
    """Poll `p`'s debug=2 dump until `condition` holds; that dump."""
    deadline = time.monotonic() + timeout
    while not condition(dump := gofixtures.fetch(p, "goroutine?debug=2")):
        assert time.monotonic() < deadline, "the fixture never reached the expected state"
        time.sleep(0.2)
    return dump


def _oracle_count(version: str, path: Path, function: str) -> int:
    """Goroutines whose innermost frame outside the runtime is `function` (blocked in it,
    not in something it called), per `go tool pprof -raw`."""
    prof = pproforacle.raw(version, path)
    total = 0
    for s in prof.samples:
        outside = [line for line in prof.stack(s) if not line[0].startswith("runtime.")]
        total += s.values[0] if outside and outside[0][0] == function else 0
    return total


def test_profiles_agree_with_pprof(leak_files: tuple[str, dict[str, Path]]) -> None:
    version, f = leak_files
    d = _json(str(f["a-proto"]), str(f["b-proto"]))
    row = _row(d, "main.fetch.func1")
    before = _oracle_count(version, f["a-proto"], "main.fetch.func1")
    after = _oracle_count(version, f["b-proto"], "main.fetch.func1")
    assert (row["before"], row["after"], row["delta"]) == (before, after, after - before)
    assert row["status"] == "grew" and row["delta"] >= 15  # 20/s for 1.5 s
    totals = d["goroutines"]
    assert totals["before"] == sum(g["before"] for g in totals["groups"])
    assert totals["after"] == sum(g["after"] for g in totals["groups"])


def test_dump_against_profile(leak_files: tuple[str, dict[str, Path]]) -> None:
    version, f = leak_files
    d = _json(str(f["a-dump"]), str(f["b-proto"]))
    row = _row(d, "main.fetch.func1")
    # The dump and the profile group the same goroutines under one key.
    assert row["before"] == _dump_count(f["a-dump"], "[chan send", "\nmain.fetch.func1(")
    assert row["after"] == _oracle_count(version, f["b-proto"], "main.fetch.func1")
    assert row["category"] == "chan-send" and row["state"] == "chan send"
    text = _diff(str(f["a-dump"]), str(f["b-proto"]))
    assert text.returncode == 0
    line = next(ln for ln in text.stdout.splitlines() if "main.fetch.func1" in ln)
    assert f"+{row['delta']}" in line and "grew" in line and "chan-send" in line


def _dump_count(path: Path, header: str, frame: str) -> int:
    """Goroutine blocks of a dump whose header contains `header` and body `frame`."""
    blocks = path.read_text().split("\n\n")
    return sum(1 for b in blocks if header in b.split("\n", 1)[0] and frame in b)


def test_new_and_vanished_groups(tmp_path: Path) -> None:
    a, b = tmp_path / "burst.txt", tmp_path / "drained.txt"
    # The burst once all 200 requests wait (well within the 5 s hold, even on a loaded
    # machine), then drained once they all returned.
    with gofixtures.run("burstdrains", "1.24", ["-n", "200", "-hold", "5s"]) as p:
        a.write_bytes(settle(p))
        b.write_bytes(_wait_for_dump(p, lambda dump: b"main.handle(" not in dump))
    d = _json(str(a), str(b))
    handle = _row(d, "main.handle")
    assert (handle["before"], handle["after"], handle["status"]) == (200, 0, "vanished")
    sleeper = _row(d, "main.slowDependency.func1")
    assert sleeper["status"] == "vanished" and sleeper["category"] == "sleep"
    back = _json(str(b), str(a))
    assert _row(back, "main.handle")["status"] == "new"
    out = _diff(str(a), str(b))
    assert "vanished" in out.stdout and "main.handle" in out.stdout


def test_heap_sites_agree_with_pprof_base(tmp_path: Path) -> None:
    a, b = tmp_path / "h1.pb.gz", tmp_path / "h2.pb.gz"
    with gofixtures.run("globalmap", "1.27", ["-n", "0", "-rate", "100"]) as p:
        a.write_bytes(gofixtures.fetch(p, "heap?gc=1"))
        time.sleep(1.0)
        b.write_bytes(gofixtures.fetch(p, "heap?gc=1"))
    d = _json(str(a), str(b))
    assert d["goroutines"] is None
    sites = d["heap"]["sites"]
    oracle = {(s.function, s.line): v for s, v in oracle_site_deltas("1.27", a, b).items() if v}
    mine = {(s["location"]["function"], s["location"]["line"]): s["delta_bytes"] for s in sites
            if s["delta_bytes"]}
    assert mine == oracle
    assert sites[0]["location"]["function"] == "main.remember" and sites[0]["delta_bytes"] > 0
    assert "main.remember (main.go:17)" in _diff(str(a), str(b)).stdout


def test_bundles(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    options = CollectOptions(interval=0.5, duration=1.5, probe_go_version=False)
    with gofixtures.run("rangeunclosed", "1.24", ["-n", "20", "-rate", "20"]) as p:
        collect_bundle(p.base_url, first, options)
        collect_bundle(p.base_url, second, options)
    # One bundle: its first against its last snapshot; two bundles: end against end.
    within = _json(str(first))
    row = _row(within, "main.consume")
    assert row["status"] == "grew" and row["delta"] >= 10 and row["state"] == "chan receive"
    assert within["heap"] is not None
    across = _json(str(first), str(second))
    row2 = _row(across, "main.consume")
    assert row2["before"] == row["after"] and row2["delta"] >= 10


def test_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"hello, this is not a dump\n")
    out = _diff(str(junk), str(junk))
    assert out.returncode == 2 and out.stderr.startswith("gopark: error: ")
    assert str(junk) in out.stderr and out.stderr.count("\n") == 1
    out = _diff(str(tmp_path))  # a folder that is not a bundle
    assert out.returncode == 2 and "bundle" in out.stderr and out.stderr.count("\n") == 1
