"""Step 1 of the method: group a snapshot's goroutines by stack, classify each group.

Three similarities:

- ``exact``: function and file:line of every frame;
- ``functions``: function names of every frame;
- ``user``: the runtime folded away, the user's frames kept (the innermost with its line)
  plus the stdlib function the user called to block, or for stdlib-only stacks their
  non-runtime functions. The runtime frames differ between dumps and profiles (and Go
  1.27 profiles trim them), so this key is the one that matches across forms.

Each group has a stable ``key`` (a hash of its signature) for matching the same group in
another snapshot or another form of the same snapshot.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gopark.analysis import classify
from gopark.analysis.source import SourceReader
from gopark.model import Frame, Goroutine, Snapshot

SIMILARITIES = ("user", "functions", "exact")


@dataclass(slots=True)
class Group:
    """Goroutines that share a stack signature, and what they are doing."""

    key: str
    signature: tuple[str, ...]
    count: int
    category: str
    stack: tuple[Frame, ...]
    """An example stack, innermost frame first."""
    location: Frame | None
    states: dict[str, int] = field(default_factory=dict)
    wait_minutes: tuple[int, int] | None = None
    """(min, max) over the group; None when the form has no wait times (profiles)."""
    created_by: Frame | None = None
    goroutine_ids: list[int] = field(default_factory=list)
    creator_ids: set[int] = field(default_factory=set)
    leaked: int = 0
    """How many the goroutineleak profile marked leaked."""
    parked: int = 0
    benign: str | None = None
    """Why this is a known idle shape, or None."""
    source_line: str | None = None
    members: list[Goroutine] = field(default_factory=list, repr=False)

    @property
    def distinct_creators(self) -> int:
        """How many different goroutines started these (0 when the form does not say)."""
        return len(self.creator_ids)

    @property
    def main_state(self) -> str:
        """The most common state ("" for profile stacks)."""
        return max(self.states, key=lambda s: self.states[s]) if self.states else ""


@dataclass(slots=True)
class Inventory:
    """A snapshot's goroutines grouped, largest group first."""

    source: str
    form: str
    profile: str
    similarity: str
    total: int
    groups: list[Group]
    go_version: str | None = None
    parked: int = 0
    parked_by_category: dict[str, int] = field(default_factory=dict)

    @property
    def parked_fraction(self) -> float:
        """Share of goroutines parked in runtime.gopark (the seed's metric)."""
        return self.parked / self.total if self.total else 0.0

    def by_key(self) -> dict[str, Group]:
        """Groups by their key."""
        return {g.key: g for g in self.groups}


def signature(frames: Sequence[Frame], similarity: str) -> tuple[str, ...]:
    """The stack signature groups are made of, at one similarity."""
    if similarity == "exact":
        return tuple(f"{f.function} {f.file}:{f.line}" for f in frames)
    if similarity == "functions":
        return tuple(f.function for f in frames)
    if similarity != "user":
        raise ValueError(f"unknown similarity {similarity!r}; expected one of {SIMILARITIES}")
    i = classify.first_user_index(frames)
    if i is None:
        kept = [f for f in frames if not classify.is_runtime(f.function)]
        if not kept:
            return ()
        return (f"{kept[0].function}:{kept[0].line}", *(f.function for f in kept[1:]))
    sig = [f"{frames[i].function}:{frames[i].line}"]
    sig += [f.function for f in frames[i + 1:] if not classify.is_stdlib(f.function)]
    boundary = classify.boundary_frame(frames)
    if boundary is not None:
        sig.insert(0, boundary.function)
    return tuple(sig)


def key_of(sig: tuple[str, ...], similarity: str) -> str:
    """A short stable key for a signature (same signature, same key, in any process)."""
    text = similarity + "\n" + "\n".join(sig)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


Filter = Callable[[Goroutine], bool]


def inventory(snapshot: Snapshot, similarity: str = "user", *,
              source: SourceReader | None = None,
              category_hints: Mapping[str, str] | None = None,
              keep: Filter | None = None) -> Inventory:
    """Group ``snapshot``'s goroutines at ``similarity`` and classify every group.

    ``category_hints`` maps user-similarity keys to categories learnt from a debug=2 dump of
    the same program: they categorise profile stacks that carry no wait reason.
    ``keep`` selects the goroutines to group (the others are not counted).
    """
    reader = source if source is not None else SourceReader()
    buckets: dict[tuple[str, ...], list[Goroutine]] = {}
    # Parsers share one frames tuple between goroutines with the same stack: compute each
    # signature once per tuple (by identity; the tuples live as long as the snapshot).
    known: dict[int, tuple[str, ...]] = {}
    for g in snapshot.goroutines:
        if keep is None or keep(g):
            sig = known.get(id(g.frames))
            if sig is None:
                sig = known[id(g.frames)] = signature(g.frames, similarity)
            buckets.setdefault(sig, []).append(g)

    # A goroutineleak *profile* (proto, debug=1) lists only leaked goroutines; its debug=2
    # form lists all and marks the leaked ones.
    all_leaked = snapshot.profile == "goroutineleak" and snapshot.form != "debug2"
    groups = [_make_group(sig, members, similarity, reader, category_hints, all_leaked)
              for sig, members in buckets.items()]
    _mark_http_pairs(groups)
    _mark_waiting_on_working_children(groups, snapshot)
    _mark_pools(groups)
    _mark_background_loops(groups)
    groups.sort(key=lambda gr: (-gr.count, gr.signature))

    parked_by: Counter[str] = Counter()
    for gr in groups:
        if gr.parked:
            parked_by[gr.category] += gr.parked
    return Inventory(
        source=snapshot.source, form=snapshot.form, profile=snapshot.profile,
        similarity=similarity, total=sum(gr.count for gr in groups), groups=groups,
        go_version=snapshot.go_version, parked=sum(parked_by.values()),
        parked_by_category=dict(parked_by.most_common()),
    )


def _make_group(sig: tuple[str, ...], members: list[Goroutine], similarity: str,
                reader: SourceReader, hints: Mapping[str, str] | None,
                all_leaked: bool = False) -> Group:
    first = members[0]
    frames = first.frames
    # One pass over the members (a group may hold 100,000 goroutines).
    states: Counter[str] = Counter()
    creators: Counter[int] = Counter()  # by id(Frame): parsers intern frames
    creator_frames: dict[int, Frame] = {}
    ids: list[int] = []
    creator_ids: set[int] = set()
    count = leaked = 0
    wait_lo, wait_hi = 1 << 62, -1
    for g in members:
        count += g.count
        if g.state:
            states[g.state] += g.count
        if g.leaked or all_leaked:
            leaked += g.count
        if g.id is not None:
            ids.append(g.id)
            wait_lo, wait_hi = min(wait_lo, g.wait_minutes), max(wait_hi, g.wait_minutes)
        if g.created_by is not None:
            creators[id(g.created_by)] += 1
            creator_frames[id(g.created_by)] = g.created_by
        if g.creator_id is not None:
            creator_ids.add(g.creator_id)
    state = max(states, key=lambda s: states[s]) if states else ""
    category = classify.categorize(state, frames, reader.block)
    waits = Counter({s: n for s, n in states.items() if s not in classify.NOT_PARKED})
    if category == "unknown" and waits:
        # A dump that catches a ticker loop's goroutines just woken together ("runnable",
        # still at the stack they parked with) must not hide the loop; other goroutines
        # just woken are on their way, not stuck.
        wait = max(waits, key=lambda s: waits[s])
        if classify.categorize(wait, frames, reader.block) == "ticker":
            state, category = wait, "ticker"
    if hints and category == "unknown" and not state:
        category = hints.get(key_of(signature(frames, "user"), "user"), category)
    parked_states = {s for s in states if classify.is_parked(s, category)}
    parked = sum(n for s, n in states.items() if s in parked_states)
    if not state and classify.is_parked("", category):
        parked = count  # profile stacks: no states, the category decides
    loc = classify.location(frames)
    group = Group(
        key=key_of(sig, similarity), signature=sig, count=count, category=category,
        stack=frames, location=loc, states=dict(states),
        wait_minutes=(wait_lo, wait_hi) if ids else None,
        created_by=creator_frames[creators.most_common(1)[0][0]] if creators else None,
        goroutine_ids=sorted(ids), creator_ids=creator_ids, leaked=leaked, parked=parked,
        source_line=reader.line(loc) if loc is not None else None, members=members,
    )
    group.benign = classify.benign_shape(frames, category, group.created_by, first.id)
    return group


def _mark_http_pairs(groups: Iterable[Group]) -> None:
    """A persistConn's writeLoop idles in a select for as long as its readLoop lives: it
    belongs to whatever its readLoop is doing (an unclosed body, or an idle keep-alive)."""
    groups = list(groups)
    body_waits = sum(g.count for g in groups if g.category == "http-body-not-closed")
    for g in groups:
        if g.stack and g.location is not None and g.location.function == classify.WRITE_LOOP \
                and classify.first_user_index(g.stack) is None:
            if body_waits:
                g.category = "http-body-not-closed"
                g.benign = None
            else:
                g.benign = "idle keep-alive HTTP client connection (write loop)"


WORKING = frozenset({"running", "runnable", "sleep", "syscall"})
"""States of a goroutine that is making progress (or will, by itself)."""


def _mark_waiting_on_working_children(groups: Iterable[Group], snapshot: Snapshot) -> None:
    """Goroutines waiting on a channel for goroutines they started that are still working
    (e.g. a burst of requests waiting on a slow dependency): they will be woken. Only
    debug=2 dumps say who created whom."""
    working_parents = {g.creator_id for g in snapshot.goroutines
                       if g.creator_id is not None and g.state in WORKING}
    if not working_parents:
        return
    for g in groups:
        if g.benign is not None or g.leaked or g.category not in ("chan-recv", "select") \
                or not g.goroutine_ids:
            continue
        waiting = sum(1 for i in g.goroutine_ids if i in working_parents)
        if waiting >= 0.9 * len(g.goroutine_ids):
            g.benign = ("waiting for goroutines they started, which are still working "
                        "(a burst in progress, not a leak yet)")


POOL_MAX = 256
"""A pool is bounded: more goroutines than this waiting at one site are not a pool."""


def _mark_pools(groups: Iterable[Group]) -> None:
    """A worker pool: a bounded number of goroutines waiting for work on a channel, all
    started by one goroutine (e.g. one startPool loop), each waiting in its own top-level
    loop. Only debug=2 dumps say who created whom. Requests of a server are also started by
    one goroutine (the accept loop), but they wait deeper down in a handler's calls."""
    for g in groups:
        if g.benign is None and g.category in ("chan-recv", "select") \
                and 1 < g.count <= POOL_MAX and g.distinct_creators == 1 and g.leaked == 0 \
                and g.created_by is not None and _waits_in_entry_function(g):
            g.benign = (f"worker pool: {g.count} workers started by one goroutine "
                        f"({g.created_by.function}) waiting for work")


def _waits_in_entry_function(g: Group) -> bool:
    """Whether the group waits in the function its goroutines were started with."""
    frames = [f for f in g.members[0].frames if f.function != "runtime.goexit"] \
        if g.members else []
    return bool(frames) and g.location is not None \
        and frames[-1].function == g.location.function


BACKGROUND_MAX = 4
"""At most this many goroutines in one sleep/ticker loop are the program's own background
work (a cache janitor, a metrics flusher); more are one per request or session."""


def _mark_background_loops(groups: Iterable[Group]) -> None:
    for g in groups:
        if g.benign is None and g.category in ("ticker", "sleep") and g.count <= BACKGROUND_MAX \
                and g.leaked == 0 and g.distinct_creators <= 1:
            # A ticker wait is a loop by construction; a sleep may as well be one request
            # part way through its work (the demo's slow upstream call): don't call it a loop.
            g.benign = ("a background timer/ticker loop of the program's own"
                        if g.category == "ticker" else
                        "sleeping (time.Sleep): too few to be a leak — background work, or "
                        "a request part way through")


def filter_goroutines(function: str | None = None, state: str | None = None,
                      min_wait: int | None = None, category: str | None = None,
                      source: SourceReader | None = None) -> Filter:
    """A goroutine filter for ``inventory(keep=...)``: a regex any frame's function must
    match, a substring of the state, a minimum wait in minutes, a category."""
    import re

    func_re = re.compile(function) if function else None
    reader = source or SourceReader()

    def keep(g: Goroutine) -> bool:
        if func_re and not any(func_re.search(f.function) for f in g.frames):
            return False
        if state and state not in g.state:
            return False
        if min_wait is not None and g.wait_minutes < min_wait:
            return False
        return not (category and classify.categorize(g.state, g.frames, reader.block)
                    != category)

    return keep
