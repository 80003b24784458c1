"""The ordered event stream printed the way ``go tool trace -d=parsed`` prints it.

Lets a user (and the tests) diff gopark's reading of a trace against Go's own reader,
line for line.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator

from gopark.formats.trace import (
    GO_STATES,
    KIND_NAMES,
    PROC_STATES,
    SCOPE_GOROUTINE,
    SCOPE_PROC,
    Catalog,
    EventTable,
    GenerationInfo,
)

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(s: str) -> str:
    """Quote like Go's strconv.Quote (%q)."""
    out = ['"']
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _rfc3339nano(sec: int, nsec: int) -> str:
    t = _dt.datetime.fromtimestamp(sec, tz=_dt.UTC)
    frac = f".{nsec:09d}".rstrip("0").rstrip(".") if nsec else ""
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


# Wire types of GoCreate and GoCreateBlocked.
_CREATE_TYPES = (14, 47)


def _value(v: int) -> str:
    return f"Value{{Uint64({v})}}"


# Argument names of the experimental (AllocFree) events, after the timestamp.
_EXPERIMENTAL_ARGS = {
    "Span": ("id", "npages_value", "kindclass"), "SpanAlloc": ("id", "npages_value", "kindclass"),
    "SpanFree": ("id",), "HeapObject": ("id", "type"), "HeapObjectAlloc": ("id", "type"),
    "HeapObjectFree": ("id",), "GoroutineStack": ("id", "order"),
    "GoroutineStackAlloc": ("id", "order"), "GoroutineStackFree": ("id",),
}


def render_parsed(events: EventTable, catalog: Catalog,
                  generations: list[GenerationInfo]) -> Iterator[str]:
    """One string per event, as Go's Event.String() prints it (``-d=parsed``)."""
    strings = catalog.strings
    stack_text: dict[int, str] = {}

    def stack(sid: int) -> str:
        if sid not in stack_text:
            stack_text[sid] = "".join(f"\t{f.function} @ {f.pc:#x}\n\t\t{f.file}:{f.line}\n"
                                      for f in catalog.stack(sid))
        return stack_text[sid]

    clocks = {g.gen: g.clock for g in generations}
    c = events.columns
    cols = [c[k].tolist() for k in (
        "time", "kind", "thread", "proc", "goroutine", "stack", "scope", "resource", "from_state",
        "to_state", "name", "message", "transition_stack", "value0", "value1", "value2", "type")]
    for (time, kind, m, p, g, stk, scope, res, frm, to, name, msg, tstk, v0, v1, v2,
         typ) in zip(*cols, strict=True):
        kname = KIND_NAMES[kind]
        s = f"M={m} P={p} G={g} {kname} Time={time}"
        if kname == "Metric":
            s += f" Name={go_quote(strings[name])} Value={_value(v0)}"
        elif kname == "Label":
            s += f" Label={go_quote(strings[name])} Resource=Goroutine({res})"
        elif kname in ("RangeBegin", "RangeActive", "RangeEnd"):
            scopes = {SCOPE_GOROUTINE: f"Goroutine({res})", SCOPE_PROC: f"Proc({res})"}
            sc = scopes.get(scope, "None")
            s += f" Name={go_quote(strings[name])} Scope={sc}"
            if kname == "RangeEnd":
                attrs = ""
                if strings[name] == "GC incremental sweep":
                    attrs = f'"bytes swept"={_value(v0)} "bytes reclaimed"={_value(v1)}'
                s += f" Attributes=[{attrs}]"
        elif kname in ("TaskBegin", "TaskEnd"):
            s += f" ID={res} Parent={v0} Type={go_quote(strings[name])}"
        elif kname in ("RegionBegin", "RegionEnd"):
            s += f" Task={res} Type={go_quote(strings[name])}"
        elif kname == "Log":
            s += f" Task={res} Category={go_quote(strings[name])} Message={go_quote(strings[msg])}"
        elif kname == "StateTransition":
            if scope == SCOPE_GOROUTINE:
                s += f" GoID={res} {GO_STATES[frm]}->{GO_STATES[to]}"
            else:
                s += f" ProcID={res} {PROC_STATES[frm]}->{PROC_STATES[to]}"
            s += f" Reason={go_quote(strings[name])}"
            # Go prints a GoCreate's new-goroutine stack even when its ID is 0.
            if tstk or typ in _CREATE_TYPES:
                s += "\nTransitionStack=\n" + stack(tstk)
        elif kname == "Experimental":
            ename = strings[name]
            args = ", ".join(f"{a}={_value(v)}" for a, v in
                             zip(_EXPERIMENTAL_ARGS.get(ename, ()), (v0, v1, v2), strict=False))
            s += f" Name={ename} Args=[{args}]"
        elif kname == "Sync":
            s += f" N={res}"
            clock = clocks.get(v0) if v0 else None
            if clock is not None:
                s += f" Trace={clock[0]} Mono={clock[1]} Wall={_rfc3339nano(clock[2], clock[3])}"
        if stk:
            s += "\nStack=\n" + stack(stk)
        yield s
