"""A Go 1.11–1.21 trace cut before its clock frequency: times are clock ticks, and every
output says so instead of printing them as nanoseconds.

The old trace format writes its clock frequency (and stack table) only when tracing
stops, at the end of the file. A cut file is read up to the damage, but its times stay in
ticks (tens of ns each on amd64): `gopark trace` must print "N ticks" and `time_unit:
"ticks"`, and diagnose must judge no scheduler latency from it while keeping its counts.

The fixture is a real Go 1.21 program (tracebusy, leaking 100 goroutines a second) and a
trace and a debug=2 dump fetched from it. The cut is computed from the file (half its
length, inside the events: a 1 s trace of tracebusy is megabytes of events, its final
tables a few kB; halved again should a cut there still read the frequency); where the
reader stopped is read back from it, never assumed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import gofixtures
import numpy as np
import pytest
from gopark.analysis.crosscheck import sched_latency_findings
from gopark.analysis.tracefacts import trace_facts
from gopark.formats.trace import Trace, load_trace
from gopark.report.trace_text import duration
from tracefixtures import wait_parked

# A duration printed in a time unit ("14.74ms", "411.1µs", "1.0 s", "950ns").
TIME_UNIT = re.compile(r"\b\d[\d.,]*\s?(ns|µs|ms|s)\b")


@dataclass
class Capture:
    """One process's trace (whole, and cut at half its length) and its dump."""

    whole: Path
    cut: Path
    dump: Path


@pytest.fixture(scope="module")
def cap(tmp_path_factory: pytest.TempPathFactory) -> Capture:
    tmp = tmp_path_factory.mktemp("v1cut")
    out = Capture(tmp / "whole.trace", tmp / "cut.trace", tmp / "dump.txt")
    args = ["-n", "0", "-workers", "4", "-leaks", "100"]
    with gofixtures.run("tracebusy", "1.21", args, env={"GOMAXPROCS": "2"}) as p:
        # Leaks pile up before the trace too: the group is a suspect (>= 50) by a margin,
        # and some of it is blocked the whole window. More only adds margin.
        wait_parked(p, "main.leak.func1", "chan send", 100)
        out.whole.write_bytes(gofixtures.fetch(p, "trace?seconds=1", timeout=120))
        out.dump.write_bytes(gofixtures.fetch(p, "goroutine?debug=2", timeout=120))
    data = out.whole.read_bytes()
    out.cut.write_bytes(data[:_cut_before_the_frequency(data)])
    return out


def _cut_before_the_frequency(data: bytes) -> int:
    """Half the file's length; halved again while a cut there still reads the frequency
    (a trace whose final tables are half of it, which a busy second never gives: the
    tests below then check the cut kept enough events)."""
    cut = len(data) // 2
    while cut > 16 and not load_trace(data[:cut]).times_in_ticks:
        cut //= 2
    return cut


@pytest.fixture(scope="module")
def whole(cap: Capture) -> Trace:
    return load_trace(cap.whole)


@pytest.fixture(scope="module")
def cut(cap: Capture) -> Trace:
    return load_trace(cap.cut)


def gopark(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gopark", *args], capture_output=True,
                          text=True, timeout=600)


def test_the_cut_lost_the_frequency(cap: Capture, whole: Trace, cut: Trace) -> None:
    """The whole file knows its frequency; the cut one was read up to the damage (where
    the reader says, inside the cut) and knows only ticks."""
    assert whole.damage is None and not whole.times_in_ticks
    assert whole.generations[0].ns_per_tick > 0
    size = cap.cut.stat().st_size
    d = cut.damage
    assert d is not None and d.kind == "truncated"
    good = cut.generations[-1].end_offset
    assert 16 < good <= d.offset <= size
    assert cut.times_in_ticks and cut.generations[0].ns_per_tick == 0.0
    assert 1000 < len(cut.events) < len(whole.events)


def test_ticks_are_ticks_not_scaled(whole: Trace, cut: Trace) -> None:
    """The cut's events are a subset of the whole file's, so its span in ticks, turned into
    ns with the whole file's frequency, fits in the whole file's span."""
    ns_per_tick = whole.generations[0].ns_per_tick
    assert cut.duration_ns * ns_per_tick <= whole.duration_ns * 1.001 + 1_000
    assert cut.duration_ns > 0


def test_text_prints_ticks_never_a_time_unit(cap: Capture, cut: Trace, whole: Trace) -> None:
    proc = gopark("trace", str(cap.cut), "--limit", "0")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count("times in clock ticks") == 1
    assert f"  duration {cut.duration_ns:,} ticks," in out
    assert not TIME_UNIT.search(out), TIME_UNIT.search(out)
    assert "ticks" in proc.stderr  # the damage warning
    # The whole file prints real durations (the pattern above does find them).
    proc = gopark("trace", str(cap.whole), "--limit", "0")
    assert proc.returncode == 0, proc.stderr
    assert "clock ticks" not in proc.stdout and not re.search(r"\d ticks\b", proc.stdout)
    assert f"  duration {duration(whole.duration_ns)}," in proc.stdout
    assert TIME_UNIT.search(proc.stdout)


def test_json_time_unit(cap: Capture, cut: Trace, whole: Trace) -> None:
    """time_unit "ticks" and a duration equal to last − first event of the same read;
    the whole file says "ns", with the duration of its events in ns."""
    proc = gopark("trace", str(cap.cut), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["time_unit"] == "ticks"
    t = cut.events["time"]
    assert doc["duration_ns"] == int(t[-1] - t[0]) == doc["end_ns"] - doc["start_ns"]
    assert cut.damage is not None and doc["damage"]["offset"] == cut.damage.offset
    proc = gopark("trace", str(cap.whole), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    t = whole.events["time"]
    assert doc["time_unit"] == "ns"
    assert doc["duration_ns"] == int(t[-1] - t[0]) == whole.duration_ns
    assert doc["damage"] is None


def test_events_listing_notes_ticks(cap: Capture) -> None:
    proc = gopark("trace", str(cap.cut), "--events")
    assert proc.returncode == 0, proc.stderr
    assert "Time= values are clock ticks" in proc.stderr
    assert proc.stdout.startswith("M=")
    proc = gopark("trace", str(cap.whole), "--events")
    assert proc.returncode == 0 and "clock ticks" not in proc.stderr


def test_facts_keep_counts_but_judge_no_latency(cap: Capture) -> None:
    """The facts pass knows its times are ticks: it still counts runnable waits, but
    gives no latency in ms and no sched-latency finding."""
    facts = trace_facts(cap.cut)
    assert facts.times_in_ticks
    assert len(facts.latencies_ns) > 0
    assert int(np.sum(facts.goroutines.columns["runnable_waits"])) > 0
    assert facts.sched_latency_ms() is None
    assert sched_latency_findings(facts) == []
    timed = trace_facts(cap.whole)
    assert not timed.times_in_ticks and timed.sched_latency_ms() is not None


def test_diagnose_cut_trace_notes_ticks(cap: Capture) -> None:
    """A dump and the cut trace: no sched-latency judgement (a note says why), the leak's
    trace evidence keeps its counts and quotes the window in ticks."""
    proc = gopark("diagnose", str(cap.dump), str(cap.cut), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["summary"]["sched_latency_ms"] is None
    assert not [f for f in doc["findings"] if f["category"] == "sched-latency"]
    assert any("times are clock ticks" in n and "no scheduler latency" in n
               for n in doc["notes"]), doc["notes"]
    evidence = [e for f in doc["findings"] for e in f["evidence"]]
    woken = [e for e in evidence if "traced were woken in" in e]
    assert woken, evidence
    assert all(re.search(r"woken in [\d,]+ ticks", e) for e in woken), woken
    assert any(re.match(r"0 of \d+ traced were woken", e) for e in woken), woken
    # The whole trace: latency in ms, the same evidence in seconds, no ticks note.
    proc = gopark("diagnose", str(cap.dump), str(cap.whole), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["summary"]["sched_latency_ms"] is not None
    assert not any("clock ticks" in n for n in doc["notes"])
    evidence = [e for f in doc["findings"] for e in f["evidence"]]
    assert any(re.search(r"0 of \d+ traced were woken in [\d.]+ s\b", e) for e in evidence)
