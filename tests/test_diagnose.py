"""Diagnose on real programs: suspects with evidence and fixes, proven leaks from Go 1.27's
goroutineleak profile, lock holders, healthy programs without suspects, merging of findings
from later analyses, and the JSON contract."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import gofixtures
import pytest
from dumpwait import settle
from gopark.analysis import diagnose as diag
from gopark.analysis.findings import Finding
from gopark.analysis.inventory import Group, inventory
from gopark.analysis.suspects import DEFAULT_THRESHOLD, is_suspect, weight
from gopark.formats.load import load_bytes, load_path
from gopark.report.json import diagnosis_json
from leakcaptures import HEALTHY, LEAKY, VERSIONS, N, capture, source_line_number

# program → (category, location function, marker of the location line or None)
EXPECTED = {
    "sendaftertimeout": ("chan-send", "main.fetch.func1", "result <- slowLookup(id)"),
    "rangeunclosed": ("chan-recv", "main.consume", "for v := range items"),
    "mutexpileup": ("mutex", "main.(*cache).get", None),
    "waitgroupmissing": ("waitgroup", "main.runBatch", "wg.Wait()"),
    "httpbodyunclosed": ("http-body-not-closed", "net/http.(*persistConn).readLoop", None),
    "tickerloop": ("ticker", "main.startSession.func1", "for range t.C"),
}
FORMS = ("debug2", "debug1", "proto")


def serious(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.verdict != "benign"]


@pytest.mark.parametrize(("name", "version", "form"),
                         [(n, v, f) for n in LEAKY for v in VERSIONS for f in FORMS])
def test_one_suspect_at_the_leak(name: str, version: str, form: str) -> None:
    d = diag.diagnose([capture(name, version).snapshot(form)])
    found = serious(d.findings)
    assert len(found) == 1, [(f.verdict, f.title) for f in found]
    f = found[0]
    category, function, marker = EXPECTED[name]
    assert (f.verdict, f.category) == ("suspected", category)
    assert f.location is not None and f.location.function == function
    if marker:
        assert f.location.line == source_line_number(name, marker)
        assert f.source_line and f.source_line.startswith(marker.split("(")[0][:10])
    assert f.goroutines >= N - 10
    assert f.fix
    assert f.evidence[0].startswith(f"{f.goroutines:,} goroutines")
    assert f.id == "F1"
    if form == "debug2":
        assert len(f.goroutine_ids) == f.goroutines
        assert any("created by" in e for e in f.evidence)
    else:
        assert any("no goroutine ids" in e for e in f.evidence)


@pytest.mark.parametrize("version", VERSIONS)
def test_mutex_names_the_holder(version: str) -> None:
    d = diag.diagnose([capture("mutexpileup", version).snapshot("debug2")])
    f = serious(d.findings)[0]
    holder = [e for e in f.evidence if "probably held by" in e]
    assert holder, f.evidence
    assert "main.(*cache).refresh" in holder[0] and "IO wait" in holder[0]
    assert any("waits on the network while holding the lock" in e for e in f.evidence)


@pytest.mark.parametrize("version", VERSIONS)
def test_http_body_evidence_names_the_user_call(version: str) -> None:
    for form in FORMS:
        d = diag.diagnose([capture("httpbodyunclosed", version).snapshot(form)])
        f = serious(d.findings)[0]
        assert any("main.checkHealth" in e and "http.Get" in e for e in f.evidence), f.evidence
        assert any(f"{f.goroutines:,} writeLoop" in e for e in f.evidence), f.evidence


@pytest.mark.parametrize("version", VERSIONS)
def test_no_made_up_channel_peers(version: str) -> None:
    """consume's channel argument is printed as a possibly-stale register value (``0x0?``)
    or elided: no goroutine may be named as touching it from such values."""
    d = diag.diagnose([capture("rangeunclosed", version).snapshot("debug2")])
    f = serious(d.findings)[0]
    assert not any("touching the same channel" in e for e in f.evidence), f.evidence


@pytest.mark.parametrize(("name", "version", "form"),
                         [(n, v, f) for n in HEALTHY for v in VERSIONS for f in FORMS])
def test_healthy_programs_have_no_suspect(name: str, version: str, form: str) -> None:
    d = diag.diagnose([capture(name, version).snapshot(form)])
    assert serious(d.findings) == []
    assert any(f.verdict == "benign" for f in d.findings)


# Go's goroutineleak profile proves the leaks its GC can see; it misses a lock held across a
# hung call, unclosed bodies and tickers (still armed timers) — those stay suspected.
PROVEN = {"sendaftertimeout", "rangeunclosed", "waitgroupmissing"}


@pytest.mark.parametrize("name", LEAKY)
@pytest.mark.parametrize("leak_form", ["leak-debug2", "leak-debug1", "leak-proto"])
def test_goroutineleak_profile_proves(name: str, leak_form: str) -> None:
    cap = capture(name, "1.27")
    d = diag.diagnose([cap.snapshot("debug2"), cap.snapshot(leak_form)])
    category, function, _ = EXPECTED[name]
    [f] = [f for f in serious(d.findings) if f.location and f.location.function == function]
    assert f.category == category
    if name in PROVEN:
        assert f.verdict == "proven"
        assert any("goroutineleak profile marks" in e for e in f.evidence)
    else:
        assert f.verdict == "suspected"


@pytest.mark.parametrize("leak_form", ["leak-debug2", "leak-debug1", "leak-proto"])
def test_leak_profile_alone_is_enough(leak_form: str) -> None:
    d = diag.diagnose([capture("sendaftertimeout", "1.27").snapshot(leak_form)])
    # (findings without a source location come from later analyses' handling of the
    # profile's stack-less sample, not from step 1)
    [f] = [f for f in serious(d.findings) if f.location is not None and f.location.file]
    assert (f.verdict, f.category, f.goroutines) == ("proven", "chan-send", N)


def test_threshold_is_an_option() -> None:
    snap = capture("waitgroupmissing", "1.24").snapshot("debug2")
    assert serious(diag.diagnose([snap]).findings)
    # 200 goroutines from one creator, fresh: weight 200
    assert not serious(diag.diagnose([snap], threshold=N + 1).findings)
    assert serious(diag.diagnose([snap], threshold=N).findings)
    assert DEFAULT_THRESHOLD < N


def test_contributors_merge_by_group() -> None:
    """A later analysis (e.g. trend) that confirms step 1's suspect replaces its verdict
    and adds its evidence; a finding about something else is kept beside it."""
    snap = capture("sendaftertimeout", "1.24").snapshot("debug2")
    first = serious(diag.diagnose([snap]).findings)[0]

    def trend(ctx: diag.Context) -> list[Finding]:
        assert ctx.inventory is not None and ctx.primary is snap
        return [Finding(verdict="confirmed", category="chan-send", title="grows",
                        goroutines=first.goroutines, per_min=12.0, group_key=first.group_key,
                        evidence=["grew in 7 snapshots"]),
                Finding(verdict="suspected", category="heap-growth", title="map grows",
                        bytes=1 << 20)]

    d = diag.diagnose([snap], contributors=[trend])
    found = serious(d.findings)
    assert [f.verdict for f in found] == ["confirmed", "suspected"]
    assert found[0].per_min == 12.0 or found[0].title == "grows"
    assert "grew in 7 snapshots" in found[0].evidence
    assert any(e.startswith(f"{N:,} goroutines in chan send") for e in found[0].evidence)


def test_summary_and_json_contract() -> None:
    cap = capture("sendaftertimeout", "1.27")
    d = diag.diagnose([cap.snapshot("proto"), cap.snapshot("debug2")])
    doc = diagnosis_json(d)
    assert doc["schema"] == "gopark.diagnosis/v1"
    assert set(doc) >= {"schema", "target", "go_version", "window", "summary", "findings"}
    assert set(doc["window"]) == {"start", "end", "snapshots"}
    assert doc["window"]["snapshots"] == 2
    assert set(doc["summary"]) >= {"goroutines", "parked_fraction", "sched_latency_ms"}
    assert set(doc["summary"]["goroutines"]) == {"first", "last", "per_min", "steady"}
    assert 0.9 < doc["summary"]["parked_fraction"] <= 1.0
    assert doc["summary"]["parked_by_category"]["chan-send"] > 0.9
    contract = {"id", "verdict", "category", "title", "goroutines", "bytes", "per_min",
                "wait_minutes", "location", "created_by", "stack", "evidence", "fix"}
    for i, f in enumerate(doc["findings"], 1):
        assert set(f) >= contract
        assert f["id"] == f"F{i}"
    top = doc["findings"][0]
    assert top["verdict"] == "suspected" and top["category"] == "chan-send"
    assert top["location"]["function"] == "main.fetch.func1"
    assert top["location"]["line"] == source_line_number("sendaftertimeout", "result <-")
    assert top["wait_minutes"] == {"min": 0, "max": 0}
    assert top["created_by"]["function"] == "main.fetch"
    assert top["stack"][0].startswith("main.fetch.func1 ")
    verdicts = [f["verdict"] for f in doc["findings"]]
    assert verdicts == sorted(verdicts, key=["proven", "confirmed", "suspected", "benign"].index)


@pytest.mark.parametrize("version", ["1.21", "1.27"])
def test_sigquit_traceback(version: str, tmp_path: Path) -> None:
    """A SIGQUIT traceback (what a killed service leaves in its log) diagnoses like a dump."""
    with gofixtures.run("rangeunclosed", version, ["-n", str(N)]) as p:
        settle(p)  # every consumer parked (the test counts them)
        p.signal(signal.SIGQUIT)
        p.wait(60)
        log = tmp_path / "service.log"
        log.write_text("some log line before the crash\n" + p.stderr_text())
    d = diag.diagnose(load_path(log))
    [f] = serious(d.findings)
    assert (f.verdict, f.category, f.goroutines) == ("suspected", "chan-recv", N)
    assert f.location is not None and f.location.function == "main.consume"
    assert len(f.goroutine_ids) == N


def test_wait_age_and_creator_spread_weigh() -> None:
    """Wait minutes and many creators make a smaller group a suspect (the dumps here are
    fresh, so the ages are set on a real group)."""
    inv = inventory(capture("waitgroupmissing", "1.24").snapshot("debug2"))
    [group] = [g for g in inv.groups if g.category == "waitgroup"]
    assert group.distinct_creators == 1
    assert weight(group) == N
    small = dataclasses.replace(group, count=30)
    assert not is_suspect(small)
    assert is_suspect(dataclasses.replace(small, wait_minutes=(15, 15)))  # 30 × (1 + 4)
    spread = leak_group_of(capture("sendaftertimeout", "1.24"))
    assert spread.distinct_creators == N and weight(spread) == 2 * N


def leak_group_of(cap: object) -> Group:
    inv = inventory(cap.snapshot("debug2"))  # type: ignore[attr-defined]
    return inv.groups[0]


@pytest.mark.parametrize("version", ["1.21", "1.27"])
def test_burst_in_progress_is_not_a_suspect(version: str) -> None:
    """200 requests wait on a slow dependency whose goroutines (their children) are still
    sleeping: one snapshot of a burst that will drain, not a leak."""
    with gofixtures.run("burstdrains", version, ["-n", str(N), "-hold", "60s"]) as p:
        dump = settle(p)  # every request parked (the test counts them)
    [snap] = load_bytes(dump, "burstdrains")
    d = diag.diagnose([snap])
    assert serious(d.findings) == []
    [burst] = [f for f in d.findings if f.location and f.location.function == "main.handle"]
    assert burst.verdict == "benign" and burst.goroutines == N
    assert "burst in progress" in burst.title


@pytest.mark.parametrize("version", ["1.21", "1.27"])
def test_healthy_service_under_load_has_no_suspect(version: str) -> None:
    with gofixtures.run("healthyservice", version, ["-n", str(N), "-rate", "500"]) as p:
        dumps = [gofixtures.fetch(p, "goroutine?debug=2"), gofixtures.fetch(p, "goroutine")]
    for data in dumps:
        d = diag.diagnose(load_bytes(data, "healthyservice"))
        assert serious(d.findings) == []


def test_findings_rank_by_verdict_then_memory_held_in_one_unit() -> None:
    from gopark.analysis.findings import Diagnosis, Finding, Summary

    heap = Finding(verdict="confirmed", category="heap-growth", title="heap", bytes=2_700_000)
    small_leak = Finding(verdict="confirmed", category="chan-send", title="38",
                         goroutines=38, bytes=38 * 8192)
    big_leak = Finding(verdict="confirmed", category="chan-send", title="5000",
                       goroutines=5000)  # no estimate: 2 KiB stacks, 10 MB
    proven = Finding(verdict="proven", category="chan-send", title="proven", goroutines=3)
    d = Diagnosis(target="t", findings=[small_leak, heap, proven, big_leak], summary=Summary())
    assert [f.title for f in d.ranked()] == ["proven", "5000", "heap", "38"]
