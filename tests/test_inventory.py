"""Step 1 on real programs: groups, counts, categories, locations, benign marks, parked share.

Each issue-2 fixture program runs under Go 1.21, 1.24 and 1.27 with -n 200; its goroutine
dump (debug=2), debug=1 text and protobuf profile are grouped, and the groups are checked
against what the program does (lines are looked up in the program's source). The proto and
debug=1 groupings are checked against `go tool pprof -traces` on the same files.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter

import gofixtures
import pytest
from dumpwait import settle
from gopark.analysis import classify
from gopark.analysis.inventory import Group, Inventory, inventory, key_of, signature
from gopark.analysis.source import SourceReader
from gopark.formats.load import load_bytes
from gopark.model import Snapshot
from leakcaptures import HEALTHY, LEAKY, VERSIONS, N, capture, source_line_number

FORMS = ("debug2", "debug1", "proto")
# Go 1.25+ builds `go tool pprof` on its first use: minutes on a cold cache and a busy machine.
PPROF_TIMEOUT = 600

# program → (location function, marker on the location's line, category, creator)
EXPECTED = {
    "sendaftertimeout": ("main.fetch.func1", "result <- slowLookup(id)", "chan-send",
                         "main.fetch"),
    "rangeunclosed": ("main.consume", "for v := range items", "chan-recv", "main.process"),
    "mutexpileup": ("main.(*cache).get", "func (c *cache) get", "mutex", None),
    "waitgroupmissing": ("main.runBatch", "wg.Wait()", "waitgroup", None),
    "tickerloop": ("main.startSession.func1", "for range t.C", "ticker", "main.startSession"),
    "httpbodyunclosed": ("net/http.(*persistConn).readLoop", None, "http-body-not-closed",
                         "net/http.(*Transport).dialConn"),
}
# Wait reasons each Go version prints for the blocked group (debug=2).
STATES = {
    "chan-send": {"chan send"}, "chan-recv": {"chan receive"}, "ticker": {"chan receive"},
    "mutex": {"sync.Mutex.Lock"}, "waitgroup": {"semacquire", "sync.WaitGroup.Wait"},
    "http-body-not-closed": {"select"},
}


# Ticker goroutines wake every 50 ms: a handful may be between ticks at the snapshot.
SLACK = {"tickerloop": 10}


def leak_group(inv: Inventory, name: str) -> Group:
    """The group at the program's leak location."""
    function = EXPECTED[name][0]
    groups = [g for g in inv.groups if g.location and g.location.function == function]
    assert groups, [(g.count, g.location) for g in inv.groups]
    return max(groups, key=lambda g: g.count)


def expected_line(name: str, version: str) -> int:
    function, marker, _, _ = EXPECTED[name]
    if marker is None:
        return 0
    if name == "mutexpileup":  # the c.mu.Lock() of get, not refresh's
        return source_line_number(name, "c.mu.Lock()", after=marker)
    return source_line_number(name, marker)


CASES = [(n, v, f) for n in LEAKY for v in VERSIONS for f in FORMS]


@pytest.mark.parametrize(("name", "version", "form"), CASES)
def test_leak_group(name: str, version: str, form: str) -> None:
    snap = capture(name, version).snapshot(form)
    inv = inventory(snap, "user")
    group = leak_group(inv, name)
    function, _, category, _ = EXPECTED[name]
    assert N - SLACK.get(name, 0) <= group.count <= N
    assert group.category == category
    assert group.benign is None
    assert group.location is not None and group.location.function == function
    line = expected_line(name, version)
    if line:
        assert group.location.line == line
        assert group.source_line is not None
        assert group.source_line.startswith(
            (gofixtures.GOPROGRAMS / name / "main.go").read_text().splitlines()[line - 1]
            .strip()[:12])
    # largest non-benign group first
    assert inv.groups == sorted(inv.groups, key=lambda g: -g.count)
    assert inv.total == snap.total


@pytest.mark.parametrize(("name", "version"), [(n, v) for n in LEAKY for v in VERSIONS])
def test_debug2_details(name: str, version: str) -> None:
    snap = capture(name, version).snapshot("debug2")
    inv = inventory(snap, "user")
    group = leak_group(inv, name)
    _, _, category, creator = EXPECTED[name]
    assert set(group.states) <= STATES[category] | {"runnable"}
    assert len(group.goroutine_ids) == group.count
    assert group.wait_minutes == (0, 0)
    assert group.created_by is not None
    if creator:
        assert group.created_by.function == creator
        # one creator per request (or per dial), not one loop
        assert group.distinct_creators > N // 2
    else:
        # mutexpileup and waitgroupmissing: the harness starts every request from main
        assert group.created_by.function == "goparkfixtures/harness.Run"
        assert group.distinct_creators == 1
    assert len(group.stack) >= 1 and group.stack[0] == group.members[0].frames[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_user_key_matches_across_forms(version: str) -> None:
    """The user-similarity key of a group is the same in the dump and both profile forms."""
    for name in LEAKY:
        cap = capture(name, version)
        keys = {form: leak_group(inventory(cap.snapshot(form)), name).key for form in FORMS}
        assert len(set(keys.values())) == 1, (name, keys)


@pytest.mark.parametrize(("name", "version", "form"),
                         [(n, v, f) for n in HEALTHY for v in VERSIONS for f in FORMS])
def test_healthy_shapes_are_benign(name: str, version: str, form: str) -> None:
    inv = inventory(capture(name, version).snapshot(form), "user")
    by_function = {g.location.function: g for g in inv.groups if g.location}
    if name == "healthypool":
        pool = by_function["main.worker"]
        assert pool.count == 16
        assert pool.category == "chan-recv"
        if form == "debug2":
            assert pool.benign is not None and "worker pool" in pool.benign
            assert pool.distinct_creators == 1
            assert pool.created_by is not None and pool.created_by.function == "main.startPool"
    else:
        reads = [g for g in inv.groups if g.location
                 and g.location.function == classify.READ_LOOP]
        writes = [g for g in inv.groups if g.location
                  and g.location.function == classify.WRITE_LOOP]
        assert sum(g.count for g in reads) >= 32
        assert sum(g.count for g in reads) == sum(g.count for g in writes)
        for g in reads + writes:
            assert g.benign is not None and "keep-alive" in g.benign, g
        serves = [g for g in inv.groups if g.location
                  and g.location.function == "net/http.(*conn).serve" and g.category == "io-wait"]
        assert serves and all(g.benign for g in serves)
    # Every blocked group that is not the program's own shape is benign.
    for g in inv.groups:
        if g.category in classify.BLOCKING and g.count > 1:
            assert g.benign is not None or (name, g.location and g.location.function) == (
                "healthypool", "main.worker"), g


@pytest.mark.parametrize("version", VERSIONS)
def test_parked_share(version: str) -> None:
    """Everything but the pprof handler (and a transient runnable) is parked."""
    inv = inventory(capture("sendaftertimeout", version).snapshot("debug2"))
    running = sum(n for g in inv.groups for s, n in g.states.items()
                  if s in ("running", "runnable", "syscall"))
    assert inv.parked == inv.total - running
    assert inv.parked_by_category["chan-send"] == N
    assert inv.parked_fraction == pytest.approx(inv.parked / inv.total)


def test_similarities_nest() -> None:
    """exact ⊆ functions ⊆ user: coarser similarities never split a finer group."""
    snap = capture("httpbodyunclosed", "1.24").snapshot("debug2")
    counts = {s: len(inventory(snap, s).groups) for s in ("exact", "functions", "user")}
    assert counts["exact"] >= counts["functions"] >= counts["user"]
    for sim in ("exact", "functions", "user"):
        assert sum(g.count for g in inventory(snap, sim).groups) == snap.total


def test_category_from_debug2_hints_without_sources() -> None:
    """Go 1.27 trims runtime frames from debug=1 stacks: with no source file readable,
    the category comes from a debug=2 dump of the same program, joined by user key."""

    class NoSource(SourceReader):
        def lines_of(self, path: str) -> list[str] | None:
            return None

    cap = capture("rangeunclosed", "1.27")
    blind = inventory(cap.snapshot("debug1"), source=NoSource())
    assert leak_group(blind, "rangeunclosed").category == "unknown"
    hints = {g.key: g.category for g in inventory(cap.snapshot("debug2"), source=NoSource()).groups}
    joined = inventory(cap.snapshot("debug1"), source=NoSource(), category_hints=hints)
    assert leak_group(joined, "rangeunclosed").category == "chan-recv"


# ---- oracle: go tool pprof -traces on the same files -------------------------------------

def pprof_traces(version: str, *args: str) -> list[tuple[int, tuple[str, ...]]]:
    """(count, functions innermost first) per trace that `go tool pprof -traces` prints."""
    out = subprocess.run([str(gofixtures.go_binary(version)), "tool", "pprof", "-traces", *args],
                         capture_output=True, text=True, check=True, timeout=PPROF_TIMEOUT).stdout
    traces: list[tuple[int, tuple[str, ...]]] = []
    for block in out.split("-----------+" + "-" * 55)[1:]:
        lines = [ln for ln in block.splitlines() if ln.strip()]
        if not lines:
            continue
        m = re.match(r"\s*(\d+)\s*(.*)$", lines[0])
        assert m, lines[0]
        funcs = [m.group(2)] + lines[1:]
        funcs = [f.strip().removesuffix(" (inline)") for f in funcs]
        traces.append((int(m.group(1)),
                       tuple(f for f in funcs if f and f != "runtime.goexit")))
    return traces


@pytest.mark.parametrize(("name", "version"),
                         [(n, v) for n in (*LEAKY, *HEALTHY) for v in VERSIONS])
def test_proto_grouping_matches_pprof(name: str, version: str) -> None:
    cap = capture(name, version)
    inv = inventory(cap.snapshot("proto"), "functions")
    ours: Counter[tuple[str, ...]] = Counter()
    for g in inv.groups:
        ours[tuple(f.function for f in g.stack if f.function != "runtime.goexit")] += g.count
    theirs: Counter[tuple[str, ...]] = Counter()
    for count, funcs in pprof_traces(version, str(cap.files["proto"])):
        theirs[funcs] += count
    # -traces leaves out samples without locations (goroutines entirely in the runtime)
    ours.pop((), None)
    theirs.pop((), None)
    assert ours == theirs
    raw = subprocess.run([str(gofixtures.go_binary(version)), "tool", "pprof", "-raw",
                          str(cap.files["proto"])], capture_output=True, text=True, check=True,
                         timeout=PPROF_TIMEOUT).stdout
    samples = raw.split("Samples:")[1].split("Locations")[0]
    assert inv.total == sum(int(m) for m in re.findall(r"^\s*(\d+):", samples, re.M))


def pprof_raw(version: str, *args: str) -> list[tuple[int, list[tuple[str, str, int]]]]:
    """(count, [(function, file, line) innermost first]) per sample of `go tool pprof -raw`."""
    out = subprocess.run([str(gofixtures.go_binary(version)), "tool", "pprof", "-raw", *args],
                         capture_output=True, text=True, check=True, timeout=PPROF_TIMEOUT).stdout
    samples_text, locations_text = out.split("Samples:")[1].split("Locations")
    locations: dict[int, list[tuple[str, str, int]]] = {}
    current: list[tuple[str, str, int]] = []
    for line in locations_text.split("Mappings")[0].splitlines():
        # Go 1.21's pprof prints file:line, newer ones file:line:column
        m = re.match(r"\s*(\d+): 0x[0-9a-f]+ M=\d+ (\S+) (\S+?):(\d+)(?::\d+)? ", line)
        inl = re.match(r"\s+(\S+) (\S+?):(\d+)(?::\d+)? ", line)
        if m:
            current = [(m.group(2), m.group(3), int(m.group(4)))]
            locations[int(m.group(1))] = current
        elif inl and current:
            current.append((inl.group(1), inl.group(2), int(inl.group(3))))
    samples = []
    for line in samples_text.splitlines():
        m = re.match(r"\s*(\d+):((?:\s*\d+)*)\s*$", line)
        if m:
            frames = [f for loc in m.group(2).split() for f in locations[int(loc)]]
            samples.append((int(m.group(1)), frames))
    return samples


@pytest.mark.parametrize(("name", "version"), [(n, v) for n in LEAKY for v in VERSIONS])
def test_debug1_grouping_matches_pprof(name: str, version: str) -> None:
    """pprof reads debug=1 text and symbolizes its addresses with the program's binary (by
    symbol table: inlined functions get their caller's name but their own file:line). The
    goroutine counts per user-code site (innermost file:line outside GOROOT) agree with our
    grouping of the same file."""
    cap = capture(name, version)
    goroot = str(gofixtures.goroot(version))
    inv = inventory(cap.snapshot("debug1"), "user")
    ours: Counter[tuple[str, int] | None] = Counter()
    for g in inv.groups:
        i = classify.first_user_index(g.stack)
        ours[None if i is None else (g.stack[i].file, g.stack[i].line)] += g.count
    theirs: Counter[tuple[str, int] | None] = Counter()
    for count, frames in pprof_raw(version, str(cap.binary), str(cap.files["debug1"])):
        user = [(file, line) for _, file, line in frames if not file.startswith(goroot)]
        theirs[user[0] if user else None] += count
    assert ours == theirs
    assert inv.total == sum(theirs.values())


def test_key_is_stable() -> None:
    """Keys are a pure function of the signature (other processes and snapshots match)."""
    snap = capture("sendaftertimeout", "1.24").snapshot("debug2")
    g = leak_group(inventory(snap), "sendaftertimeout")
    assert g.key == key_of(signature(g.stack, "user"), "user")
    again = leak_group(inventory(capture("sendaftertimeout", "1.24").snapshot("proto")),
                       "sendaftertimeout")
    assert again.key == g.key


def test_labelled_request_code_is_not_taken_for_the_pprof_handler() -> None:
    # pprof.Do wraps the user's own code: its parked goroutines must not be called benign.
    with gofixtures.run("labeledwork", "1.27", ["-n", "40"]) as p:
        text = settle(p)  # all ten parked (the test counts them)
    snaps = [s for s in load_bytes(text, "labeledwork.d2") if isinstance(s, Snapshot)]
    groups = [g for g in inventory(snaps[0]).groups
              if g.location and g.location.function == "main.work"]
    assert groups and sum(g.count for g in groups) >= 10
    assert all(g.benign is None for g in groups), [g.benign for g in groups]
