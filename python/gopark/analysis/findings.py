"""What a diagnosis says: findings with verdicts, and the summary around them.

These are the objects behind the JSON contract (`gopark.diagnosis/v1`, see the README);
reporters render them, analyses produce them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from gopark.model import Frame

# Verdicts, most serious first. The order ranks findings.
VERDICTS = ("proven", "confirmed", "suspected", "benign")

# The runtime's minimum goroutine stack (runtime/stack.go stackMin).
MIN_STACK_BYTES = 2048

# Stable category identifiers used in every output (design.md).
CATEGORIES = (
    "chan-send", "chan-recv", "select", "nil-chan", "mutex", "rwmutex", "waitgroup", "cond",
    "sleep", "ticker", "io-wait", "http-body-not-closed", "syscall", "heap-growth",
    "sched-latency", "lock-contention", "unknown",
)


def goroutine_count(n: int) -> str:
    """``1 goroutine``, ``1,420 goroutines``: a count as titles and evidence say it."""
    return f"{n:,} goroutine" + ("" if n == 1 else "s")


@dataclass(slots=True)
class Finding:
    """One thing gopark tells the user, with its verdict, evidence and fix."""

    verdict: str
    category: str
    title: str
    goroutines: int = 0
    bytes: int | None = None
    per_min: float | None = None
    wait_minutes: tuple[int, int] | None = None
    location: Frame | None = None
    created_by: Frame | None = None
    stack: list[Frame] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    fix: str = ""
    source_line: str | None = None
    """The text of the location's source line, when the file is readable here."""
    goroutine_ids: list[int] = field(default_factory=list)
    id: str = ""
    """F1, F2, ... assigned once findings are ranked."""
    group_key: str | None = None
    """The inventory group (user-similarity key) this finding is about, so analyses that
    look at the same group (one snapshot, a trend, a trace) can merge their findings."""

    def rank_key(self) -> tuple[int, int, int]:
        """Sort key: verdict first, then the memory held, so goroutine and heap findings
        compare in one unit (a goroutine without an estimate counts as its minimum stack),
        then the number of goroutines."""
        held = self.bytes if self.bytes is not None else self.goroutines * MIN_STACK_BYTES
        return (VERDICTS.index(self.verdict), -held, -self.goroutines)


@dataclass(slots=True)
class Summary:
    """The numbers at the top of a diagnosis."""

    goroutines_first: int = 0
    goroutines_last: int = 0
    goroutines_per_min: float | None = None
    steady: bool | None = None
    parked_fraction: float | None = None
    parked_by_category: dict[str, float] = field(default_factory=dict)
    sched_latency_ms: dict[str, float] | None = None


@dataclass(slots=True)
class Diagnosis:
    """Everything `gopark diagnose` found for one target."""

    target: str
    findings: list[Finding]
    summary: Summary
    go_version: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    snapshots: int = 0
    notes: list[str] = field(default_factory=list)
    """Things the user should know about the inputs (e.g. "no debug=2 dump: no goroutine ids")."""

    def ranked(self) -> list[Finding]:
        """Findings most serious first, with ids F1.. assigned in that order."""
        out = sorted(self.findings, key=Finding.rank_key)
        for i, f in enumerate(out, 1):
            f.id = f"F{i}"
        return out

    def ignore(self, patterns: Sequence[re.Pattern[str]]) -> list[Finding]:
        """Drop the findings a pattern accepts (a shape the team knows and keeps, as
        goleak's IgnoreTopFunction/IgnoreAnyFunction do): one that ``search``-matches a
        function of the finding's stack, its location or its creator. Ids are given again
        and a note counts what was dropped; returns the dropped findings."""
        def accepted(f: Finding) -> bool:
            frames = [*f.stack, f.location, f.created_by]
            names = {fr.function for fr in frames if fr is not None}
            return any(p.search(n) for p in patterns for n in names)

        kept: list[Finding] = []
        dropped: list[Finding] = []
        for f in self.findings:
            (dropped if accepted(f) else kept).append(f)
        if dropped:
            self.findings = kept
            self.findings = self.ranked()  # F1.. again, without gaps
            serious = sum(f.verdict != "benign" for f in dropped)
            self.notes.append(f"{len(dropped)} finding(s) left out by --ignore "
                              f"({serious} not benign, {sum(f.goroutines for f in dropped):,} "
                              "goroutines)")
        return dropped
