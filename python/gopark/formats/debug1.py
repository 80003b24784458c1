"""goroutine?debug=1 and goroutineleak?debug=1: goroutines counted per distinct stack.

Written by runtime/pprof printCountProfile through a tabwriter (so fields are separated
by one or more tabs)::

    goroutine profile: total 9
    5 @ 0x48a42a 0x41733c 0x67e6a6 0x4911a1
    # labels: {"request":"42", "user":"x"}
    #	0x67e6a5	main.fetch.func1+0x45	/src/app/main.go:20

A record whose PCs cannot be symbolized prints ``#	0x0`` with no function.
"""

from __future__ import annotations

import re

from gopark.errors import InputError
from gopark.formats.gotext import FrameInterner, go_unquote, label_pairs
from gopark.model import Frame, Goroutine, Snapshot

_HEADER = re.compile(r"(goroutine|goroutineleak) profile: total (\d+)")
_RECORD = re.compile(r"(\d+) @((?: 0x[0-9a-f]+)*)")
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_LABEL = re.compile(rf"({_QUOTED}):({_QUOTED})")

UNKNOWN_FUNCTION = "?"
"""Function name of a frame whose PC the runtime could not symbolize."""


def _parse_labels(text: str) -> dict[str, str]:
    """``{"k":"v", "k2":"v2"}`` (runtime/pprof labelMap.String) -> dict."""
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError("labels must be enclosed in {}")
    labels: dict[str, str] = {}
    for m in label_pairs(text[1:-1], _LABEL, 'expected "key":"value"'):
        labels[go_unquote(m.group(1))] = go_unquote(m.group(2))
    return labels


def _parse_frame(line: str, frames: FrameInterner) -> Frame:
    """``#\\t0x67e6a5\\tmain.fetch.func1+0x45\\t/src/app/main.go:20`` -> Frame."""
    fields = [f for f in line.split("\t") if f]
    if len(fields) == 2 and fields[1].startswith("0x"):
        return frames.get(UNKNOWN_FUNCTION, "", 0)
    if len(fields) != 4 or not fields[1].startswith("0x"):
        raise ValueError("expected '#\\tPC\\tFUNCTION+OFFSET\\tFILE:LINE'")
    function = fields[2]
    plus = function.rfind("+0x")
    if plus > 0:
        function = function[:plus]
    file, sep, num = fields[3].rpartition(":")
    if not sep or not num.isdigit():
        raise ValueError(f"expected FILE:LINE, found {fields[3]!r}")
    return frames.get(function, file, int(num))


def parse_debug1(data: bytes, source: str) -> Snapshot:
    """The goroutine (or goroutineleak) profile in debug=1 text form: one Goroutine entry
    per distinct stack (and label set) with its ``count`` and ``labels``; no ids or states.

    Raises InputError naming ``source`` and the line when the text is not that format.
    """
    text = data.decode("utf-8", errors="replace")
    lines = text.replace("\r\n", "\n").split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise InputError(source, "line 1", "empty input (expected 'goroutine profile: total N')")
    header = _HEADER.fullmatch(lines[first].strip())
    if header is None:
        raise InputError(source, f"line {first + 1}", "expected 'goroutine profile: total N', "
                         f"found {lines[first][:80]!r}")
    frames = FrameInterner()
    goroutines: list[Goroutine] = []
    entry: Goroutine | None = None
    stack: list[Frame] = []

    def finish() -> None:
        if entry is not None:
            entry.frames = tuple(stack)
            goroutines.append(entry)

    for i in range(first + 1, len(lines)):
        line = lines[i]
        try:
            if line.startswith("#\t") or line.startswith("# \t"):
                if entry is None:
                    raise ValueError("a frame line before any 'N @ 0x...' record")
                stack.append(_parse_frame(line, frames))
            elif line.startswith("# labels: "):
                if entry is None or stack:
                    raise ValueError("labels belong right after an 'N @ 0x...' line")
                entry.labels = _parse_labels(line[len("# labels: "):].strip())
            elif line.strip() == "":
                continue
            else:
                record = _RECORD.fullmatch(line.rstrip())
                if record is None:
                    raise ValueError(f"expected 'COUNT @ 0xPC ...', found {line[:80]!r}")
                finish()
                entry = Goroutine(frames=(), count=int(record.group(1)))
                stack = []
        except ValueError as e:
            raise InputError(source, f"line {i + 1}", str(e)) from None
    finish()
    if not goroutines:
        raise InputError(source, f"line {len(lines)}", "no goroutine record "
                         "(expected 'COUNT @ 0xPC ...' after the header)")
    return Snapshot(
        source=source, form="debug1", goroutines=goroutines, profile=header.group(1),
        total_reported=int(header.group(2)),
    )
