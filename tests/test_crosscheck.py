"""Steps 2 and 3: trace facts per goroutine, and dump groups cross-checked with the trace.

Every input comes from a real fixture program: a goroutine dump and an execution trace
fetched from the same running process (so goroutine ids match). Go's own
`go tool trace -pprof=sched` is the oracle for the scheduler latency.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import gofixtures
import pytest
from gopark.analysis.crosscheck import (
    SCHED_LATENCY_MS,
    GroupCheck,
    crosscheck,
    is_timer_loop,
)
from gopark.analysis.diagnose import diagnose
from gopark.analysis.findings import Finding
from gopark.analysis.inventory import inventory
from gopark.analysis.source import SourceReader
from gopark.analysis.tracefacts import TraceFacts, trace_facts
from gopark.errors import InputError
from gopark.formats.load import load_path
from gopark.formats.pprof import parse_profile
from gopark.formats.trace import summarize_trace
from gopark.model import Frame, Snapshot
from tracefixtures import busy_trace, go_tool, wait_parked

TRACE_SECONDS = 2


@dataclass
class Capture:
    """A dump and a trace of one process: debug=2 before and after the trace, debug=1
    (no goroutine ids) after it."""

    trace: Path
    dump: Path
    debug1: Path
    parked_before: int = 0
    """How many goroutines a dump just before the trace showed parked (see PARKED)."""

    def snapshot(self) -> Snapshot:
        s = load_path(self.dump)[0]
        assert isinstance(s, Snapshot)
        return s

    def facts(self) -> TraceFacts:
        return trace_facts(self.trace)

    def checks(self) -> list[GroupCheck]:
        return crosscheck(inventory(self.snapshot()), self.facts())

    def findings(self) -> list[Finding]:
        return diagnose([self.snapshot(), self.trace]).findings


# Where each scenario's goroutines park before the trace starts: (function on the stack,
# dump state, or "" for any state). The capture waits for all N of them, and tests bound
# the trace's counts by how many the dump before the trace shows there.
PARKED = {
    "sendaftertimeout": ("main.fetch.func1", "chan send"),
    "tickerloop": ("main.startSession.func1", ""),
    "mutexpileup": ("main.(*cache).get", "sync.Mutex.Lock"),
}


def _capture(tmp: Path, name: str, args: list[str], env: dict[str, str] | None = None,
             version: str = "1.27", seconds: int = TRACE_SECONDS) -> Capture:
    out = Capture(tmp / f"{name}.trace", tmp / f"{name}.debug2.txt", tmp / f"{name}.debug1.txt")
    with gofixtures.run(name, version, args, env=env) as p:
        if name in PARKED:
            function, state = PARKED[name]
            out.parked_before = wait_parked(p, function, state, int(args[args.index("-n") + 1]))
        out.trace.write_bytes(gofixtures.fetch(p, f"trace?seconds={seconds}"))
        out.dump.write_bytes(gofixtures.fetch(p, "goroutine?debug=2"))
        out.debug1.write_bytes(gofixtures.fetch(p, "goroutine?debug=1"))
    return out


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Capture]:
    """One capture per scenario, taken once for the module (GOMAXPROCS=2 everywhere, so the
    CPU-bound scenarios behave the same on any machine)."""
    tmp = tmp_path_factory.mktemp("crosscheck")
    env = {"GOMAXPROCS": "2"}
    return {
        # several generations in 2 s, for the cut test
        "leak": _capture(tmp, "sendaftertimeout", ["-n", "200", "-rate", "20"],
                         env | {"GODEBUG": "traceadvanceperiod=500000000"}),
        "ticker": _capture(tmp, "tickerloop", ["-n", "200", "-rate", "20"], env),
        "healthy": _capture(tmp, "healthyservice", ["-n", "200", "-rate", "200"], env),
        "cpu": _capture(tmp, "cpuspin", ["-n", "0"], env),
        # several generations in 2 s, for the cut tests
        "lock": _capture(tmp, "lockcontention", ["-n", "16"],
                         env | {"GODEBUG": "traceadvanceperiod=300000000"}),
        "pileup": _capture(tmp, "mutexpileup", ["-n", "200", "-rate", "20"], env),
    }


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tracebusy's own traces (mutexes, channels, network, syscalls, GC and goroutine churn
    over several generations): from trace.Start, and from the flight recorder (which
    starts mid-stream, with goroutines in states the trace never saw begin)."""
    tmp = tmp_path_factory.mktemp("busy")
    return {"busy": busy_trace("1.27", tmp / "busy.trace", duration="1500ms", workers=8),
            "flight": busy_trace("1.27", tmp / "flight.trace", duration="1500ms", workers=8,
                                 flight=True)}


def _trace_of(scenario: str, captures: dict[str, Capture], busy: dict[str, Path]) -> Path:
    return busy[scenario] if scenario in busy else captures[scenario].trace


def _check_at(checks: list[GroupCheck], function: str) -> GroupCheck:
    found = [c for c in checks if c.group.location and c.group.location.function == function]
    assert len(found) == 1, [c.group.location for c in checks]
    return found[0]


def _by_category(findings: list[Finding], category: str) -> list[Finding]:
    return [f for f in findings if f.category == category]


def test_leaked_senders_were_never_woken(captures: dict[str, Capture]) -> None:
    """sendaftertimeout: the senders the dump shows blocked were never woken in the window;
    the 200 leaked up front were blocked all of it, the ones started during it joined."""
    cap = captures["leak"]
    c = _check_at(cap.checks(), "main.fetch.func1")
    assert c.joined_by == "id"
    # one started just before the trace ended may still be asleep in slowLookup there
    assert c.traced >= 200 and c.at_site >= c.traced - 5
    assert c.woken == 0
    assert c.never_woken == c.at_site
    # every sender the dump before the trace showed blocked stayed blocked throughout
    assert cap.parked_before >= 200 and c.whole_window >= cap.parked_before
    assert c.new_never_woken >= 20  # -rate 20 for 2 s
    assert not is_timer_loop(c)


@pytest.mark.parametrize("version", ["1.22", "1.23", "1.25", "1.26"])
def test_leaked_senders_never_woken_older_go(version: str, tmp_path: Path) -> None:
    """The same join on the trace formats of older Go releases (Go 1.22 writes no stack
    for goroutines blocked since before the trace: the id join places them by the dump)."""
    cap = _capture(tmp_path, "sendaftertimeout", ["-n", "100", "-rate", "20"],
                   version=version, seconds=1)
    c = _check_at(cap.checks(), "main.fetch.func1")
    assert c.joined_by == "id"
    assert c.at_site >= 100 and c.woken == 0 and c.never_woken == c.at_site
    assert c.whole_window >= cap.parked_before >= 100 and c.new_never_woken >= 5


def test_leak_finding_confirmed_by_the_trace(captures: dict[str, Capture]) -> None:
    """One dump alone makes a suspect; the trace confirms it: older goroutines blocked the
    whole window, newer ones joined and never woke."""
    cap = captures["leak"]
    alone = _by_category(diagnose([cap.snapshot()]).findings, "chan-send")
    assert [f.verdict for f in alone] == ["suspected"]
    [f] = _by_category(cap.findings(), "chan-send")
    assert f.verdict == "confirmed"
    assert f.location is not None and f.location.function == "main.fetch.func1"
    woken = [e for e in f.evidence if "traced were woken" in e]
    assert woken and woken[0].startswith("0 of "), f.evidence


def test_join_by_stack_without_ids(captures: dict[str, Capture]) -> None:
    """debug=1 text has no goroutine ids: the groups are found in the trace by stack, and
    the same goroutines are found as by id."""
    cap = captures["leak"]
    debug1 = load_path(cap.debug1)[0]
    assert isinstance(debug1, Snapshot) and all(g.id is None for g in debug1.goroutines)
    facts = cap.facts()
    by_stack = _check_at(crosscheck(inventory(debug1), facts), "main.fetch.func1")
    by_id = _check_at(crosscheck(inventory(cap.snapshot()), facts), "main.fetch.func1")
    assert by_stack.joined_by == "stack"
    assert (by_stack.at_site, by_stack.woken, by_stack.never_woken, by_stack.whole_window) == \
        (by_id.at_site, by_id.woken, by_id.never_woken, by_id.whole_window)


def test_trace_of_another_program_joins_by_stack(captures: dict[str, Capture]) -> None:
    """A trace of another program shares goroutine ids 1, 2, 3… with the dump but not the
    goroutines: the join notices (they block elsewhere) and goes by stack, and says so
    (joined by id, ~100 of the lock waiters would count as traced)."""
    dump, other = captures["pileup"].snapshot(), captures["ticker"].trace
    checks = crosscheck(inventory(dump), trace_facts(other))
    assert all(c.joined_by == "stack" for c in checks)
    assert not [c for c in checks if c.group.location
                and c.group.location.function == "main.(*cache).get"]
    d = diagnose([dump, other])
    assert any("joined the dump and the trace by stack" in n for n in d.notes), d.notes
    [f] = _by_category(d.findings, "mutex")
    assert not any("traced were woken" in e for e in f.evidence)


def test_ticker_loop_keeps_waking(captures: dict[str, Capture]) -> None:
    """tickerloop: every session goroutine is woken by its 50 ms ticker about 40 times in
    2 s, by the runtime's timers, not by another goroutine."""
    cap = captures["ticker"]
    c = _check_at(cap.checks(), "main.startSession.func1")
    assert c.at_site >= 200
    assert c.woken >= 0.9 * c.at_site
    # at most one wake per tick of the window, which a loaded machine stops late (2.15 s
    # seen), plus one fired just before the trace and taken in it
    ticks = cap.facts().duration_ns / 50e6
    assert 30 <= c.wakes_per_goroutine <= ticks + 2
    assert c.period_ns is not None and 45e6 <= c.period_ns <= 60e6
    assert c.timer_share >= 0.9
    assert is_timer_loop(c)
    # the sessions the dump before the trace showed never end; -rate 20 adds more for 2 s
    assert cap.parked_before >= 200 and c.old_alive >= cap.parked_before
    assert c.new_alive >= 20
    [f] = [f for f in _by_category(cap.findings(), "ticker")
           if f.verdict != "benign"]
    assert f.verdict == "confirmed"
    assert any("by a timer" in e for e in f.evidence), f.evidence


def test_ticker_category_comes_from_the_trace_without_source(
        captures: dict[str, Capture]) -> None:
    """Without the program's source, a dump cannot tell `for range t.C` from any channel
    receive: the trace's timer wakes make it a ticker finding all the same."""

    class NoSource(SourceReader):
        def lines_of(self, path: str) -> list[str] | None:
            return None

    cap = captures["ticker"]
    blind = diagnose([cap.snapshot()], source=NoSource()).findings
    assert [f.category for f in blind if f.verdict == "suspected"] == ["chan-recv"]
    d = diagnose([cap.snapshot(), cap.trace], source=NoSource())
    [f] = [f for f in d.findings if f.verdict != "benign"]
    assert f.category == "ticker" and f.location is not None \
        and f.location.function == "main.startSession.func1"


def test_wake_counts_agree_with_the_event_stream(captures: dict[str, Capture]) -> None:
    """Per-goroutine wakes equal the Waiting → Runnable transitions counted directly in the
    whole ordered event stream (gopark's stream equals go tool trace -d=parsed)."""
    from gopark.formats.trace import (
        GO_RUNNABLE,
        GO_WAITING,
        KIND_STATE_TRANSITION,
        SCOPE_GOROUTINE,
        load_trace,
    )

    path = captures["ticker"].trace
    e = load_trace(path).events
    woke = (e["kind"] == KIND_STATE_TRANSITION) & (e["scope"] == SCOPE_GOROUTINE) & \
        (e["from_state"] == GO_WAITING) & (e["to_state"] == GO_RUNNABLE)
    want = Counter(e["resource"][woke].tolist())
    got = {g.id: g.wakes for g in trace_facts(path).goroutines.values() if g.wakes}
    assert got == dict(want)


def _stack_key(frames: Iterable[Frame]) -> tuple[tuple[str, int], ...]:
    """A stack as pprof keeps it: frames without a PC (no function) are dropped."""
    return tuple((f.function, f.line) for f in frames if f.function)


def _go_sched(trace: Path, tmp: Path, kind: str = "sched") \
        -> dict[tuple[tuple[str, int], ...], tuple[int, int]]:
    """go tool trace -pprof=KIND: (count, ns) by stack (runnable time for sched)."""
    out = tmp / f"{trace.name}.{kind}.pb"
    go_tool("1.27", "trace", f"-pprof={kind}", str(trace), stdout=out)
    profile = parse_profile(out.read_bytes(), str(out))
    got: dict[tuple[tuple[str, int], ...], tuple[int, int]] = {}
    for s in profile.samples:
        key = _stack_key(s.frames)
        n, ns = got.get(key, (0, 0))
        got[key] = (n + s.values[0], ns + s.values[1])
    return got


@pytest.mark.parametrize("scenario", ["leak", "ticker", "cpu", "busy", "flight"])
def test_sched_latency_agrees_with_go_tool_trace(captures: dict[str, Capture],
                                                  busy: dict[str, Path],
                                                  scenario: str, tmp_path: Path) -> None:
    """Runnable intervals by stack equal go tool trace -pprof=sched's on the same file."""
    trace = _trace_of(scenario, captures, busy)
    facts = trace_facts(trace)
    if scenario in busy:
        assert len(facts.goroutines) > 1000
    want = _go_sched(trace, tmp_path)
    got: dict[tuple[tuple[str, int], ...], tuple[int, int]] = {}
    for sid, (n, ns) in facts.runnable_by_stack.items():
        key = _stack_key(facts.frames(sid))
        old = got.get(key, (0, 0))
        got[key] = (old[0] + n, old[1] + ns)
    assert got == want
    assert len(facts.latencies_ns) == sum(n for n, _ in want.values())
    assert int(facts.latencies_ns.sum()) == sum(ns for _, ns in want.values())


# Which wait reasons go tool trace puts in each blocking profile.
_PROFILE_REASONS = {
    "sync": lambda r: "chan" in r or "sync" in r or "select" in r,
    "net": lambda r: r == "network",
}


@pytest.mark.parametrize(("scenario", "kind"), [("busy", "sync"), ("busy", "net"),
                                                ("flight", "sync"), ("lock", "sync"),
                                                ("leak", "sync")])
def test_wait_sites_agree_with_go_tool_trace(captures: dict[str, Capture],
                                              busy: dict[str, Path],
                                              scenario: str, kind: str, tmp_path: Path) -> None:
    """Ended waits by stack (what lock-contention reads) equal go tool trace -pprof=sync and
    -pprof=net on the same file."""
    trace = _trace_of(scenario, captures, busy)
    facts = trace_facts(trace)
    got: dict[tuple[tuple[str, int], ...], tuple[int, int]] = {}
    for (sid, reason), site in facts.wait_sites.items():
        if site.waits and _PROFILE_REASONS[kind](reason):
            key = _stack_key(facts.frames(sid))
            old = got.get(key, (0, 0))
            got[key] = (old[0] + site.waits, old[1] + site.wait_ns)
    want = _go_sched(trace, tmp_path, kind)
    assert want, "the oracle saw no waits: the scenario does not exercise this profile"
    assert got == want


def test_healthy_service_has_low_latency_and_no_finding(captures: dict[str, Capture]) -> None:
    """healthyservice under 200 requests/s: goroutines run quickly once runnable, the cache
    lock is not hot, nothing is a leak."""
    cap = captures["healthy"]
    d = diagnose([cap.snapshot(), cap.trace])
    lat = d.summary.sched_latency_ms
    assert lat is not None and lat["mean"] < 1.0 and lat["p99"] < SCHED_LATENCY_MS
    assert not [f for f in d.findings if f.category in ("sched-latency", "lock-contention")]
    assert not [f for f in d.findings if f.verdict in ("proven", "confirmed", "suspected")]


def test_cpu_saturation_gives_sched_latency(captures: dict[str, Capture]) -> None:
    """cpuspin: 4 spinning goroutines per P wait tens of ms for their turn; the finding
    points at the spinning function (from the dump: the trace stacks end in the runtime's
    preemption handler)."""
    cap = captures["cpu"]
    d = diagnose([cap.snapshot(), cap.trace])
    lat = d.summary.sched_latency_ms
    assert lat is not None and lat["mean"] > SCHED_LATENCY_MS
    [f] = _by_category(d.findings, "sched-latency")
    assert f.location is not None and f.location.function == "main.spin"
    assert f.goroutines >= 8
    assert "Ps" in f.evidence[0]


def test_hot_lock_gives_lock_contention(captures: dict[str, Capture]) -> None:
    """lockcontention: 16 workers queue on one mutex held across slow work."""
    d = diagnose([captures["lock"].snapshot(), captures["lock"].trace])
    [f] = _by_category(d.findings, "lock-contention")
    assert f.location is not None and f.location.function == "main.(*stats).record"
    assert f.goroutines == 16
    assert any(fr.function == "sync.(*Mutex).Lock" for fr in f.stack)
    assert not _by_category(d.findings, "sched-latency")


def test_stuck_lock_holder_is_a_leak_not_contention(captures: dict[str, Capture]) -> None:
    """mutexpileup: requests queue behind a lock whose holder never returns. No wait for
    the lock ever ends, so it is no hot lock: a mutex leak the trace confirms."""
    cap = captures["pileup"]
    c = _check_at(cap.checks(), "main.(*cache).get")
    assert c.woken == 0 and c.never_woken >= 200
    assert cap.parked_before >= 200 and c.whole_window >= cap.parked_before
    d = diagnose([cap.snapshot(), cap.trace])
    assert not _by_category(d.findings, "lock-contention")
    [f] = _by_category(d.findings, "mutex")
    assert f.verdict == "confirmed"
    assert any(e.startswith("0 of ") and "traced were woken" in e for e in f.evidence)


def test_damaged_trace_is_a_note(captures: dict[str, Capture], tmp_path: Path) -> None:
    """A trace cut short still gives what it holds, with a note naming the byte offset; a
    trace with nothing readable is skipped with a one-line note, the dump still diagnosed."""
    data = captures["leak"].trace.read_bytes()
    gens = summarize_trace(data).generations
    assert len(gens) >= 2, "GODEBUG should have made a generation every 0.5 s"
    cut = tmp_path / "cut.trace"
    # in the middle of the last generation: the ones before it are whole
    cut.write_bytes(data[: (gens[-1].start_offset + gens[-1].end_offset) // 2])
    d = diagnose([captures["leak"].snapshot(), cut])
    assert any(str(cut) in n and "byte" in n for n in d.notes), d.notes
    assert d.summary.sched_latency_ms is not None
    stub = tmp_path / "stub.trace"
    stub.write_bytes(data[:40])
    d = diagnose([captures["leak"].snapshot(), stub])
    assert any(n.startswith(f"skipped {stub}") and "byte" in n for n in d.notes), d.notes
    assert _by_category(d.findings, "chan-send")


def test_damaged_traces_give_facts_or_one_error(captures: dict[str, Capture]) -> None:
    """Real traces cut anywhere or with bytes flipped: trace facts up to the damage, or an
    InputError naming the byte; nothing else escapes."""
    import random

    data = captures["lock"].trace.read_bytes()
    ends = [g.end_offset for g in summarize_trace(data).generations]
    assert len(ends) >= 2, "GODEBUG should have made a generation every 0.3 s"
    rng = random.Random(7)
    # Random cuts, plus some that land for sure: in the header (nothing readable, an
    # error) and after the first generation (facts of what came before).
    later = range(ends[0] + 1, len(data))
    cuts = set(rng.sample(range(len(data)), 15)) | {40} | \
        {later[k * len(later) // 5] for k in range(5)}
    damaged = [data[:n] for n in sorted(cuts)]
    for _ in range(15):
        b = bytearray(data)
        for i in rng.sample(range(16, len(b)), 8):
            b[i] ^= 1 << rng.randrange(8)
        damaged.append(bytes(b))
    outcomes: Counter[str] = Counter()
    for d in damaged:
        try:
            facts = trace_facts(d, "damaged.trace")
        except InputError as e:
            assert "damaged.trace" in str(e) and "byte" in str(e)
            outcomes["error"] += 1
            continue
        outcomes["facts"] += 1
        if len(d) < len(data) and facts.damage is None:
            assert len(d) in ends  # a cut between generations; else never passes for whole
        facts.sched_latency_ms()
        crosscheck(inventory(captures["lock"].snapshot()), facts)
    assert outcomes["facts"] >= 5 and outcomes["error"] >= 1, outcomes


def test_cli_text_shows_latency_and_trace_evidence(captures: dict[str, Capture]) -> None:
    """gopark diagnose DUMP TRACE on the terminal: the scheduler latency in the header, the
    trace's evidence under the finding."""
    cap = captures["leak"]
    proc = subprocess.run([sys.executable, "-m", "gopark", "diagnose", str(cap.dump),
                           str(cap.trace)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "sched latency: mean " in proc.stdout
    # the window is the trace's own span (2 s asked; a loaded machine stops it late)
    window = cap.facts().duration_ns / 1e9
    assert 1.9 <= window <= 10 and f"traced were woken in {window:.1f} s" in proc.stdout


def test_cli_collects_a_trace_and_cross_checks(tmp_path: Path) -> None:
    """gopark diagnose URL --trace: the (temporary) bundle's trace fills
    summary.sched_latency_ms and adds the trace's evidence to the leak finding."""
    with gofixtures.run("sendaftertimeout", "1.27", ["-n", "200", "-rate", "20"]) as p:
        proc = subprocess.run(
            [sys.executable, "-m", "gopark", "diagnose", p.base_url, "--duration", "3s",
             "--interval", "1s", "--trace", "1s", "--format", "json"],
            capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    lat = doc["summary"]["sched_latency_ms"]
    assert set(lat) == {"mean", "p50", "p99"} and lat["mean"] < SCHED_LATENCY_MS
    [f] = [f for f in doc["findings"] if f["category"] == "chan-send"]
    assert f["verdict"] == "proven"  # Go 1.27's goroutineleak profile; the trace adds to it
    assert any("traced were woken" in e for e in f["evidence"]), f["evidence"]
