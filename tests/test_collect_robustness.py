"""Collection from targets that misbehave: die, hang, trickle, or send an endless body.

Each must leave a valid bundle (or a clear error) within a bounded time and memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import gofixtures
import pytest
from gopark.collect import (
    Bundle,
    BundleFile,
    ClientOptions,
    CollectOptions,
    ProgressEvent,
    collect_bundle,
    open_bundle,
)
from gopark.errors import CollectError
from pproforacle import run_pprof

QUICK_ENOUGH = 3.0
"""Seconds each request may take (ClientOptions.timeout) where the other requests of the
collection must succeed: on a machine at load 11 a goroutine profile of a few goroutines
(14 ms otherwise) once took over 1 s, and the collection missed its end snapshot."""


def no_partial_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.startswith(".")]


def assert_valid(b: Bundle) -> Bundle:
    """The bundle reads back, lists only files that exist, and left no temporary files."""
    again = open_bundle(b.directory)
    assert [f.to_json() for f in again.files] == [f.to_json() for f in b.files]
    assert no_partial_files(b.directory)
    for f in again.files:
        if f.ok:
            assert again.path(f).stat().st_size == f.size
    return again


def test_target_killed_mid_collection_leaves_partial_bundle(tmp_path: Path) -> None:
    with gofixtures.run("sendaftertimeout", "1.27", ["-n", "20", "-rate", "20"]) as p:
        snapshots_seen: list[BundleFile] = []
        killed_at: list[float] = []

        def kill_after_three_snapshots(e: ProgressEvent) -> None:
            if e.what == "file" and e.file is not None and e.file.phase == "interval" \
                    and e.file.kind == "goroutine":
                snapshots_seen.append(e.file)
                if len(snapshots_seen) == 3:
                    p.stop()  # SIGKILL, as a crash or the OOM killer would
                    killed_at.append(time.monotonic())

        client = ClientOptions(timeout=QUICK_ENOUGH)
        b = collect_bundle(p.base_url, tmp_path / "b", CollectOptions(
            interval=0.25, duration=30, client=client), progress=kill_after_three_snapshots)
        took = time.monotonic() - killed_at[0]
    # Three refused requests (give_up_after), each retried after the 0.5 s and 1 s backoff:
    # 4.5 s of waiting, plus 7 s for a loaded machine. Collecting on would take the rest of
    # the 30 s window.
    retry_waits = client.backoff + 2 * client.backoff
    assert took < 3 * retry_waits + 7, took
    b = assert_valid(b)
    assert b.status == "target-lost"
    assert any(n.startswith("target stopped answering") for n in b.notes)
    snaps = b.select("goroutine", "proto")
    assert len(snaps) == 4  # start, and three intervals before the kill
    assert b.select("goroutine", "debug2") and b.select("heap", "proto")
    assert all("connect" in (f.error or "") for f in b.errors), b.errors
    assert len(b.errors) >= 3
    assert b.errors[0].started > snaps[-1].started
    # What was taken before the kill is whole: Go's own tool reads every profile (with the
    # oracle's 600 s timeout: the first run on an empty build cache builds pprof).
    for f in snaps:
        assert "Samples:" in run_pprof("1.27", "-raw", str(b.path(f)))


def test_hanging_profiles_bounded_by_timeout(tmp_path: Path) -> None:
    with gofixtures.run("hangs", "1.27", ["-n", "0", "-hang", "goroutine,heap"]) as p:
        timeout = QUICK_ENOUGH
        began = time.monotonic()
        b = collect_bundle(p.base_url, tmp_path / "b", CollectOptions(
            interval=1, duration=60, client=ClientOptions(timeout=timeout)))
        took = time.monotonic() - began
    # Three unanswered requests of one timeout each (timeouts are not retried), plus 7 s for
    # a loaded machine; going on would take the 60 s window.
    assert took < 3 * timeout + 7, took
    b = assert_valid(b)
    assert b.status == "target-lost"
    assert [f.kind for f in b.files if f.ok] == ["index"]
    assert len(b.errors) == 3
    assert all("timeout" in (f.error or "") and not f.retries for f in b.errors)


def test_trickling_body_aborted_at_total_deadline(tmp_path: Path) -> None:
    with gofixtures.run("hangs", "1.27", ["-n", "0", "-trickle", "heap"]) as p:
        timeout = QUICK_ENOUGH
        began = time.monotonic()
        b = collect_bundle(p.base_url, tmp_path / "b", CollectOptions(
            interval=1, duration=0, client=ClientOptions(timeout=timeout)))
        took = time.monotonic() - began
    b = assert_valid(b)
    heap = [f for f in b.files if f.kind == "heap"]
    assert len(heap) == 4 and not any(f.ok for f in heap)
    assert all("still incomplete" in (f.error or "") and not f.retries for f in heap)
    # Each is cut at the first byte after its deadline (a byte comes every 0.2 s), plus 2 s
    # for a loaded machine. Reading the whole body at 5 bytes a second would take minutes:
    # a heap profile is over a kilobyte.
    per_heap = timeout + 0.2 + 2
    assert all(timeout - 0.01 <= f.duration_s < per_heap for f in heap), heap
    assert took < 4 * per_heap + 5, took  # and 5 s for the ten other, quick requests
    # The rest of the collection went on: snapshots and dumps are there.
    assert len(b.select("goroutine", "proto")) == 2 and len(b.select("goroutine", "debug2")) == 2
    assert b.status == "complete"


def test_snapshots_skipped_when_running_late_are_noted(tmp_path: Path) -> None:
    # The start's two heap requests trickle until their deadline: by then the window's
    # interval snapshots (every 0.25 s up to 1.5 s) are all past due.
    with gofixtures.run("hangs", "1.27", ["-n", "0", "-trickle", "heap"]) as p:
        b = collect_bundle(p.base_url, tmp_path / "b", CollectOptions(
            interval=0.25, duration=1.5, client=ClientOptions(timeout=QUICK_ENOUGH)))
    b = assert_valid(b)
    (note,) = [n for n in b.notes if "interval snapshots skipped" in n]
    skipped = int(note.split()[0])
    taken = len(b.select("goroutine", "proto", phase="interval"))
    assert skipped >= 1 and skipped + taken == 5, (note, taken)
    assert note == (f"{skipped} of 5 interval snapshots skipped: the requests before them "
                    "ran past the next one's time")


def test_silent_listener_fails_fast_with_clear_error(tmp_path: Path) -> None:
    addr_file = tmp_path / "silent"
    with gofixtures.run("hangs", "1.27", ["-n", "0", "-silent-addr-file", str(addr_file)]):
        url = f"http://{addr_file.read_text()}/debug/pprof/"
        began = time.monotonic()
        with pytest.raises(CollectError, match=r"no response within 1 s \(timeout\)"):
            collect_bundle(url, tmp_path / "b", CollectOptions(client=ClientOptions(timeout=1)))
        # One 1 s timeout plus 5 s for a loaded machine; the listener never answers, so
        # waiting for it would never end.
        assert time.monotonic() - began < 1 + 5
    b = assert_valid(open_bundle(tmp_path / "b"))
    assert b.status == "failed" and b.errors[0].kind == "index"
    assert not b.errors[0].retries  # a silent target is not asked again


_MEASURE = """
import json, resource, sys
from gopark.collect import ClientOptions, CollectOptions, collect_bundle
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
b = collect_bundle(sys.argv[1], sys.argv[2], CollectOptions(
    duration=0, client=ClientOptions(max_bytes=64 << 20)))
print(json.dumps({"grew_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline,
                  "errors": [f.error for f in b.errors], "status": b.status}))
"""


def test_endless_body_capped_without_holding_it_in_memory(tmp_path: Path) -> None:
    with gofixtures.run("hugebody", "1.27", ["-n", "0", "-endless", "heap"]) as p:
        out = subprocess.run([sys.executable, "-c", _MEASURE, p.base_url, str(tmp_path / "b")],
                             capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    # Four heap requests (proto and debug=1, at start and end), each cut at 64 MiB.
    assert result["errors"] == ["response larger than the 64 MiB cap; aborted"] * 4, result
    assert result["status"] == "complete", result
    # Collecting grew the process by less than one capped body: nothing was held whole.
    assert result["grew_kib"] < 40 * 1024, result["grew_kib"]
    b = assert_valid(open_bundle(tmp_path / "b"))
    assert not b.select("heap") and len(b.select("goroutine", "debug2")) == 2, b.files
