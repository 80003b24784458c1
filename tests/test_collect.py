"""Live collection into bundles, against real Go services on loopback.

One short collection (2 s, snapshots every 0.5 s, a 0.5 s trace and a 1 s CPU profile)
from the sendaftertimeout leak on Go 1.27 is shared by most tests; Go's own tools are the
oracle for the files it wrote.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gofixtures
import pytest
from gopark.collect import Bundle, ClientOptions, CollectOptions, collect_bundle, open_bundle
from gopark.collect.client import parse_retry_after
from gopark.collect.plan import parse_index, snapshot_offsets
from gopark.errors import CollectError, InputError

INTERVAL, DURATION = 0.5, 2.0


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bundle]:
    out = tmp_path_factory.mktemp("collect") / "bundle"
    # 40 leaked goroutines a second; block profiling on, mutex profiling off.
    args = ["-n", "50", "-rate", "40", "-block-rate", "1"]
    with gofixtures.run("sendaftertimeout", "1.27", args) as p:
        opts = CollectOptions(interval=INTERVAL, duration=DURATION, trace=0.5, cpu=1.0)
        collect_bundle(p.base_url, out, opts)
    yield open_bundle(out)


def go_tool(short: str, *args: str) -> str:
    """Run `go tool ...` of Go `short`; returns stdout, fails the test on a non-zero exit."""
    go = gofixtures.go_binary(short)
    env = dict(os.environ, GOTOOLCHAIN="local", GOROOT=str(gofixtures.goroot(short)))
    # 600 s like the other oracles: on an empty build cache Go 1.25+ builds pprof first
    # (4 min 44 s measured on the loaded 2-core CI machine).
    proc = subprocess.run([str(go), "tool", *args], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def pprof_total(path: Path) -> int:
    """Sum of the first value over all samples, as `go tool pprof -raw` prints them."""
    raw = go_tool("1.27", "pprof", "-raw", str(path))
    samples = raw.split("Samples:", 1)[1].split("Locations", 1)[0]
    rows = re.finditer(r"^\s+(\d+)(?:\s+\d+)*:", samples, re.MULTILINE)
    return sum(int(m.group(1)) for m in rows)


def index_count(b: Bundle, phase: str, name: str) -> int:
    page = b.read(next(f for f in b.select("index") if f.phase == phase)).decode()
    m = re.search(rf"<tr><td>(\d+)</td><td><a href='{name}\?debug=1'>", page)
    assert m, page
    return int(m.group(1))


def test_manifest_describes_every_file(bundle: Bundle) -> None:
    assert bundle.status == "complete"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/debug/pprof/", bundle.target)
    assert bundle.finished is not None and bundle.finished > bundle.started
    assert bundle.options["interval_s"] == INTERVAL and bundle.options["duration_s"] == DURATION
    assert not bundle.errors
    names = sorted(p.name for p in bundle.directory.iterdir())
    assert names == sorted([f.name for f in bundle.files if f.name] + ["manifest.json"])
    for f in bundle.files:
        assert bundle.path(f).stat().st_size == f.size > 0
        assert f.started >= bundle.started and f.duration_s >= 0
    starts = [f.started for f in bundle.files]
    assert starts == sorted(starts)


def skipped_snapshots(b: Bundle) -> int:
    """Interval snapshots the collector skipped because it ran late (a loaded machine)."""
    notes = [re.match(r"(\d+) of \d+ interval snapshots skipped", n) for n in b.notes]
    return sum(int(m.group(1)) for m in notes if m)


def test_snapshots_follow_the_interval(bundle: Bundle) -> None:
    snaps = bundle.select("goroutine", "proto")
    skipped = skipped_snapshots(bundle)
    # Every planned interval snapshot was either taken or counted in the note: on a loaded
    # machine the collector skips the ones it is too late for, and says how many.
    assert len(snapshot_offsets(DURATION, INTERVAL)) == 5
    assert len(snaps) + skipped == 5, bundle.notes
    assert [f.phase for f in snaps] == ["start"] + ["interval"] * (3 - skipped) + ["end"]
    first = snaps[0].started
    since_first = [(f.started - first).total_seconds() for f in snaps]
    # Never early: the k-th interval snapshot taken is due k intervals in at the soonest,
    # and the end waits out the window. 0.1 s covers the manifest's millisecond times and
    # the moment between the collector's clock start and the first request.
    for k, offset in enumerate(since_first[1:-1], start=1):
        assert offset >= k * INTERVAL - 0.1, since_first
    assert since_first[-1] >= DURATION - 0.1, since_first
    if skipped:
        # Skipping is only for running late: some request before the window's end ran
        # past the second interval's due time.
        light = [f for f in bundle.files if f.phase in ("start", "interval") and f.kind != "index"]
        latest = max((f.started - first).total_seconds() + f.duration_s for f in light)
        assert latest >= 2 * INTERVAL - 0.3, (bundle.notes, since_first)
    # Not late either: the end starts (with its index) once the window, the snapshots and
    # the trace/CPU captures are over - whatever a loaded machine made them last - plus a
    # thread wake-up. A collector that waited for anything else would run seconds over.
    (end_index,) = [f for f in bundle.files if f.kind == "index" and f.phase == "end"]
    before_end = [f for f in bundle.files if f.phase != "end" and f.kind != "index"]
    busy_until = max([DURATION] + [(f.started - first).total_seconds() + f.duration_s
                                   for f in before_end])
    assert (end_index.started - first).total_seconds() <= busy_until + 1.0, since_first


def test_snapshots_are_valid_profiles_that_see_the_leak_grow(bundle: Bundle) -> None:
    snaps = bundle.select("goroutine", "proto")
    totals = [pprof_total(bundle.path(f)) for f in snaps]
    # The fixture leaks 40 goroutines a second: 2 s later there are ~80 more.
    assert totals[-1] - totals[0] >= 40, totals
    # The end index and the last snapshot were taken moments apart; the fixture leaks 40
    # goroutines a second meanwhile.
    (index,) = [f for f in bundle.select("index") if f.phase == "end"]
    apart = (snaps[-1].started - index.started).total_seconds() + snaps[-1].duration_s
    assert abs(totals[-1] - index_count(bundle, "end", "goroutine")) <= 5 + 40 * 1.5 * apart


def test_dumps_at_start_and_end(bundle: Bundle) -> None:
    dumps = bundle.select("goroutine", "debug2")
    assert [f.phase for f in dumps] == ["start", "end"]
    for f in dumps:
        assert bundle.read(f).startswith(b"goroutine ")
        assert b"main.fetch.func1" in bundle.read(f)


def test_goroutineleak_runs_before_the_last_dump_which_then_shows_leaked(bundle: Bundle) -> None:
    (leak,) = bundle.select("goroutineleak")
    end_dump = bundle.select("goroutine", "debug2")[-1]
    assert leak.phase == "end" and leak.started < end_dump.started
    leaked = pprof_total(bundle.path(leak))
    assert leaked >= 50
    assert bundle.read(end_dump).count(b"[chan send (leaked)") >= leaked
    assert b"(leaked)" not in bundle.read(bundle.select("goroutine", "debug2")[0])


def test_heap_at_start_every_interval_and_end_with_memstats(bundle: Bundle) -> None:
    phases = [f.phase for f in bundle.select("heap", "proto")]
    intervals = len(bundle.select("goroutine", "proto", phase="interval"))
    assert phases == ["start"] + ["interval"] * intervals + ["end"] and intervals >= 1
    for f in bundle.select("heap", "proto"):
        go_tool("1.27", "pprof", "-raw", str(bundle.path(f)))
    for f in bundle.select("heap", "debug1"):
        text = bundle.read(f).decode()
        for field in ("# runtime.MemStats", "# HeapAlloc = ", "# HeapSys = ",
                      "# HeapObjects = ", "# NumGC = ", "# PauseNs = "):
            assert field in text


def test_block_taken_mutex_explained(bundle: Bundle) -> None:
    assert bundle.profiles["block"] > 0 and bundle.profiles["mutex"] == 0
    assert [f.phase for f in bundle.select("block")] == ["start", "end"]
    assert pprof_total(bundle.path(bundle.select("block")[-1])) > 0
    assert not bundle.select("mutex")
    assert any("mutex" in n and "SetMutexProfileFraction" in n for n in bundle.notes)
    assert not any("block" in n for n in bundle.notes)


def test_cpu_profile_and_trace_read_by_go_tools(bundle: Bundle) -> None:
    (cpu,) = bundle.select("cpu")
    (trace,) = bundle.select("trace")
    # A capture that ran on to the client's deadline (30 s + its length) would take far
    # over the 10 s allowed on a loaded machine.
    assert cpu.request == "profile?seconds=1" and 0.9 <= cpu.duration_s < 1 + 10
    assert trace.request == "trace?seconds=0.5" and 0.4 <= trace.duration_s < 0.5 + 10
    assert "PeriodType: cpu nanoseconds" in go_tool("1.27", "pprof", "-raw", str(bundle.path(cpu)))
    assert bundle.read(trace).startswith(b"go 1.")
    parsed = go_tool("1.27", "trace", "-d=parsed", str(bundle.path(trace)))
    assert "GoCreate" in parsed or "StateTransition" in parsed


def test_heavy_captures_never_overlap(bundle: Bundle) -> None:
    heavy = sorted((f for f in bundle.files if f.form in ("debug2", "trace") or f.kind == "cpu"),
                   key=lambda f: f.started)
    assert len(heavy) == 4
    for a, b in zip(heavy, heavy[1:], strict=False):
        assert a.started.timestamp() + a.duration_s <= b.started.timestamp() + 0.002, (a, b)


def test_go_version_unknown_without_metrics(bundle: Bundle) -> None:
    assert bundle.go_version is None and bundle.go_version_source is None


def test_old_go_has_no_goroutineleak_and_dump_threshold(tmp_path: Path) -> None:
    with gofixtures.run("sendaftertimeout", "1.21", ["-n", "30"]) as p:
        small = collect_bundle(p.base_url, tmp_path / "small",
                               CollectOptions(interval=0.5, duration=0.5, max_dump_goroutines=10))
        forced = collect_bundle(p.base_url, tmp_path / "forced",
                                CollectOptions(interval=0.5, duration=0, max_dump_goroutines=10,
                                               force_dumps=True))
    assert small.status == forced.status == "complete"
    assert "goroutineleak" not in small.profiles and not small.select("goroutineleak")
    assert any("goroutineleak profile not offered" in n for n in small.notes)
    assert not small.select("goroutine", "debug2")
    assert sum("debug=2 dump skipped" in n for n in small.notes) == 2
    assert len(forced.select("goroutine", "debug2")) == 2
    assert len(small.select("goroutine", "proto")) == 2


def test_go_version_from_prometheus_go_info(tmp_path: Path) -> None:
    with gofixtures.run("gateway", "1.24", ["-n", "0"]) as p:
        b = collect_bundle(p.addr, tmp_path / "b", CollectOptions(interval=1, duration=0))
    assert b.go_version == "go" + gofixtures.GO_VERSIONS["1.24"]
    assert b.go_version_source == "/metrics go_info"
    assert open_bundle(tmp_path / "b").go_version == b.go_version


def test_tls_client_cert_and_auth_header_never_written_down(tmp_path: Path) -> None:
    secret = "s3cr3t-token-7f2a"
    creds = tmp_path / "creds"
    creds.mkdir()
    with gofixtures.run("gateway", "1.27", ["-n", "0", "-dir", str(creds), "-token", secret]):
        url = f"https://user:hunter2@{(creds / 'addr').read_text()}/debug/pprof/"
        tls = dict(cacert=str(creds / "ca.pem"), cert=str(creds / "client.pem"),
                   key=str(creds / "client-key.pem"))
        good = ClientOptions(headers=(("Authorization", f"Bearer {secret}"),), **tls)
        b = collect_bundle(url, tmp_path / "ok", CollectOptions(interval=1, duration=0,
                                                                client=good))
        with pytest.raises(CollectError, match="HTTP 401"):
            collect_bundle(url, tmp_path / "no-token",
                           CollectOptions(interval=1, duration=0, client=ClientOptions(**tls)))
    assert b.status == "complete" and not b.errors
    assert b.go_version == "go" + gofixtures.GO_VERSIONS["1.27"]
    assert b.target.startswith("https://127.0.0.1:") and "user" not in b.target
    manifest = (tmp_path / "ok" / "manifest.json").read_text()
    for leak in (secret, "hunter2", "client.pem", "client-key.pem", "ca.pem", str(creds)):
        assert leak not in manifest


def test_index_lists_every_profile_of_the_go_release(bundle: Bundle) -> None:
    page = bundle.read(bundle.select("index")[0])
    assert parse_index(page) == bundle.profiles
    assert set(bundle.profiles) == {"allocs", "block", "cmdline", "goroutine", "goroutineleak",
                                    "heap", "mutex", "profile", "symbol", "threadcreate",
                                    "trace"}
    assert parse_index(b"<html><body>Welcome to nginx!</body></html>") is None


def test_snapshot_offsets() -> None:
    assert len(snapshot_offsets(60, 10)) == 7
    assert snapshot_offsets(5, 2) == [0, 2, 4, 5]
    assert snapshot_offsets(0, 10) == [0]


def _damage_json(m: dict[str, Any]) -> str:
    return json.dumps(m)[:-20]


DAMAGES: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "truncated": (_damage_json, r"manifest\.json: line 1 column \d+: invalid JSON"),
    "schema": (lambda m: {**m, "schema": "other/v9"}, r"schema: expected 'gopark\.bundle/v1'"),
    "no files": (lambda m: {k: v for k, v in m.items() if k != "files"}, r"field 'files'"),
    "bad time": (lambda m: {**m, "started": "yesterday"}, r"malformed manifest"),
    "escape": (lambda m: {**m, "files": [{**m["files"][0], "name": "../x"}]},
               r"file names must be plain names"),
    "missing": (lambda m: {**m, "files": [{**m["files"][0], "name": "0999-gone.pb.gz"}]},
                r"0999-gone\.pb\.gz: listed in manifest\.json but missing"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_bundle_is_one_clear_error(bundle: Bundle, tmp_path: Path, damage: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(bundle.directory, broken)
    change, message = DAMAGES[damage]
    manifest = json.loads((broken / "manifest.json").read_text())
    changed = change(manifest)
    text = changed if isinstance(changed, str) else json.dumps(changed)
    (broken / "manifest.json").write_text(text)
    with pytest.raises(InputError, match=message):
        open_bundle(broken)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a gopark bundle"):
        open_bundle(tmp_path)


def test_transient_503_retried_with_backoff(tmp_path: Path) -> None:
    with gofixtures.run("gateway", "1.27", ["-n", "0", "-flaky", "heap:2"]) as p:
        b = collect_bundle(p.base_url, tmp_path / "b", CollectOptions(interval=1, duration=0))
    assert b.status == "complete" and not b.errors
    first_heap = b.select("heap")[0]
    assert first_heap.phase == "start" and first_heap.ok
    assert first_heap.duration_s >= 0.5 + 1.0  # two retries, backing off 0.5 s then 1 s


def test_retries_exhausted_recorded_with_the_answer(tmp_path: Path) -> None:
    with gofixtures.run("gateway", "1.27", ["-n", "0", "-flaky", "heap:3"]) as p:
        b = collect_bundle(p.base_url, tmp_path / "b", CollectOptions(
            interval=1, duration=0, client=ClientOptions(retries=2, backoff=0.1)))
    (failed,) = b.errors
    assert failed.kind == "heap" and failed.form == "proto" and failed.phase == "start"
    assert failed.error == "HTTP 503: upstream busy, try again"
    assert len(b.select("heap")) == 3 and b.status == "complete"


def test_retry_after_seconds_waited_and_listed(tmp_path: Path) -> None:
    with gofixtures.run("gateway", "1.27", ["-n", "0", "-throttle", "heap:2:1"]) as p:
        b = collect_bundle(p.base_url, tmp_path / "b", CollectOptions(interval=1, duration=0))
    assert b.status == "complete" and not b.errors
    first_heap = b.select("heap")[0]
    assert first_heap.phase == "start" and first_heap.ok
    # The target asked for 1 s twice: that, not the 0.5 s / 1 s backoff, is what was waited.
    assert first_heap.retries == ["HTTP 429: slow down (Retry-After 1 s); retried after 1.0 s"] * 2
    assert first_heap.duration_s >= 2.0
    assert all(not f.retries for f in b.files if f is not first_heap)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    listed = next(e for e in manifest["files"] if e["name"] == first_heap.name)
    assert listed["retries"] == first_heap.retries


def test_retry_after_http_date_on_503(tmp_path: Path) -> None:
    with gofixtures.run("gateway", "1.27", ["-n", "0", "-throttle", "heap:1:date+3:503"]) as p:
        b = collect_bundle(p.base_url, tmp_path / "b", CollectOptions(interval=1, duration=0))
    first_heap = b.select("heap")[0]
    assert first_heap.ok and first_heap.phase == "start"
    (retry,) = first_heap.retries
    # An HTTP date has whole seconds: 3 s ahead of the server's clock is 2 to 3 s away.
    m = re.fullmatch(r"HTTP 503: slow down \(Retry-After ([\d.]+) s\); retried after ([\d.]+) s",
                     retry)
    assert m, retry
    assert 1.0 <= float(m.group(2)) <= 3.1
    assert first_heap.duration_s >= float(m.group(2)) - 0.1  # the message rounds to 0.1 s


def test_retry_after_beyond_what_gopark_waits_is_not_retried(tmp_path: Path) -> None:
    with gofixtures.run("gateway", "1.27", ["-n", "0", "-throttle", "heap:1:120"]) as p:
        b = collect_bundle(p.base_url, tmp_path / "b", CollectOptions(
            interval=1, duration=0, client=ClientOptions(timeout=10)))
    (failed,) = b.errors
    assert failed.kind == "heap" and failed.phase == "start" and failed.duration_s < 5
    assert failed.error == ("HTTP 429: slow down (Retry-After 120 s); not retried: later than "
                            "gopark waits (10 s)")
    assert b.status == "complete" and len(b.select("heap")) == 3  # the next ones were served


def test_retry_after_values() -> None:
    now = datetime(2026, 11, 27, 7, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Fri, 27 Nov 2026 07:00:30 GMT", now) == 30.0
    assert parse_retry_after("Fri, 27 Nov 2026 06:59:00 GMT", now) == 0.0  # already past
    for bad in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(bad, now) is None


def test_credentials_quoted_back_by_the_target_are_not_written(tmp_path: Path) -> None:
    token, password, query = "t0k3n-9c1e", "hunter22", "k3y-55ab"
    basic = "dXNlcjpodW50ZXIyMg=="  # base64 of user:hunter22, as basic auth sends it
    with gofixtures.run("gateway", "1.27", ["-n", "0", "-echo-auth", "heap"]) as p:
        url = f"http://user:{password}@{p.addr}/debug/pprof/?access={query}"
        bearer = ClientOptions(headers=(("Authorization", f"Bearer {token}"),))
        with_token = collect_bundle(url, tmp_path / "token", CollectOptions(
            interval=1, duration=0, client=bearer))
        with_password = collect_bundle(url, tmp_path / "basic",
                                       CollectOptions(interval=1, duration=0))
    # heap (protobuf) then heap?debug=1, at the start and at the end
    quoted = [(with_token, '"***"'), (with_password, '"Basic ***"')]
    for bundle, authorization in quoted:
        heap_errors = [f.error for f in bundle.errors if f.kind == "heap"]
        assert heap_errors == [f'HTTP 401: rejected Authorization {authorization} with query '
                               f'"{q}"' for q in ("***", "debug=1&***")] * 2, heap_errors
        manifest = (bundle.directory / "manifest.json").read_text()
        for leak in (token, password, query, basic):
            assert leak not in manifest, leak


def test_snapshots_fall_back_to_text_when_binary_refused(tmp_path: Path) -> None:
    with gofixtures.run("gateway", "1.27", ["-n", "0", "-text-only", "goroutine"]) as p:
        b = collect_bundle(p.base_url, tmp_path / "b", CollectOptions(interval=0.5, duration=1))
    assert [f.form for f in b.errors] == ["proto"]
    assert "HTTP 406" in (b.errors[0].error or "")
    text = b.select("goroutine", "debug1")
    # One interval snapshot (at 0.5 s), unless a loaded machine made the start run late.
    intervals = 1 - skipped_snapshots(b)
    assert [f.phase for f in text] == ["start"] + ["interval"] * intervals + ["end"], b.notes
    assert all(b.read(f).startswith(b"goroutine profile: total ") for f in text)
    assert any("snapshots use debug=1 text" in n for n in b.notes)
    assert len(b.select("goroutine", "debug2")) == 2



def test_login_page_instead_of_profile_is_refused(tmp_path: Path) -> None:
    with gofixtures.run("gateway", "1.27", ["-n", "0", "-login", "heap"]) as p:
        b = collect_bundle(p.base_url, tmp_path / "b", CollectOptions(interval=1, duration=0))
    assert [(f.kind, f.form) for f in b.errors] == [("heap", "proto"), ("heap", "debug1")] * 2
    assert all((f.error or "").startswith("not the expected content: starts with b'<html>")
               for f in b.errors)
    assert not b.select("heap") and b.status == "complete"
    assert not [p for p in b.directory.iterdir() if p.name.startswith(".")]
