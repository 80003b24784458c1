"""Goroutine text dumps: /debug/pprof/goroutine?debug=2 and panic/SIGQUIT tracebacks.

The runtime writes them in runtime/traceback.go (goroutineheader, traceback2,
printcreatedby1, printAncestorTraceback) and runtime/signal_unix.go (signal headers,
register dumps, "-----" between the threads of a GOTRACEBACK=crash dump); source
lines start with a tab::

    goroutine 7 gp=0xc000007 m=nil [chan send (leaked), 15 minutes, locked to thread]: {k: v}
    main.worker(0xc000010000, {0x4a1b20?, 0x5})
        /src/app/main.go:42 +0x1d fp=0xc00004 sp=0xc00003 pc=0x4a1b3d
    ...3 frames elided...
    created by main.start in goroutine 1
        /src/app/main.go:40 +0x8f
    [originating from goroutine 1]:
    main.start(...)
        /src/app/main.go:40 +0x8f

One file may hold several dumps with other text around them (a log): each dump
becomes one Snapshot.

Speed: a 100,000-goroutine dump repeats a few stack shapes, so the text of a stack
(without its "created by" tail, whose goroutine id varies) is parsed once and reused,
and function and source lines are cached by their text.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Sequence
from typing import NamedTuple

from gopark.errors import InputError
from gopark.formats.gotext import FrameInterner, go_unquote, label_pairs
from gopark.model import Frame, Goroutine, Snapshot
from gopark.untrusted import printable

# One goroutine, found in a single pass of the regex engine (far faster than Python
# code per line): the header "goroutine N [gp=.. m=.. mp=..] [STATUS] [{labels}]:", the
# stack lines up to a blank line or the next header, and the usual "created by F in
# goroutine N" tail split off, because its goroutine id differs between otherwise equal
# stacks. The text must start and end with "\n" (see parse_dump).
_GOROUTINE = re.compile(
    r"(?<=\n)goroutine (\d+)(?: (?:gp|m|mp)=\S+)* \[([^\]\n]*)\]( \{[^\n]*\})?:[ \t]*\n"
    # stack lines up to a "created by" line, a header or a blank line (possessive: fast)
    r"((?:(?!goroutine \d|created by )[^\n]+\n)*+)"
    # the usual tail ending the stack, or else (old "created by F", ancestors, text)
    # the remaining lines up to a blank line or header
    r"(?:created by ([^\n]+?) in goroutine (\d+)\n(\t[^\n]*)\n(?=\n|\Z|goroutine \d)"
    r"|((?:(?!goroutine \d)[^\n]+\n)*?)(?=\n|\Z|goroutine \d))"
)
# The argument list at the end of a function call line. Arguments hold no parentheses
# (traceback.go printArgs), so the last "(" of the line opens them.
_CALL_ARGS = re.compile(r"\(([^()\n]*)\)\n")

# Something that starts like a header but is not one: damaged input.
_HEADER_LIKE = re.compile(r"^goroutine \d+ (?:gp=|\[)", re.M)

_RUNNING_ELSEWHERE = "\tgoroutine running on other thread; stack unavailable"
_ORIGINATING = "[originating from goroutine "
_LEAK_WRITER = "runtime/pprof.writeGoroutineLeak"
# Stack lines that stand alone: one of these last in a cut input is not itself cut.
_COMPLETE_LINES = ("...", _ORIGINATING, "non-Go function at pc=", _RUNNING_ELSEWHERE)

# Lines the runtime itself prints around goroutines in a traceback; any other text
# between goroutines means the dump ended (a log line, another program's output).
_TRACEBACK_TEXT = re.compile(
    r"""(?x)
      \t                                    # frame source lines, nested panics, indented values
    | -----$                                # between threads of a GOTRACEBACK=crash dump
    | panic:\ | fatal\ error:\ | fatal\ panic | \[signal\ | \[recovered | \[originating
    | (?:SIG[A-Z0-9]+|Signal\ \d+)(?::|$)   # signal header (SIGQUIT: quit)
    | PC=0x | signal\ arrived | instruction\ bytes: | runtime\ stack:$ | runtime:\
    | exit\ status\ \d+$ | created\ by\ | \.\.\. | non-Go\ function | stack\ trace\ unavailable
    | unexpected\ (?:fault\ address|signal|return\ pc)
    | [a-z][a-z0-9]{0,6}\ +0x[0-9a-f]+$     # register dump (rax    0x0)
    | [^\s(]\S*\(.*\)$                      # a frame's function call (runtime stack:)
    """
)
# Lines that start a new traceback (a second crash appended to the same file).
_NEW_TRACEBACK = re.compile(r"panic: |fatal error: |fatal panic|SIG[A-Z0-9]+: |Signal \d+$")

_STATUS_FLAGS = (" (leaked)", " (scan)", " (durable)")


class _Bad(Exception):
    """A stack line that is not what the format allows (index into the parsed lines)."""

    def __init__(self, index: int, expected: str, found: str) -> None:
        super().__init__(expected)
        self.index = index
        self.expected = expected
        self.found = found


class _Status(NamedTuple):
    state: str
    wait_minutes: int
    locked: bool
    leaked: bool
    durable: bool
    bubble: int | None


class _Stack(NamedTuple):
    frames: tuple[Frame, ...]
    args: tuple[str, ...]
    elided: bool
    created_by: Frame | None
    creator_id: int | None
    ancestors: tuple[tuple[int, tuple[Frame, ...]], ...]
    end: int
    """Index of the first line that is not part of the stack (``lines`` if all are)."""
    lines: int
    """How many lines were parsed."""


def _split_location(line: str) -> tuple[str, int] | None:
    """``\\t/src/x.go:42 +0x1d fp=.. sp=.. pc=..`` -> (``/src/x.go``, 42), or None."""
    s = line[1:]
    for marker in (" fp=", " pc="):
        j = s.find(marker)
        if j >= 0:
            s = s[:j]
    j = s.rfind(" +0x")
    if j >= 0:
        s = s[:j]
    file, sep, num = s.rpartition(":")
    if not sep or not num.isdigit() or line[:1] != "\t":
        return None
    return file, int(num)


def _parse_status(text: str) -> _Status:
    """The part between the brackets of a header: ``chan send (leaked), 3 minutes, ...``."""
    parts = text.split(", ")
    state = parts[0]
    leaked = durable = locked = False
    wait = 0
    bubble: int | None = None
    stripped = True
    while stripped:
        stripped = False
        for flag in _STATUS_FLAGS:
            if state.endswith(flag):
                state = state[: -len(flag)]
                leaked = leaked or flag == " (leaked)"
                durable = durable or flag == " (durable)"
                stripped = True
    for part in parts[1:]:
        if part.endswith(" minutes") and part[:-8].isdigit():
            wait = int(part[:-8])
        elif part == "locked to thread":
            locked = True
        elif part.startswith("synctest bubble ") and part[16:].isdigit():
            bubble = int(part[16:])
        else:
            raise ValueError(f"unknown status detail {part!r}")
    if not state:
        raise ValueError("empty status")
    return _Status(printable(state), wait, locked, leaked, durable, bubble)


# One "key: value" of Go 1.27 traceback labels; quoted when not plain (traceback.go).
_LABEL = re.compile(r'("(?:[^"\\]|\\.)*"|[A-Za-z0-9./_]*): ("(?:[^"\\]|\\.)*"|[A-Za-z0-9./_]*)')


def _parse_header_labels(text: str) -> dict[str, str]:
    """Go 1.27 traceback labels ``{key: value, k: "quoted value"}`` -> dict."""
    labels: dict[str, str] = {}
    for m in label_pairs(text.strip()[1:-1], _LABEL, "bad label"):
        key, value = (go_unquote(t) if t.startswith('"') else t for t in m.groups())
        labels[key] = value
    return labels


class _DumpParser:
    """Parses one text into Snapshots; holds the caches that make big dumps fast."""

    def __init__(self, text: str, source: str, cut: bool) -> None:
        self.text = text
        self.source = source
        self.cut = cut
        """The input ended inside a line (a dump cut short, as Go cuts them at 64 MB)."""
        self.frames = FrameInterner()
        self.calls: dict[tuple[str, str], Frame | None] = {}  # (name, source line) -> frame
        self.locations: dict[str, tuple[str, int] | None] = {}
        self.stacks: dict[str, _Stack] = {}
        self.shapes: dict[str, _Stack] = {}  # stacks by their text without arguments
        self.statuses: dict[str, _Status] = {}
        self.args: dict[tuple[str, ...], tuple[str, ...]] = {}

    # -- errors -------------------------------------------------------------------------

    def _line_of(self, pos: int) -> int:
        return self.text.count("\n", 0, pos)  # the text starts with an added newline

    def _error(self, line: int, what: str) -> InputError:
        return InputError(self.source, f"line {line}", what)

    def _bad_line(self, header_pos: int, skip: int, bad: _Bad) -> InputError:
        """The error for a bad stack line: ``skip`` lines after the header, plus its index."""
        line = self._line_of(header_pos) + 1 + skip + bad.index
        return self._error(line, f"expected {bad.expected}, found {bad.found[:80]!r}")

    # -- stacks -------------------------------------------------------------------------

    def _location(self, line: str) -> tuple[str, int] | None:
        try:
            return self.locations[line]
        except KeyError:
            r = self.locations[line] = _split_location(line)
            return r

    def _frame(self, name: str, loc_line: str) -> Frame | None:
        """The frame of function ``name`` at source line ``loc_line`` (None if that line
        is no source line)."""
        key = (name, loc_line)
        try:
            return self.calls[key]
        except KeyError:
            loc = self._location(loc_line)
            frame = self.frames.get(name, loc[0], loc[1]) if loc is not None else None
            self.calls[key] = frame
            return frame

    def _parse_stack(self, lines: list[str], at_eof: bool) -> _Stack:
        """Frames, created-by and ancestors from the lines after a header.

        Stops at the first line that cannot continue a stack (text that follows the dump);
        raises _Bad for a line that breaks a frame in two. At the end of the input a cut
        last frame is dropped and the stack marked elided (Go cuts dumps at 64 MB).
        """
        frames: list[Frame] = []
        args: list[str] = []
        elided = False
        created_by: Frame | None = None
        creator_id: int | None = None
        ancestors: list[tuple[int, list[Frame]]] = []
        current = frames  # where frames go: the goroutine's own, or an ancestor's
        n = len(lines)
        i = 0
        # the input ends inside this stack's last line: that line (and the frame it
        # belongs to: a cut "net.go:196" reads as "net.go:1") cannot be trusted
        cut_line = n - 1 if at_eof and self.cut else -2  # -2: no line is cut
        while i < n:
            line = lines[i]
            if i == cut_line and not line.startswith(_COMPLETE_LINES):
                elided = True
                break
            if i + 1 == cut_line and (line.endswith(")") or line.startswith("created by ")):
                elided = True  # this frame's source line is the cut one
                break
            if line.endswith(")"):  # pkg.F(args): the common case first
                p = line.rfind("(")
                name = line[:p]
                frame = self._frame(name, lines[i + 1]) if i + 1 < n else None
                if frame is None:
                    if p <= 0 or " " in name:
                        if i == 0:
                            raise _Bad(i, "a stack frame (pkg.Function(args))", line)
                        break  # not a call: the stack ended, other text follows
                    if at_eof and i + 2 >= n:
                        elided = True  # the input ends before this frame's source line
                        break
                    found = lines[i + 1] if i + 1 < n else "end of stack"
                    raise _Bad(i + 1, f"the source line of {name} (\\tFILE:LINE +0xOFF)", found)
                current.append(frame)
                if current is frames:
                    args.append(line[p + 1 : -1])
                i += 2
            elif line.startswith("created by "):
                fn, sep, gid = line[11:].partition(" in goroutine ")
                frame = self._frame(fn, lines[i + 1]) if i + 1 < n else None
                if frame is None:
                    if at_eof and i + 2 >= n:
                        elided = True  # the input ends before the creator's source line
                        break
                    found = lines[i + 1] if i + 1 < n else "end of stack"
                    raise _Bad(i + 1, f"the source line of 'created by {fn}' (\\tFILE:LINE)", found)
                if not ancestors and created_by is None:
                    created_by = frame
                    creator_id = int(gid) if sep and gid.isdigit() else None
                i += 2
            elif line.startswith(_ORIGINATING) and line.endswith("]:"):
                gid = line[len(_ORIGINATING) : -2]
                if not gid.isdigit():
                    raise _Bad(i, "'[originating from goroutine N]:'", line)
                current = []
                ancestors.append((int(gid), current))
                i += 1
            elif line.startswith("...") and line.endswith("elided..."):
                elided = elided or current is frames
                i += 1
            elif line.startswith("non-Go function at pc="):
                current.append(self.frames.get(line, "", 0))
                if current is frames:
                    args.append("")
                i += 1
            elif line == _RUNNING_ELSEWHERE:
                i += 1
            elif line[:1] == "\t":
                raise _Bad(i, "a function call before this source line", line)
            elif i == 0:
                raise _Bad(i, "a stack frame (pkg.Function(args))", line)
            else:
                break  # the stack ended; what follows is other text
        return _Stack(
            tuple(frames), tuple(args), elided, created_by, creator_id,
            tuple((gid, tuple(fs)) for gid, fs in ancestors), i, n,
        )

    # -- gaps between goroutines ---------------------------------------------------------

    def _gap_kind(self, gap: str, pos: int) -> tuple[bool, bool, bool]:
        """(foreign, new_traceback, separator) for the text between two goroutines."""
        foreign = new = separator = False
        lines = gap.split("\n")
        # a header cut short by the end of the input is no damage in the middle
        cut = pos + len(gap) >= len(self.text) - 1
        for k, line in enumerate(lines):
            if not line.strip():
                continue
            if _HEADER_LIKE.match(line) and not (cut and not "".join(lines[k + 1 :]).strip()):
                where = self._line_of(pos) + k
                raise self._error(where, f"expected a goroutine header 'goroutine N [state]:', "
                                         f"found {line[:80]!r}")
            if line == "-----":
                separator = True
            elif _NEW_TRACEBACK.match(line):
                new = new or not separator
            elif not _TRACEBACK_TEXT.match(line):
                foreign = True
        return foreign, new, separator

    # -- the whole text -----------------------------------------------------------------

    def parse(self) -> list[Snapshot]:
        """Every dump in the text, one Snapshot each."""
        text = self.text
        matches = list(_GOROUTINE.finditer(text))
        if not matches:
            bad = _HEADER_LIKE.search(text)
            if bad:
                line = text[bad.start() : text.find("\n", bad.start())]
                raise self._error(self._line_of(bad.start()), "expected a goroutine header "
                                  f"'goroutine N [state]:', found {line[:80]!r}")
            raise self._error(1, "no goroutine in the input (expected a line like "
                                 "'goroutine 1 [running]:')")
        dumps = _Dumps(self)
        count = len(matches)
        for h, m in enumerate(matches):
            last = h + 1 == count
            g, extra = self._goroutine(m, last)
            dumps.add(g)
            # The text after this goroutine decides whether the next one continues the dump.
            end, following = m.end(), len(text) if last else matches[h + 1].start()
            if following - end == 1 and not extra:  # one blank line: the usual case
                dumps.split_before = False
                continue
            gap = extra + text[end:following]
            if not gap:  # the next header follows the stack directly: another dump
                dumps.split_before = True
            elif not gap.isspace():
                foreign, new, separator = self._gap_kind(gap, m.end() - len(extra))
                dumps.split_before = foreign or new
                dumps.crash_section = dumps.crash_section or separator
            else:
                dumps.split_before = False
        return dumps.finish()

    def _status(self, m: re.Match[str]) -> _Status:
        status_text = m.group(2)
        status = self.statuses.get(status_text)
        if status is None:
            try:
                status = self.statuses[status_text] = _parse_status(status_text)
            except ValueError as e:
                raise self._error(self._line_of(m.start()), "expected a goroutine status "
                                  f"like '[chan send, 5 minutes]': {e}") from None
        return status

    def _labels(self, m: re.Match[str]) -> dict[str, str]:
        try:
            return _parse_header_labels(m.group(3))
        except ValueError as e:
            raise self._error(self._line_of(m.start()),
                              f"expected labels '{{key: value, ...}}': {e}") from None

    def _new_stack(self, m: re.Match[str], head: str, at_eof: bool) -> _Stack:
        """The stack of a head text not seen before. Stacks that differ only in argument
        values (pointers, ids) are common: parse their shape once, take the arguments."""
        shape = _CALL_ARGS.sub("()\n", head)
        known = self.shapes.get(shape)
        if known is not None and not known.ancestors:
            args = _CALL_ARGS.findall(head)
            if len(args) == len(known.args):
                return _Stack(known.frames, self._shared_args(args), known.elided,
                              known.created_by, known.creator_id, (), known.end, known.lines)
        try:
            stack = self._parse_stack(head.split("\n")[:-1], at_eof)  # head ends with "\n"
        except _Bad as bad:
            raise self._bad_line(m.start(), 0, bad) from None
        stack = stack._replace(args=self._shared_args(stack.args))
        self.stacks[head] = stack
        self.shapes[shape] = stack
        return stack

    def _shared_args(self, args: Sequence[str]) -> tuple[str, ...]:
        """One tuple object per distinct argument list."""
        key = tuple(args)
        return self.args.setdefault(key, key)

    def _goroutine(self, m: re.Match[str], last: bool) -> tuple[Goroutine, str]:
        """The goroutine matched by ``m``, and the lines after its stack that are not part
        of it (text that follows a dump without a blank line)."""
        gid, status_text, labels_text, head, creator, creator_id, creator_line, more = m.groups()
        if more is not None:
            head += more
        status = self.statuses.get(status_text) or self._status(m)
        stack = self.stacks.get(head) or self._new_stack(m, head, last and creator is None)
        extra = ""
        created_by, cid, elided = stack.created_by, stack.creator_id, stack.elided
        if stack.end < stack.lines:
            # The stack ended early: the rest (and any "created by" matched after it) is text.
            extra = "\n".join(head.split("\n")[stack.end : -1]) + "\n"
            if creator is not None:
                extra += self.text[m.start(5) - len("created by ") : m.end()]
        elif creator is not None:
            if last and self.cut and m.end() >= len(self.text) - 1:
                elided = True  # the input ends inside the creator's source line
            elif (created_by := self._frame(creator, creator_line)) is not None:
                cid = int(creator_id)
            else:
                err = _Bad(stack.lines + 1, f"the source line of 'created by {creator}' "
                           "(\\tFILE:LINE)", creator_line)
                raise self._bad_line(m.start(), 0, err)
        g = Goroutine(
            stack.frames, int(gid), status.state, status.wait_minutes, status.locked,
            status.leaked, status.durable, status.bubble, stack.args, created_by, cid,
            elided, stack.ancestors, self._labels(m) if labels_text else {},
        )
        return g, extra

    def snapshot(self, goroutines: list[Goroutine]) -> Snapshot:
        """A dump's Snapshot; one written by the goroutineleak profile says so."""
        profile = "goroutine"
        for g in goroutines:
            if g.state == "running" and any(f.function == _LEAK_WRITER for f in g.frames):
                profile = "goroutineleak"
                break
        return Snapshot(source=self.source, form="debug2", goroutines=goroutines, profile=profile)


class _Dumps:
    """Collects goroutines into dumps: a new dump starts after foreign text, at a second
    crash, where a header follows a stack without a blank line (dumps appended to one
    file) or when a goroutine id repeats."""

    def __init__(self, parser: _DumpParser) -> None:
        self.parser = parser
        self.snapshots: list[Snapshot] = []
        self.current: list[Goroutine] = []
        self.index: dict[int, int] = {}  # goroutine id -> position in current
        self.split_before = False
        self.crash_section = False  # after "-----": threads of one GOTRACEBACK=crash dump

    def add(self, g: Goroutine) -> None:
        gid = g.id or 0
        repeated = gid != 0 and gid in self.index
        if self.current and (self.split_before or (repeated and not self.crash_section)):
            self._close()
            repeated = False
        if repeated:
            # A crash thread section repeats a goroutine that the first section could only
            # list as running elsewhere: keep the one with a stack.
            if not self.current[self.index[gid]].frames:
                self.current[self.index[gid]] = g
            return
        self.index[gid] = len(self.current)
        self.current.append(g)

    def _close(self) -> None:
        self.snapshots.append(self.parser.snapshot(self.current))
        self.current, self.index, self.crash_section = [], {}, False

    def finish(self) -> list[Snapshot]:
        self._close()
        return self.snapshots


def parse_dump(data: bytes, source: str) -> list[Snapshot]:
    """Goroutine dumps (goroutine?debug=2, goroutineleak?debug=2, panic and SIGQUIT
    tracebacks) in ``data``: one Snapshot per dump, in the order they appear.

    Raises InputError naming ``source`` and the line when the text is damaged or holds
    no goroutine at all.
    """
    text = data.decode("utf-8", errors="replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    # _GOROUTINE wants a newline before the first line and after the last; line numbers
    # in messages count the newlines before a position, which this makes 1-based.
    cut = bool(text) and not text.endswith("\n")
    text = "\n" + text + ("\n" if cut else "")
    # A big dump makes hundreds of thousands of objects and no reference cycles: the
    # cyclic GC would only rescan them again and again (a quarter of the parse time).
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        return _DumpParser(text, source, cut).parse()
    finally:
        if gc_was_on:
            gc.enable()
