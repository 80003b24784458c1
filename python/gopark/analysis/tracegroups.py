"""A trace's goroutines grouped by stack: what `gopark trace` shows (step 2 of the method).

The per-goroutine summary comes from the trace engine (gopark.formats.trace); this module
only aggregates it: entry function, state at the end, and for blocked goroutines where and
why they wait.
"""

from __future__ import annotations

from dataclasses import dataclass

from gopark.formats.trace import GO_STATES, GO_WAITING, TraceSummary
from gopark.model import Frame


@dataclass
class GoroutineGroup:
    """Goroutines that run the same function and ended in the same place.

    The key: entry function (what the goroutine runs), the state at the end of the
    trace and, for blocked ones, the wait reason and where they blocked.
    """

    entry: Frame | None
    created_at: Frame | None
    state: str
    wait_reason: str
    blocked_at: Frame | None
    ids: list[int]
    running_ns: int = 0
    runnable_ns: int = 0
    syscall_ns: int = 0
    blocked_ns: int = 0
    blocked_by_reason: dict[str, int] | None = None
    # Still blocked at the end of the trace, and since how long (the longest wait).
    still_blocked: int = 0
    longest_wait_ns: int = 0
    # Time those still blocked had waited by the end: not in blocked_ns, which (like Go's
    # -pprof profiles) counts only waits that ended during the trace.
    pending_ns: int = 0

    @property
    def count(self) -> int:
        """Goroutines in the group."""
        return len(self.ids)


# Packages whose frames sit between user code and a wait (locks, timers, I/O).
_WAITING_PACKAGES = ("runtime.", "internal/", "sync.", "time.", "net.", "os.", "syscall.",
                     "io.", "bufio.")


def _in_waiting_code(f: Frame) -> bool:
    return f.function.startswith(_WAITING_PACKAGES)


def _user_frame(frames: list[Frame]) -> Frame | None:
    """The innermost frame outside the runtime and the standard library's waiting code."""
    for f in frames:
        if not _in_waiting_code(f):
            return f
    return frames[0] if frames else None


def group_goroutines(s: TraceSummary) -> list[GoroutineGroup]:
    """The per-goroutine summary aggregated by stack group, largest group first."""
    g = s.goroutines
    names = s.catalog.strings
    frames_of: dict[int, list[Frame]] = {}

    def frames(sid: int) -> list[Frame]:
        if sid not in frames_of:
            frames_of[sid] = s.catalog.stack(sid)
        return frames_of[sid]

    cols = {k: g[k].tolist() for k in (
        "id", "start_stack", "create_stack", "last_stack", "state", "block_reason", "block_stack",
        "since", "running_ns", "runnable_ns", "syscall_ns", "blocked_ns")}
    reasons: dict[int, dict[str, int]] = {}
    for row, r, ns in zip(g.reason_row.tolist(), g.reason_string.tolist(), g.reason_ns.tolist(),
                          strict=True):
        d = reasons.setdefault(row, {})
        d[names[r]] = d.get(names[r], 0) + ns
    groups: dict[tuple[object, ...], GoroutineGroup] = {}
    for i, gid in enumerate(cols["id"]):
        start = frames(cols["start_stack"][i])
        last = frames(cols["last_stack"][i])
        entry = start[0] if start else (last[-1] if last else None)
        state = GO_STATES[cols["state"][i]]
        waiting = cols["state"][i] == GO_WAITING
        reason = names[cols["block_reason"][i]] if waiting else ""
        blocked_at = _user_frame(frames(cols["block_stack"][i])) if waiting else None
        site = blocked_at and (blocked_at.function, blocked_at.line)
        key = (entry and entry.function, state, reason, site)
        grp = groups.get(key)
        if grp is None:
            grp = groups[key] = GoroutineGroup(entry, None, state, reason, blocked_at, [],
                                               blocked_by_reason={})
        if grp.created_at is None:
            # Goroutines that existed before the trace have no creation event.
            grp.created_at = _user_frame(frames(cols["create_stack"][i]))
        grp.ids.append(gid)
        grp.running_ns += cols["running_ns"][i]
        grp.runnable_ns += cols["runnable_ns"][i]
        grp.syscall_ns += cols["syscall_ns"][i]
        grp.blocked_ns += cols["blocked_ns"][i]
        assert grp.blocked_by_reason is not None
        for r, ns in reasons.get(i, {}).items():
            grp.blocked_by_reason[r] = grp.blocked_by_reason.get(r, 0) + ns
        if waiting:
            grp.still_blocked += 1
            waited = s.end_time - cols["since"][i]
            grp.longest_wait_ns = max(grp.longest_wait_ns, waited)
            grp.pending_ns += waited
    return sorted(groups.values(), key=lambda x: (-x.count, -x.blocked_ns))
