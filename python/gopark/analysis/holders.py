"""Who else touches the lock or channel a group waits on, found by address in the arguments.

debug=2 dumps print each frame's arguments; a lock's address shows in the arguments of
``sync.(*Mutex).lockSlow`` (and friends) of the goroutines waiting for it, and very often
in the arguments of the goroutine holding it (a method on the struct that embeds it).
The same goes for a channel address in user frames. Profiles have no arguments: nothing
is found there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from gopark.analysis import classify
from gopark.model import Frame, Goroutine

LOCK_FRAMES = frozenset({
    "sync.(*Mutex).Lock", "sync.(*Mutex).lockSlow", "internal/sync.(*Mutex).Lock",
    "internal/sync.(*Mutex).lockSlow", "sync.(*RWMutex).Lock", "sync.(*RWMutex).RLock",
})
CHAN_FRAMES = frozenset({"runtime.chansend1", "runtime.chanrecv1", "runtime.chanrecv2",
                         "runtime.chansend", "runtime.chanrecv"})

NEAR_BYTES = 256
"""A holder's receiver may be the struct that embeds the lock a few fields in."""

_ADDR = re.compile(r"0x[0-9a-f]+\??")
_MIN_POINTER = 0x10000


@dataclass(frozen=True, slots=True)
class Toucher:
    """A goroutine whose arguments mention an address a group waits on."""

    goroutine_id: int | None
    state: str
    wait_minutes: int
    frame: Frame
    """The frame whose arguments mention it."""
    address: int
    offset: int
    """0 for the address itself; >0 when the frame's argument is a struct that starts
    ``offset`` bytes before it (the lock is a field of it)."""


def pointers(args: str) -> list[int]:
    """Pointer-looking values in a frame's argument text (``"0xc000010000, 0x1"``); values
    the runtime marks ``?`` (possibly stale register contents) are left out."""
    values = (int(a, 16) for a in _ADDR.findall(args) if not a.endswith("?"))
    return [v for v in values if v >= _MIN_POINTER]


def _first_pointer_in(g: Goroutine, names: frozenset[str]) -> int | None:
    for frame, args in zip(g.frames, g.args, strict=False):
        if frame.function in names:
            ptrs = pointers(args)
            if ptrs:
                return ptrs[0]
    return None


def lock_address(g: Goroutine) -> int | None:
    """The address of the lock a goroutine waits for, when its dump shows it."""
    return _first_pointer_in(g, LOCK_FRAMES)


def channel_addresses(g: Goroutine) -> list[int]:
    """Addresses a channel-blocked goroutine may be waiting on: the runtime frame's channel
    argument when shown, else the pointer arguments of its innermost user frame."""
    ptr = _first_pointer_in(g, CHAN_FRAMES)
    if ptr is not None:
        return [ptr]
    i = classify.first_user_index(g.frames)
    if i is None or i >= len(g.args):
        return []
    return pointers(g.args[i])


def touchers(addresses: set[int], waiting: set[int], goroutines: Iterable[Goroutine],
             near: bool = False) -> list[Toucher]:
    """Goroutines (not among ``waiting`` ids) whose frame arguments mention one of
    ``addresses``; with ``near``, also a user method's receiver up to NEAR_BYTES before it."""
    found: list[Toucher] = []
    if not addresses:
        return found
    lowest = min(addresses) - NEAR_BYTES
    # A substring test is much cheaper than parsing every argument list; with many
    # addresses parsing wins.
    hexes = [f"{a:#x}" for a in addresses] if len(addresses) <= 16 else None
    for g in goroutines:
        if g.id in waiting or not g.args:
            continue
        hit = _touch(g, addresses, hexes, lowest, near)
        if hit is not None:
            found.append(Toucher(g.id, g.state, g.wait_minutes, hit[0], hit[1], hit[2]))
    # exact matches first, then the nearest embedding structs
    return sorted(found, key=lambda t: (t.offset, t.goroutine_id or 0))


@lru_cache(maxsize=1 << 14)
def _user_method(function: str) -> bool:
    return "(*" in function and not classify.is_stdlib(function)


def _touch(g: Goroutine, addresses: set[int], hexes: list[str] | None, lowest: int,
           near: bool) -> tuple[Frame, int, int] | None:
    best: tuple[Frame, int, int] | None = None
    for frame, args in zip(g.frames, g.args, strict=False):
        if len(args) < 7:  # "", "...", "0x1": no pointer here
            continue
        if hexes is None or any(h in args for h in hexes):
            for p in pointers(args):
                if p in addresses:
                    return frame, p, 0
        if near and _user_method(frame.function):
            ptrs = pointers(args)
            receiver = ptrs[0] if ptrs else 0
            if receiver >= lowest:
                for a in addresses:
                    if 0 < a - receiver <= NEAR_BYTES and (best is None or a - receiver < best[2]):
                        best = (frame, a, a - receiver)
    return best


def lock_holders(members: Sequence[Goroutine], everyone: Iterable[Goroutine]) -> list[Toucher]:
    """Goroutines that could hold the lock ``members`` wait for: the same address in their
    arguments while they are not waiting for it themselves."""
    addresses = {a for a in (lock_address(g) for g in members) if a is not None}
    everyone = list(everyone)
    waiting = {g.id for g in members if g.id is not None}
    # Others may wait for the same lock from another site. Frames tuples are shared
    # between goroutines with the same stack: test each tuple once.
    has_lock: dict[int, bool] = {}
    for g in everyone:
        if g.id is None or g.id in waiting:
            continue
        key = id(g.frames)
        if key not in has_lock:
            has_lock[key] = any(f.function in LOCK_FRAMES for f in g.frames)
        if has_lock[key] and lock_address(g) in addresses:
            waiting.add(g.id)
    return touchers(addresses, waiting, everyone, near=True)


def channel_peers(members: Sequence[Goroutine], everyone: Iterable[Goroutine]
                  ) -> tuple[set[int], list[Toucher]]:
    """The channel addresses ``members`` wait on (as far as the dump shows them) and the
    other goroutines that mention the same addresses."""
    addresses = {a for g in members for a in channel_addresses(g)}
    waiting = {g.id for g in members if g.id is not None}
    return addresses, touchers(addresses, waiting, everyone)
