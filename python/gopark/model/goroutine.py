"""Goroutines as the runtime reports them: in text dumps, debug=1 text and goroutine profiles."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Frame:
    """One stack frame. Parsers intern frames, so equal frames are usually the same object.

    ``function`` is the fully qualified Go name as the runtime prints it
    (``main.(*pool).worker.func1``); ``file``/``line`` may be empty/0 when unknown.
    """

    function: str
    file: str = ""
    line: int = 0
    pc: int = field(default=0, compare=False)
    """Program counter, where the source gives one (execution traces); 0 otherwise. Not
    part of a frame's identity: dumps and profiles of the same code have other PCs."""

    def __str__(self) -> str:
        return f"{self.function} {self.file}:{self.line}" if self.file else self.function


@dataclass(slots=True)
class Goroutine:
    """A goroutine, or (``count`` > 1) several goroutines that share one stack in a profile.

    Text dumps (debug=2, tracebacks) give one entry per goroutine with its id and state.
    debug=1 text and protobuf goroutine profiles give one entry per distinct stack with
    ``count`` and no id or state (``state == ""``).
    """

    frames: tuple[Frame, ...]
    """Innermost frame first."""
    id: int | None = None
    state: str = ""
    """The wait reason or status as printed, e.g. ``"chan send"``, ``"running"``, ``"select"``,
    without the wait minutes and flags (those have their own fields)."""
    wait_minutes: int = 0
    locked_to_thread: bool = False
    leaked: bool = False
    """Marked ``(leaked)`` by Go's goroutineleak profile: the GC proved nothing can wake it."""
    durable: bool = False
    """Marked ``(durable)``: blocked inside a synctest bubble on something only the bubble wakes."""
    bubble: int | None = None
    """synctest bubble id when the header names one."""
    args: tuple[str, ...] = ()
    """Raw argument text per frame (``"0xc000010000, 0x1"``), parallel to ``frames``;
    empty when the source has none (debug=1, protobuf)."""
    created_by: Frame | None = None
    creator_id: int | None = None
    elided: bool = False
    """The runtime cut the stack (``...additional frames elided...``)."""
    ancestors: tuple[tuple[int, tuple[Frame, ...]], ...] = ()
    """With GODEBUG=tracebackancestors: (ancestor goroutine id, its creation-time stack)."""
    labels: dict[str, str] = field(default_factory=dict)
    """pprof labels (debug=1 and protobuf forms)."""
    count: int = 1


@dataclass(slots=True)
class Snapshot:
    """The goroutines of one program at one moment, from one file or response."""

    source: str
    """Path or URL it came from, for messages."""
    form: str
    """``"debug2"`` (goroutine?debug=2 or a traceback), ``"debug1"``, ``"proto"``."""
    goroutines: list[Goroutine]
    taken_at: datetime | None = None
    go_version: str | None = None
    profile: str = "goroutine"
    """``"goroutine"`` or ``"goroutineleak"``."""
    total_reported: int | None = None
    """The total the source itself states (debug=1 header, proto sample sum), when it does."""

    @property
    def total(self) -> int:
        """Number of goroutines in the snapshot."""
        return sum(g.count for g in self.goroutines)
