"""Go execution traces (Go 1.22+, and Go 1.11–1.21 converted to the same events), read
by gopark's Rust core.

Two ways in::

    summary = summarize_trace("app.trace")      # stream it; per-goroutine summary only
    trace = load_trace("app.trace")             # every event, as numpy columns

or, to walk a big trace one generation at a time with bounded memory::

    reader = TraceReader("app.trace")
    for events in reader.generations():
        ...                                     # an EventTable per generation
    summary = reader.summary()

Events come out in one consistent order (the same as ``go tool trace -d=parsed``),
with goroutine and proc state transitions resolved (from, to, reason, stack, and for an
unblock the goroutine that did it). A trace damaged partway is read up to the damage:
``damage`` then says where and how much was lost (counted from the end of the last
complete generation; the events of the damaged generation that could be ordered before
the damage are kept too, as Go's own reader does); a file with nothing readable raises
:class:`gopark.errors.InputError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gopark import _core
from gopark.errors import InputError
from gopark.model import Frame
from gopark.untrusted import printable

# Event kinds (the `kind` column).
KIND_NAMES = (
    "Bad", "Sync", "Metric", "Label", "StackSample", "RangeBegin", "RangeActive", "RangeEnd",
    "TaskBegin", "TaskEnd", "RegionBegin", "RegionEnd", "Log", "StateTransition", "Experimental",
)
KIND_SYNC, KIND_STATE_TRANSITION = 1, 13

# Goroutine states (`from_state` / `to_state` when `scope` is SCOPE_GOROUTINE).
GO_STATES = ("Undetermined", "NotExist", "Runnable", "Running", "Waiting", "Syscall")
GO_NOT_EXIST, GO_RUNNABLE, GO_RUNNING, GO_WAITING, GO_SYSCALL = 1, 2, 3, 4, 5
# Proc states (when `scope` is SCOPE_PROC).
PROC_STATES = ("Undetermined", "NotExist", "Running", "Idle")
# What the `resource` column names.
SCOPE_NONE, SCOPE_GOROUTINE, SCOPE_PROC = 0, 1, 2

Source = str | os.PathLike[str] | bytes


@dataclass(frozen=True)
class Damage:
    """Where reading stopped in a damaged trace, and how much of the file was lost."""

    offset: int
    kind: str
    message: str
    fraction_lost: float

    def describe(self, source: str) -> str:
        """One line for a warning."""
        return (f"{source}: byte {self.offset}: {self.message} "
                f"(read up to the damage; {self.fraction_lost:.1%} of the file lost)")


class Columns:
    """A table of equal-length numpy columns."""

    def __init__(self, columns: dict[str, NDArray[Any]]) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> NDArray[Any]:
        return self.columns[name]

    def names(self) -> list[str]:
        """Column names."""
        return list(self.columns)


class EventTable(Columns):
    """Ordered events, one row each. Columns:

    time (int64 ns, strictly increasing; clock ticks when the trace's frequency is
    unknown, see TraceSummary.times_in_ticks), kind (see KIND_NAMES), type (wire event type),
    thread, proc, goroutine (int64, -1: none), stack (stack ID of the event's own stack;
    for GoCreate the creator's, for GoUnblock the unblocker's), scope and resource
    (transition/range/label subject; task ID for tasks, regions, logs; N for Sync),
    from_state, to_state, name (string ID: reason, range/metric name, label, task or
    region type, log category), message (string ID: log message), transition_stack,
    value0..value2 (metric value; sweep bytes; parent task; experimental args).
    """

    @staticmethod
    def concat(parts: list[EventTable]) -> EventTable:
        """One table made of several, in order."""
        if not parts:
            return EventTable({})
        names = parts[0].columns
        return EventTable({k: np.concatenate([p.columns[k] for p in parts]) for k in names})


class GoroutineTable(Columns):
    """Per-goroutine summary, one row per goroutine seen. Columns:

    id, created (ns; -1: existed at trace start), creator, create_stack (where the
    creator ran `go`), start_stack (the new goroutine's entry function), first_seen,
    first_run (-1: never ran), ended (-1: alive at the end), state (at the end, see
    GO_STATES), since (when it entered `state`), running_ns, runnable_ns, syscall_ns,
    blocked_ns (closed intervals only), start_runnable_ns / start_syscall_ns (the part
    before its first run), block_reason (string ID), block_stack, block_time (its last
    block), unblocker and unblock_stack (who last woke it), last_stack, transitions.
    """

    def __init__(self, columns: dict[str, NDArray[Any]]) -> None:
        self.reason_row: NDArray[np.uint32] = columns.pop("reason_row")
        self.reason_string: NDArray[np.uint32] = columns.pop("reason_string")
        self.reason_ns: NDArray[np.int64] = columns.pop("reason_ns")
        super().__init__(columns)

    def blocked_by_reason(self, row: int, strings: list[str]) -> dict[str, int]:
        """Closed blocked time (ns) of goroutine `row` per wait reason."""
        sel = self.reason_row == row
        pairs = zip(self.reason_string[sel], self.reason_ns[sel], strict=True)
        return {strings[int(s)]: int(t) for s, t in pairs}


class Catalog:
    """The trace's strings and stacks (IDs are shared by all generations)."""

    def __init__(self, raw: _core.Reader) -> None:
        self.strings: list[str] = [printable(s) for s in raw.strings()]
        frames = raw.frames()
        self._pc, self._func, self._file, self._line = (
            frames["pc"], frames["func"], frames["file"], frames["line"])
        self._starts, self._frame_ids = raw.stacks()

    def stack(self, stack_id: int) -> list[Frame]:
        """Frames of a stack, innermost first ([] for 0, "no stack")."""
        if stack_id <= 0 or stack_id + 1 >= len(self._starts):
            return []
        ids = self._frame_ids[self._starts[stack_id]:self._starts[stack_id + 1]]
        return [Frame(self.strings[self._func[i]], self.strings[self._file[i]], int(self._line[i]),
                      int(self._pc[i])) for i in ids]


@dataclass
class FactColumns:
    """Step 2's facts gathered in the summary's pass (see src/facts.rs).

    ``goroutines``: one row per summary row (same order): wakes, runtime_wakes (made by
    no goroutine: timers, the network poller), first_wake_ns / last_wake_ns (-1: never
    woken), first_state (see GO_STATES), runnable_waits / runnable_ns (counted runnable
    intervals). ``latencies_ns``: every counted runnable interval (counted as ``go tool
    trace -pprof=sched`` does). ``runnable_by_stack``: stack, n, ns by the stack of the
    event that made the goroutine runnable. ``wait_sites``: stack, reason (string ID),
    waits / wait_ns (ended waits), open_waits / open_ns (still going at the end; sites
    with ended waits come first). ``wait_pairs``: goroutine, stack, count of ended waits.
    """

    goroutines: Columns
    latencies_ns: NDArray[np.int64]
    runnable_by_stack: Columns
    wait_sites: Columns
    wait_pairs: Columns
    procs: int
    """Distinct Ps seen on events."""


def _fact_columns(raw: dict[str, Any]) -> FactColumns:
    def part(prefix: str, names: tuple[str, ...]) -> Columns:
        return Columns({n: raw.pop(f"{prefix}{n}") for n in names})

    procs = int(raw.pop("procs"))
    latencies = raw.pop("latencies_ns")
    by_stack = Columns({"stack": raw.pop("runnable_stack"), "n": raw.pop("runnable_stack_n"),
                        "ns": raw.pop("runnable_stack_ns")})
    sites = part("site_", ("stack", "reason", "waits", "wait_ns", "open_waits", "open_ns"))
    pairs = part("pair_", ("goroutine", "stack", "count"))
    return FactColumns(Columns(raw), latencies, by_stack, sites, pairs, procs)


@dataclass
class GenerationInfo:
    """One generation of the trace."""

    gen: int
    start_offset: int
    end_offset: int
    start_time: int
    ns_per_tick: float
    """0.0 when the clock frequency is unknown (a Go 1.11–1.21 trace cut before the
    frequency it writes at its end): the generation's times are then clock ticks."""
    events: int
    experimental_bytes: int
    clock: tuple[int, int, int, int] | None  # (trace ns, monotonic ns, wall sec, wall nsec)


@dataclass
class TraceSummary:
    """What a trace holds, without its events."""

    source: str
    version: int
    size: int
    counts: dict[str, Any]
    generations: list[GenerationInfo]
    goroutines: GoroutineTable
    catalog: Catalog
    damage: Damage | None

    @property
    def go_version(self) -> str:
        """The trace format's Go version ("go1.26" for Go 1.26 and 1.27)."""
        return f"go1.{self.version}"

    @property
    def start_time(self) -> int:
        """Timestamp (ns) of the trace's first event."""
        return int(self.counts["first_time"])

    @property
    def end_time(self) -> int:
        """Timestamp (ns) of the trace's last event."""
        return int(self.counts["last_time"])

    @property
    def duration_ns(self) -> int:
        """Time from the first event to the last (in ticks when `times_in_ticks`)."""
        return self.end_time - self.start_time

    @property
    def times_in_ticks(self) -> bool:
        """Whether times are clock ticks, not nanoseconds: the clock frequency is unknown
        (a Go 1.11–1.21 trace cut before the frequency it writes at its end). Every time
        and duration of the summary (the ``*_ns`` columns too) is then in ticks."""
        return any(g.ns_per_tick == 0.0 for g in self.generations)


@dataclass
class Trace(TraceSummary):
    """A whole trace: the summary plus every event."""

    events: EventTable


def _name(source: Source) -> str:
    return "<bytes>" if isinstance(source, bytes) else os.fspath(source)


class TraceReader:
    """Reads a trace generation by generation; see the module docstring."""

    def __init__(self, source: Source, name: str | None = None, facts: bool = False) -> None:
        """``facts``: also gather step 2's facts in the same pass (see `facts()`)."""
        self.source = name or _name(source)
        try:
            if isinstance(source, bytes):
                self.size = len(source)
                self._raw = _core.Reader.from_bytes(source, facts)
            else:
                path = os.fspath(source)
                self.size = Path(path).stat().st_size
                self._raw = _core.Reader.from_path(path, facts)
        except OSError as e:
            raise InputError(self.source, None, e.strerror or str(e)) from None
        except _core.TraceDecodeError as e:
            kind, offset, message = e.args
            raise InputError(self.source, f"byte {offset}", f"{message} [{kind}]") from None
        self.version: int = self._raw.version()
        self._summary: TraceSummary | None = None
        self._facts: FactColumns | None = None

    def generations(self) -> Iterator[EventTable]:
        """Each generation's events in order (the last one ends with the closing Sync).
        Stops quietly at damage; see `damage()`."""
        while True:
            try:
                cols = self._raw.next_generation()
            except _core.TraceDecodeError:
                return
            if cols is None:
                return
            yield EventTable(cols)

    def damage(self) -> Damage | None:
        """Where reading stopped, if the trace is damaged."""
        err = self._raw.error()
        if err is None:
            return None
        kind, offset, message = err
        _, good = self._raw.offsets()
        lost = (self.size - good) / self.size if self.size else 1.0
        return Damage(int(offset), kind, message, max(0.0, min(1.0, lost)))

    def _check_readable(self) -> None:
        if self._raw.generations():
            return
        d = self.damage()
        if d is not None:
            raise InputError(self.source, f"byte {d.offset}",
                             f"{d.message} [{d.kind}]; nothing readable")
        # Go writes at least one generation even for a trace stopped at once: a file
        # that ends right after its header was cut there.
        raise InputError(self.source, f"byte {self.size}",
                         "no events: the trace ends after its header [truncated]; nothing readable")

    def summary(self) -> TraceSummary:
        """Read what is left (keeping no events) and return the summary."""
        if self._summary is not None:
            return self._summary
        self._raw.drain()
        self._check_readable()
        self._summary = TraceSummary(
            source=self.source, version=self.version, size=self.size, counts=self._raw.counts(),
            generations=[GenerationInfo(**g) for g in self._raw.generations()],
            goroutines=GoroutineTable(self._raw.summary()), catalog=Catalog(self._raw),
            damage=self.damage(),
        )
        return self._summary

    def facts(self) -> FactColumns:
        """Step 2's facts, for a reader opened with ``facts=True``: reads what is left
        (like `summary()`, which it calls)."""
        if self._facts is None:
            self.summary()
            raw = self._raw.facts()
            if raw is None:
                raise ValueError("facts were not gathered: open the reader with facts=True")
            self._facts = _fact_columns(raw)
        return self._facts

    def load(self) -> Trace:
        """Read what is left, keeping every event."""
        events = EventTable.concat(list(self.generations()))
        s = self.summary()
        return Trace(**vars(s), events=events)


def summarize_trace(source: Source, name: str | None = None) -> TraceSummary:
    """Stream a trace and return its per-goroutine summary (no events kept)."""
    return TraceReader(source, name).summary()


def load_trace(source: Source, name: str | None = None) -> Trace:
    """Read a whole trace: every event as numpy columns, plus the summary."""
    return TraceReader(source, name).load()
