"""Helpers shared by the goroutine text parsers: Go-quoted strings, label maps and frame
interning (which the pprof reader uses too)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from gopark.model import Frame
from gopark.untrusted import printable

# A backslash and what follows; anything but a known escape is rejected.
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[abfnrtv\\\"']|.?)", re.S)
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
           "\\": "\\", '"': '"', "'": "'"}


def _unescape_one(m: re.Match[str]) -> str:
    esc = m.group(1)
    if len(esc) > 1:
        return chr(int(esc[1:], 16))
    if esc in _SIMPLE:
        return _SIMPLE[esc]
    raise ValueError(f"bad escape \\{esc}")


def go_unquote(quoted: str) -> str:
    """The value of a Go double-quoted string literal as strconv.Quote and the runtime's
    traceback label printer write it (``"a\\tb"`` -> ``a<TAB>b``). Raises ValueError when
    ``quoted`` is not one."""
    if len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
        raise ValueError(f"not a quoted string: {quoted!r}")
    body = quoted[1:-1]
    if "\\" not in body:
        return body
    return _ESCAPE.sub(_unescape_one, body)


def label_pairs(body: str, pair: re.Pattern[str], expected: str) -> Iterator[re.Match[str]]:
    """The matches of ``pair`` in ``body`` (a label map without its braces), one per
    label, separated by ``", "`` as both runtime label printers write them. Raises
    ValueError (``expected`` + where) at the first text ``pair`` does not match."""
    pos = 0
    while pos < len(body):
        m = pair.match(body, pos)
        if m is None:
            raise ValueError(f"{expected} at {body[pos:pos + 20]!r}")
        yield m
        pos = m.end()
        if body.startswith(", ", pos):
            pos += 2
        elif pos != len(body):
            raise ValueError(f"expected ', ' between labels at {body[pos:pos + 20]!r}")


class FrameInterner:
    """Hands out one Frame object per (function, file, line), so big dumps share frames;
    names and paths come out printable (control characters escaped)."""

    __slots__ = ("_frames",)

    def __init__(self) -> None:
        self._frames: dict[tuple[str, str, int], Frame] = {}

    def get(self, function: str, file: str, line: int) -> Frame:
        """The shared Frame for this function and source position."""
        key = (function, file, line)
        frame = self._frames.get(key)
        if frame is None:
            frame = self._frames[key] = Frame(printable(function), printable(file), line)
        return frame
