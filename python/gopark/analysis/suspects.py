"""Findings from one snapshot, LeakProf-style: many goroutines blocked at one site.

A group becomes a ``suspected`` finding when its weighted size passes a threshold: the
count, weighted up by how long they have waited (wait minutes) and by how many different
goroutines started them (one per request is how leaks look; one starter is a pool).
Goroutines Go's goroutineleak profile marked leaked make the finding ``proven``. Known
idle shapes become ``benign`` findings and never suspects.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from gopark.analysis import classify, holders
from gopark.analysis.findings import Finding, goroutine_count
from gopark.analysis.inventory import Group, Inventory
from gopark.analysis.source import SourceReader, http_calls_without_close
from gopark.model import Frame, Goroutine

DEFAULT_THRESHOLD = 50.0
"""Minimum weighted size of a suspect: 50 fresh goroutines from one starter, 25 started by
as many goroutines, fewer when they have waited for minutes."""

TITLES = {
    "chan-send": "blocked sending on a channel nobody receives from",
    "chan-recv": "blocked receiving from a channel nobody sends on or closes",
    "select": "blocked in a select no case of which can proceed",
    "nil-chan": "blocked forever on a nil channel or an empty select",
    "mutex": "queued behind a sync.Mutex",
    "rwmutex": "queued behind a sync.RWMutex",
    "waitgroup": "blocked in WaitGroup.Wait on a counter that never reaches zero",
    "cond": "blocked in Cond.Wait with nobody signalling",
    "ticker": "looping on a ticker with no way to exit",
    "io-wait": "blocked on network I/O with no deadline",
    "http-body-not-closed": "reading HTTP responses whose bodies are never closed (one per "
                            "connection kept alive)",
}

FIXES = {
    "chan-send": "the receiver gave up (timeout or early return) before receiving: make the "
                 "channel buffered (cap 1) or select on ctx.Done() when sending",
    "chan-recv": "nobody sends or closes any more: the producer must close(ch) when it is "
                 "done, or the receiver must also select on ctx.Done()",
    "select": "add a case on ctx.Done() (or a done channel) and make sure the other side "
              "sends or closes on every path",
    "nil-chan": "a nil channel (or select {}) blocks forever: initialise the channel, or give "
                "the goroutine a way to return",
    "mutex": "don't hold locks across network calls or other blocking operations; add "
             "deadlines to the calls made under the lock",
    "rwmutex": "don't hold the lock across network calls or other blocking operations; add "
               "deadlines to the calls made under the lock",
    "waitgroup": "call wg.Done() on every path: `defer wg.Done()` first thing in each "
                 "goroutine, and wg.Add before the go statement",
    "cond": "make sure every state change that a waiter needs is followed by Signal or "
            "Broadcast, and that waiters re-check the condition in a loop",
    "ticker": "stop the ticker (`defer t.Stop()`) and give the loop an exit: select on "
              "ctx.Done() or a done channel beside t.C",
    "io-wait": "set deadlines (conn.SetDeadline, http.Client.Timeout) or cancel through a "
               "context so a silent peer cannot hold the goroutine forever",
    "http-body-not-closed": "`defer resp.Body.Close()` right after the error check, and drain "
                            "the body (io.Copy(io.Discard, resp.Body)) so the connection can "
                            "be reused",
}


def weight(group: Group) -> float:
    """The group's weighted size: count × wait-age factor × creator-spread factor."""
    age = 1.0
    if group.wait_minutes is not None:
        age += math.log2(1 + group.wait_minutes[1])
    spread = 1.0
    if group.distinct_creators:
        # 1 when one goroutine started them all (a pool, a loop), 2 when each has its own
        spread += (group.distinct_creators - 1) / max(group.count - 1, 1)
    return group.count * age * spread


def is_suspect(group: Group, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """Whether a group is a suspect: blocked on another goroutine, not benign, heavy enough."""
    return group.benign is None and group.category in classify.BLOCKING and \
        weight(group) >= threshold


def findings(inv: Inventory, everyone: Sequence[Goroutine], *,
             threshold: float = DEFAULT_THRESHOLD, source: SourceReader | None = None,
             leaked_keys: dict[str, int] | None = None) -> list[Finding]:
    """The findings of one inventory: proven, suspected and benign groups.

    ``everyone`` is the snapshot's goroutines (for lock holders and channel peers);
    ``leaked_keys`` maps user keys to leaked counts from a goroutineleak profile.
    """
    reader = source or SourceReader()
    out: list[Finding] = []
    for g in inv.groups:
        leaked = max(g.leaked, (leaked_keys or {}).get(g.key, 0))
        # a leaked goroutine whose stack the profile could not symbolize says nothing useful
        if leaked and g.location is not None and g.location.file:
            out.append(_finding(g, "proven", inv, everyone, reader, min(leaked, g.count)))
        elif g.benign is not None:
            out.append(_benign(g))
        elif is_suspect(g, threshold) and not _is_write_loop(g):
            out.append(_finding(g, "suspected", inv, everyone, reader, 0))
    return out


def _is_write_loop(g: Group) -> bool:
    """writeLoops of unclosed bodies are counted in their readLoops' finding."""
    return g.category == "http-body-not-closed" and g.location is not None \
        and g.location.function == classify.WRITE_LOOP


def _where(frame: Frame | None) -> str:
    if frame is None:
        return "an unknown place"
    base = os.path.basename(frame.file) if frame.file else "?"
    return f"{base}:{frame.line}" if frame.line else frame.function


def _benign(g: Group) -> Finding:
    return Finding(
        verdict="benign", category=g.category,
        title=f"{goroutine_count(g.count)}: {g.benign}",
        goroutines=g.count, wait_minutes=g.wait_minutes, location=g.location,
        created_by=g.created_by, stack=list(g.stack), source_line=g.source_line,
        goroutine_ids=list(g.goroutine_ids), group_key=g.key,
        evidence=[f"known idle shape: {g.benign}"],
    )


def _finding(g: Group, verdict: str, inv: Inventory, everyone: Sequence[Goroutine],
             reader: SourceReader, leaked: int) -> Finding:
    title = f"{goroutine_count(g.count)} {TITLES.get(g.category, 'blocked')}"
    f = Finding(
        verdict=verdict, category=g.category, title=title, goroutines=g.count,
        wait_minutes=g.wait_minutes, location=g.location, created_by=g.created_by,
        stack=list(g.stack), source_line=g.source_line, goroutine_ids=list(g.goroutine_ids),
        fix=FIXES.get(g.category, ""), group_key=g.key,
    )
    state = g.main_state or g.category
    what = f"{goroutine_count(g.count)} in {state} at {_where(g.location)}"
    if g.location is not None:
        what += f" ({g.location.function})"
    f.evidence.append(what)
    if leaked:
        f.evidence.append(f"Go's goroutineleak profile marks {leaked:,} of them leaked: "
                          "nothing reachable can ever wake them")
    if g.created_by is not None:
        starters = (f"from {g.distinct_creators:,} different goroutines"
                    if g.distinct_creators > 1 else
                    f"all from goroutine {next(iter(g.creator_ids))}"
                    if g.distinct_creators == 1 else "")
        f.evidence.append(f"created by {g.created_by.function} at {_where(g.created_by)} "
                          f"{starters}".rstrip())
    if g.wait_minutes is not None:
        lo, hi = g.wait_minutes
        f.evidence.append(f"waiting {lo}–{hi} minutes" if hi else
                          "waiting under a minute (dumps count wait time from 1 minute)")
    else:
        f.evidence.append(f"from a {inv.form} {inv.profile} profile: no goroutine ids, "
                          "creators or wait times in this form")
    if g.category in ("mutex", "rwmutex"):
        _lock_evidence(f, g, everyone)
    elif g.category in ("chan-send", "chan-recv", "select"):
        _channel_evidence(f, g, everyone)
    elif g.category == "http-body-not-closed":
        _http_evidence(f, g, inv, reader)
    return f


def _describe(t: holders.Toucher) -> str:
    who = f"goroutine {t.goroutine_id}" if t.goroutine_id is not None else "a goroutine"
    state = f"{t.state}" + (f", {t.wait_minutes} minutes" if t.wait_minutes else "")
    field = f" (its struct at lock−{t.offset:#x})" if t.offset else ""
    return f"{who} in {t.frame.function} at {_where(t.frame)}{field} [{state}]"


def _lock_evidence(f: Finding, g: Group, everyone: Sequence[Goroutine]) -> None:
    found = holders.lock_holders(g.members, everyone)
    addresses = {a for a in (holders.lock_address(m) for m in g.members) if a is not None}
    if not addresses:
        return
    lock = ", ".join(f"{a:#x}" for a in sorted(addresses)[:3])
    if not found:
        f.evidence.append(f"no other goroutine's arguments mention the lock at {lock}: its "
                          "holder may have returned without unlocking")
        return
    names = "; ".join(_describe(t) for t in found[:3])
    f.evidence.append(f"the lock at {lock} is probably held by {names}")
    if any(t.state == "IO wait" for t in found):
        f.evidence.append("its holder waits on the network while holding the lock")


def _channel_evidence(f: Finding, g: Group, everyone: Sequence[Goroutine]) -> None:
    addresses, peers = holders.channel_peers(g.members, everyone)
    if not addresses:
        return
    if peers:
        names = "; ".join(_describe(t) for t in peers[:3])
        f.evidence.append(f"other goroutines touching the same channel: {names}")
    else:
        f.evidence.append(f"no other goroutine's arguments mention the {len(addresses):,} "
                          "channel(s) they wait on: the other side is gone")


def _http_evidence(f: Finding, g: Group, inv: Inventory, reader: SourceReader) -> None:
    writers = sum(x.count for x in inv.groups if x.category == "http-body-not-closed"
                  and x.location is not None and x.location.function == classify.WRITE_LOOP)
    if g.location is not None and g.location.function == classify.READ_LOOP:
        f.evidence.append(f"each connection's readLoop waits for its body to be read or "
                          f"closed; {writers:,} writeLoop goroutines idle beside them")
    user_files = {fr.file for x in inv.groups for fr in x.stack
                  if fr.file and not classify.is_stdlib(fr.function)}
    calls = http_calls_without_close(reader, user_files)
    for func, path, line, call in calls[:3]:
        f.evidence.append(f"the user's code comes in at {func} ({os.path.basename(path)}:"
                          f"{line}) via {call}, and that function never closes resp.Body")
    if not calls:
        f.evidence.append("the requests' callers have returned, so no user frame is on these "
                          "stacks: look for http.Get/Do calls whose resp.Body is never closed")
