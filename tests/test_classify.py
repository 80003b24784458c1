"""Classification on real stacks and real Go source: user vs stdlib frames, categories from
wait reasons (as each Go version prints them), from frames and from source lines."""

from __future__ import annotations

import gofixtures
import pytest
from gopark.analysis import classify
from gopark.analysis.source import SourceReader
from gopark.model import Frame
from leakcaptures import HEALTHY, LEAKY, VERSIONS, capture, source_line_number


@pytest.mark.parametrize("version", VERSIONS)
def test_stdlib_frames_are_the_goroot_ones(version: str) -> None:
    """Oracle: a frame is standard library exactly when its file is under GOROOT/src."""
    goroot_src = str(gofixtures.goroot(version) / "src") + "/"
    seen = 0
    for name in (*LEAKY, *HEALTHY):
        for g in capture(name, version).snapshot("debug2").goroutines:
            for f in g.frames:
                if f.file:
                    assert classify.is_stdlib(f.function) == f.file.startswith(goroot_src), f
                    seen += 1
    assert seen > 1000


@pytest.mark.parametrize("version", VERSIONS)
def test_every_wait_reason_has_a_category(version: str) -> None:
    """Every parked goroutine in the dumps gets a category from its wait reason and frames
    (no source needed), whatever this Go version calls the wait."""
    reasons: set[str] = set()
    for name in (*LEAKY, *HEALTHY):
        for g in capture(name, version).snapshot("debug2").goroutines:
            if classify.is_parked(g.state, ""):
                reasons.add(g.state)
                assert classify.categorize(g.state, g.frames) != "unknown", (g.state, g.frames)
    assert {"chan send", "chan receive", "select", "IO wait", "select (no cases)"} <= reasons


def test_semacquire_is_resolved_from_frames() -> None:
    """Go 1.21 says "semacquire" for a WaitGroup; later versions say "sync.WaitGroup.Wait"."""
    old = capture("waitgroupmissing", "1.21").snapshot("debug2").goroutines
    new = capture("waitgroupmissing", "1.24").snapshot("debug2").goroutines
    old_wait = [g for g in old if g.state == "semacquire"]
    new_wait = [g for g in new if g.state == "sync.WaitGroup.Wait"]
    assert old_wait and new_wait
    assert {classify.categorize(g.state, g.frames) for g in old_wait + new_wait} == {"waitgroup"}


@pytest.mark.parametrize("version", VERSIONS)
def test_debug1_stacks_start_at_the_user_frame(version: str) -> None:
    """The premise of source-line categorisation: debug=1 text leaves out the runtime frames
    of a channel wait (no wait reason either), the protobuf form keeps runtime.gopark."""
    def top(form: str) -> str:
        snap = capture("rangeunclosed", version).snapshot(form)
        return max(snap.goroutines, key=lambda g: g.count).frames[0].function

    assert top("debug1") == "main.consume"
    assert top("proto") == "runtime.gopark"


def line(name: str, marker: str) -> Frame:
    path = gofixtures.GOPROGRAMS / name / "main.go"
    return Frame("main.x", str(path), source_line_number(name, marker))


@pytest.mark.parametrize(("name", "marker", "category"), [
    ("sendaftertimeout", "result <- slowLookup(id)", "chan-send"),
    ("sendaftertimeout", "case v := <-result:", "chan-recv"),
    ("sendaftertimeout", "select {", "select"),
    ("rangeunclosed", "for v := range items", "chan-recv"),
    ("rangeunclosed", "items <- i + k", "chan-send"),
    ("healthypool", "for j := range jobs", "chan-recv"),
    ("healthypool", "time.Sleep(time.Millisecond)", "sleep"),
    ("waitgroupmissing", "wg.Wait()", None),
    ("tickerloop", "for range t.C", "chan-recv"),
])
def test_category_from_source_lines(name: str, marker: str, category: str | None) -> None:
    text = SourceReader().line(line(name, marker))
    assert text is not None
    assert classify.category_from_source(text) == category


def test_mutex_and_empty_select_lines() -> None:
    reader = SourceReader()
    lock = Frame("main.(*cache).get", str(gofixtures.GOPROGRAMS / "mutexpileup" / "main.go"),
                 source_line_number("mutexpileup", "c.mu.Lock()", after="func (c *cache) get"))
    assert classify.category_from_source(reader.line(lock) or "") == "mutex"
    harness = gofixtures.GOPROGRAMS / "harness" / "harness.go"
    lines = harness.read_text().splitlines()
    n = next(i for i, t in enumerate(lines, 1) if t.strip() == "select {}")
    assert classify.category_from_source(reader.line(Frame("h", str(harness), n)) or "") == \
        "nil-chan"


def test_ticker_waits() -> None:
    reader = SourceReader()
    assert classify.is_ticker_wait(reader.block(line("tickerloop", "for range t.C"), 30))
    assert not classify.is_ticker_wait(reader.block(line("healthypool", "for j := range jobs"), 30))
    # a real select with several channel cases (net/http's writeLoop) is not a ticker wait
    transport = gofixtures.goroot("1.24") / "src" / "net" / "http" / "transport.go"
    text = transport.read_text().splitlines()
    start = next(i for i, t in enumerate(text) if "func (pc *persistConn) writeLoop()" in t)
    sel = next(i for i in range(start, len(text)) if text[i].strip() == "select {") + 1
    assert not classify.is_ticker_wait(reader.block(Frame("w", str(transport), sel), 30))


def test_location_rules() -> None:
    """First user frame; for stdlib-only stacks the outermost non-runtime frame."""
    snap = capture("httpbodyunclosed", "1.24").snapshot("proto")
    for g in snap.goroutines:
        loc = classify.location(g.frames)
        i = classify.first_user_index(g.frames)
        if i is not None:
            assert loc == g.frames[i]
        elif g.frames and classify.READ_LOOP in {f.function for f in g.frames}:
            assert loc is not None and loc.function == classify.READ_LOOP
