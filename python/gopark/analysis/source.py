"""Source lines of stack locations, when the Go files are readable on this machine.

A dump names files by their absolute build-time path; when that path exists here (the
same machine, a CI checkout at the same place) gopark shows the line itself and uses it
to categorise stacks the runtime trimmed. Nothing here fails: a missing file is None.
"""

from __future__ import annotations

import re
from pathlib import Path

from gopark.model import Frame

MAX_SOURCE_BYTES = 4 << 20
"""Bigger files are not Go sources worth reading (and would cost memory)."""


class SourceReader:
    """Reads and caches Go source files by path; lines are 1-based like Go's."""

    def __init__(self) -> None:
        self._files: dict[str, list[str] | None] = {}

    def lines_of(self, path: str) -> list[str] | None:
        """All lines of ``path`` or None when it is not readable here."""
        if path not in self._files:
            self._files[path] = _read(path)
        return self._files[path]

    def line(self, frame: Frame) -> str | None:
        """The source line of a frame, stripped, or None."""
        block = self.block(frame, 1)
        return block[0].strip() if block else None

    def block(self, frame: Frame, n: int) -> list[str]:
        """Up to ``n`` raw lines from the frame's line on (empty when unreadable)."""
        if not frame.file or frame.line <= 0:
            return []
        lines = self.lines_of(frame.file)
        if lines is None or frame.line > len(lines):
            return []
        return lines[frame.line - 1: frame.line - 1 + n]


def _read(path: str) -> list[str] | None:
    p = Path(path)
    try:
        if not p.is_file() or p.stat().st_size > MAX_SOURCE_BYTES:
            return None
        return p.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None


_FUNC = re.compile(r"^func\s+(?:\(\s*\w*\s*\*?\s*(\w+)(?:\[[^\]]*\])?\s*\)\s*)?(\w+)")
_HTTP_CALL = re.compile(
    r"\b(http\.(?:Get|Post|PostForm|Head)|\w+\.(?:Get|Post|PostForm|Head|Do))\("
)
_BODY_CLOSE = re.compile(r"\.Body\.Close\(\)")


def http_calls_without_close(reader: SourceReader, files: set[str]
                             ) -> list[tuple[str, str, int, str]]:
    """HTTP client calls in functions that never close a response body.

    Returns (function, file, line, call) for each ``http.Get(``/``client.Do(``... in a Go
    function whose text has no ``.Body.Close()``. Used as evidence for where the user's
    code comes in when the transport goroutines of unclosed bodies pile up (their own
    stacks only show net/http). ``function`` is ``main.checkHealth`` style when the file
    is in package main, else ``pkg.Func``.
    """
    found: list[tuple[str, str, int, str]] = []
    for path in sorted(files):
        lines = reader.lines_of(path)
        if not lines:
            continue
        package = next((ln.split()[1] for ln in lines if ln.startswith("package ")), "main")
        start = [i for i, ln in enumerate(lines) if ln.startswith("func ")]
        for k, i in enumerate(start):
            end = start[k + 1] if k + 1 < len(start) else len(lines)
            body = [ln.split("//", 1)[0] for ln in lines[i:end]]
            if any(_BODY_CLOSE.search(ln) for ln in body):
                continue
            m = _FUNC.match(lines[i])
            if not m:
                continue
            recv, name = m.group(1), m.group(2)
            func = f"{package}.(*{recv}).{name}" if recv else f"{package}.{name}"
            for j, code in enumerate(body):
                call = _HTTP_CALL.search(code)
                if call and ("resp" in code or "http." in call.group(1)):
                    found.append((func, path, i + j + 1, call.group(1)))
                    break
    return found
