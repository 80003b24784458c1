"""`gopark trace FILE`: overview and stack groups on the terminal and as JSON, the
ordered event dump, and what happens with damaged or foreign files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from gopark.formats.trace import summarize_trace
from tracefixtures import busy_trace, go_parsed, record_testprog


def gopark(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gopark", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 3 goroutines leak before tracing starts, more (50/s) during it.
    return busy_trace("1.27", tmp_path_factory.mktemp("cli") / "busy.trace", duration="200ms",
                      leaks=50)


def test_text_overview_and_groups(busy: Path) -> None:
    r = gopark("trace", str(busy))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "format go 1.26 (written by Go 1.26+)" in out
    assert "loss: none" in out
    assert "goroutines by stack group" in out
    # The leaks: blocked on a send at the end, where they block, how many.
    leak = out[out.index("main.leak.func1  — at end: blocked (chan send)"):].splitlines()
    assert leak[1].startswith("         created at main.leak ")
    assert leak[2].startswith("         blocked at main.leak.func1 ")
    assert "still blocked at the end" in leak[3]
    assert r.stderr == ""


def test_json_matches_the_summary(busy: Path) -> None:
    r = gopark("trace", str(busy), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    s = summarize_trace(busy)
    assert doc["schema"] == "gopark.trace/v1"
    assert doc["trace_format"] == "go 1.26"
    assert doc["events"] == s.counts["events"]
    assert doc["goroutines"]["total"] == len(s.goroutines)
    assert sum(g["goroutines"] for g in doc["groups"]) == len(s.goroutines)
    assert sum(g["running_ns"] for g in doc["groups"]) == int(s.goroutines["running_ns"].sum())
    leaks = {g["wait_reason"]: g for g in doc["groups"]
             if (g["entry"] or {}).get("function") == "main.leak.func1"
             and g["state_at_end"] == "Waiting"}
    # Those that blocked during the trace say why; any that blocked before it cannot.
    assert set(leaks) <= {"chan send", None}
    assert leaks["chan send"]["created_at"]["function"] == "main.leak"
    # 3 leaked before tracing, about 10 (50/s for 200 ms) during it.
    assert sum(g["still_blocked"] for g in leaks.values()) >= 6
    for g in leaks.values():
        assert g["blocked_at"]["function"] == "main.leak.func1"
        # each still-blocked goroutine's open wait counts, up to the trace's length
        assert 0 < g["pending_blocked_ns"] <= g["still_blocked"] * doc["duration_ns"]
        assert g["longest_wait_ns"] <= g["pending_blocked_ns"]
    assert doc["damage"] is None


def test_events_dump_equals_go_tool_trace(tmp_path: Path) -> None:
    trace = record_testprog("1.27", "annotations", tmp_path / "a.trace")
    r = gopark("trace", str(trace), "--events")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == go_parsed(trace)


@pytest.fixture(scope="module")
def long_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trace of several generations: the runtime starts one every 0.5 s here (every 1 s
    by default, which a loaded machine stretches: 2.5 s could give only two)."""
    return busy_trace("1.27", tmp_path_factory.mktemp("cli") / "long.trace", duration="2500ms",
                      workers=1, cpu=False, leaks=0, godebug="traceadvanceperiod=500000000")


def test_damaged_file_is_read_up_to_the_damage(long_trace: Path, tmp_path: Path) -> None:
    whole = summarize_trace(long_trace)
    assert len(whole.generations) >= 3
    data = long_trace.read_bytes()
    cut = tmp_path / "cut.trace"
    cut.write_bytes(data[: len(data) * 6 // 10])
    r = gopark("trace", str(cut), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["damage"]["kind"] == "truncated"
    assert doc["damage"]["offset"] > len(data) // 2
    # Whole generations before the cut are kept; the lost fraction counts from the
    # end of the last good one.
    kept = whole.generations[doc["generations"] - 1].end_offset
    assert 1 <= doc["generations"] < len(whole.generations)
    assert doc["damage"]["fraction_lost"] == pytest.approx((len(data) * 6 // 10 - kept)
                                                           / (len(data) * 6 // 10), abs=1e-6)
    warning = r.stderr.strip()
    assert warning.startswith(f"gopark: warning: {cut}: byte ")
    assert "of the file lost" in warning and "\n" not in warning


@pytest.mark.parametrize(("content", "expect"), [
    (b"", "not a Go execution trace"),
    (b"goroutine 1 [running]:\nmain.main()\n", "not a Go execution trace"),
    (b"go 1.19 trace\x00\x00\x00", "no events: the v1 trace ends before its first event"),
    (b"go 1.20 trace\x00\x00\x00", "unsupported trace version go 1.20"),
    (b"go 1.99 trace\x00\x00\x00", "unsupported trace version go 1.99"),
    (b"go 1.26 trace\x00\x00\x00\x01\x01\x02\x03\x40abc", "file ends inside a batch"),
    (b"go 1.26 trace\x00\x00\x00", "no events: the trace ends after its header"),
])
def test_unreadable_file_is_one_line_and_exit_2(tmp_path: Path, content: bytes,
                                                expect: str) -> None:
    f = tmp_path / "bad.trace"
    f.write_bytes(content)
    r = gopark("trace", str(f))
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(f"gopark: error: {f}: ")
    assert expect in line


def test_missing_file(tmp_path: Path) -> None:
    r = gopark("trace", str(tmp_path / "nope.trace"))
    assert r.returncode == 2
    assert "No such file" in r.stderr and "Traceback" not in r.stderr
