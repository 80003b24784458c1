"""What a goroutine is doing: user vs standard-library frames, its category, benign shapes.

Categories come from the wait reason when the dump has one (debug=2), else from the
frames (runtime.chansend1, sync.(*Mutex).Lock, ...), else — Go 1.27 trims the runtime
frames of blocked goroutines in its profiles — from the source line of the top frame.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from gopark.model import Frame

# Top-level import paths of the standard library (a module path always has a dot in its
# first element, so anything else that is not listed here is the user's own code).
STDLIB_ROOTS = frozenset((
    "archive", "bufio", "builtin", "bytes", "cmp", "compress", "container", "context",
    "crypto", "database", "debug", "embed", "encoding", "errors", "expvar", "flag", "fmt",
    "go", "hash", "html", "image", "index", "internal", "io", "iter", "log", "maps", "math",
    "mime", "net", "os", "path", "plugin", "reflect", "regexp", "runtime", "slices", "sort",
    "strconv", "strings", "structs", "sync", "syscall", "testing", "text", "time", "unicode",
    "unique", "unsafe", "vendor", "weak",
))

# Wait reasons as Go 1.21–1.27 print them, mapped to categories. "semacquire" (older Go
# for every sync primitive) is resolved from the frames.
STATE_CATEGORY = {
    "chan send": "chan-send",
    "chan receive": "chan-recv",
    "chan send (nil chan)": "nil-chan",
    "chan receive (nil chan)": "nil-chan",
    "select": "select",
    "select (no cases)": "nil-chan",
    "sync.Mutex.Lock": "mutex",
    "sync.RWMutex.Lock": "rwmutex",
    "sync.RWMutex.RLock": "rwmutex",
    "sync.WaitGroup.Wait": "waitgroup",
    "sync.Cond.Wait": "cond",
    "sleep": "sleep",
    "IO wait": "io-wait",
    "syscall": "syscall",
}

# Goroutine states that are not parked (runtime.gopark) at all.
NOT_PARKED = frozenset({"running", "runnable", "syscall", "dead", "idle", "copystack", "preempted"})

# Frame functions that name a category, most specific first: RWMutex.Lock calls
# Mutex.Lock, so the RWMutex rule must win.
FRAME_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("io-wait", ("internal/poll.runtime_pollWait",)),
    ("rwmutex", ("sync.(*RWMutex).Lock", "sync.(*RWMutex).RLock")),
    ("mutex", ("sync.(*Mutex).Lock", "sync.(*Mutex).lockSlow", "internal/sync.(*Mutex).Lock",
               "internal/sync.(*Mutex).lockSlow", "sync.runtime_SemacquireMutex",
               "internal/sync.runtime_SemacquireMutex")),
    ("waitgroup", ("sync.(*WaitGroup).Wait", "sync.runtime_SemacquireWaitGroup")),
    ("cond", ("sync.(*Cond).Wait", "sync.runtime_notifyListWait")),
    ("chan-send", ("runtime.chansend1", "runtime.chansend")),
    ("chan-recv", ("runtime.chanrecv1", "runtime.chanrecv2", "runtime.chanrecv")),
    ("select", ("runtime.selectgo",)),
    ("nil-chan", ("runtime.block",)),
    ("sleep", ("time.Sleep", "runtime.timeSleep")),
    ("syscall", ("syscall.Syscall", "syscall.Syscall6", "syscall.RawSyscall",
                 "syscall.RawSyscall6", "syscall.syscall", "internal/runtime/syscall.Syscall6",
                 "runtime.cgocall", "os/signal.signal_recv")),
)

# Categories where goroutines wait on another goroutine (a leak when nobody comes).
BLOCKING = frozenset({"chan-send", "chan-recv", "select", "nil-chan", "mutex", "rwmutex",
                      "waitgroup", "cond", "ticker", "io-wait", "http-body-not-closed"})

READ_LOOP = "net/http.(*persistConn).readLoop"
WRITE_LOOP = "net/http.(*persistConn).writeLoop"

SourceBlock = Callable[[Frame, int], "list[str]"]
"""Returns up to n source lines starting at a frame's line (for select blocks)."""


@lru_cache(maxsize=1 << 16)
def package_of(function: str) -> str:
    """The import path of a Go function name: ``net/http.(*conn).serve`` → ``net/http``."""
    slash = function.rfind("/")
    dot = function.find(".", slash + 1)
    return function if dot < 0 else function[:dot]


@lru_cache(maxsize=1 << 16)
def is_runtime(function: str, *, with_internal: bool = False) -> bool:
    """Frames of the runtime itself (hidden in debug=2 dumps, trimmed in Go 1.27 profiles).

    ``with_internal`` also counts the standard library's ``internal/`` packages, for
    allocation sites: helpers such as internal/bytealg.MakeNoZero (under strings.Builder)
    allocate on behalf of their caller. Waits keep them, as internal/poll and internal/sync
    are where io-wait and mutex goroutines park.
    """
    pkg = package_of(function)
    if with_internal and pkg.startswith("internal/"):
        return True
    return pkg == "runtime" or pkg.startswith(("runtime/internal/", "internal/runtime/"))


@lru_cache(maxsize=1 << 16)
def is_stdlib(function: str) -> bool:
    """True for standard-library (and runtime) frames; ``main`` and module code are user code."""
    pkg = package_of(function)
    root = pkg.split("/", 1)[0]
    return root in STDLIB_ROOTS and pkg != "main"


def first_user_index(frames: Sequence[Frame]) -> int | None:
    """Index of the innermost frame in the user's code, or None for stdlib-only stacks."""
    for i, f in enumerate(frames):
        if not is_stdlib(f.function):
            return i
    return None


def location(frames: Sequence[Frame]) -> Frame | None:
    """The frame a finding points at (design.md): the first frame in the user's code; for
    stdlib-only stacks the goroutine's outermost non-runtime frame (e.g. ``readLoop``),
    which names the shape."""
    i = first_user_index(frames)
    if i is not None:
        return frames[i]
    for f in reversed(frames):
        if not is_runtime(f.function):
            return f
    return frames[-1] if frames else None


def boundary_frame(frames: Sequence[Frame]) -> Frame | None:
    """The stdlib function the user's code called to block (``sync.(*Mutex).Lock``,
    ``net.(*conn).Read``), or None when the user frame blocks itself (channel ops)."""
    i = first_user_index(frames)
    if not i:
        return None
    f = frames[i - 1]
    return None if is_runtime(f.function) else f


def category_from_frames(frames: Sequence[Frame]) -> str | None:
    """Category from the frames above the first user frame, or None if they say nothing."""
    i = first_user_index(frames)
    top = {f.function for f in (frames if i is None else frames[: i + 1])}
    for category, names in FRAME_RULES:
        if any(n in top for n in names):
            return category
    return None


_COMMENT = re.compile(r"//.*$")
_EMPTY_SELECT = re.compile(r"^select\s*\{\s*\}")
_SELECT = re.compile(r"^select\s*\{")
_RANGE = re.compile(r"^for\b.*\brange\b")
_SEND = re.compile(r"[\w)\]]\s*<-")
_RECV = re.compile(r"(^|[=(,:\s])<-")
_TICKER = re.compile(r"\b\w+\.C\b|time\.Tick\(")


def category_from_source(line: str) -> str | None:
    """Category from a Go source line where a goroutine is blocked, or None."""
    text = _COMMENT.sub("", line).strip()
    if _EMPTY_SELECT.match(text):
        return "nil-chan"
    if _SELECT.match(text):
        return "select"
    if _RANGE.match(text):
        return "chan-recv"
    if _SEND.search(text):
        return "chan-send"
    if _RECV.search(text):
        return "chan-recv"
    if ".RLock()" in text:
        return "rwmutex"
    if ".Lock()" in text:
        return "mutex"
    if "time.Sleep(" in text:
        return "sleep"
    return None


def is_ticker_wait(lines: Sequence[str]) -> bool:
    """Whether a blocked receive/select (its source lines, first the blocked one) waits on a
    ticker/timer channel only: ``for range t.C``, ``<-t.C`` or a select whose only receive is
    a ticker."""
    if not lines:
        return False
    first = _COMMENT.sub("", lines[0]).strip()
    if not _SELECT.match(first):
        return bool(_TICKER.search(first))
    # A select: look at its cases, up to the closing brace at the select's indentation.
    indent = len(lines[0]) - len(lines[0].lstrip())
    cases = []
    for raw in lines[1:]:
        stripped = raw.strip()
        if stripped.startswith("}") and len(raw) - len(raw.lstrip()) <= indent:
            break
        if stripped.startswith("case"):
            cases.append(stripped)
    return bool(cases) and all(_TICKER.search(c) for c in cases)


def categorize(state: str, frames: Sequence[Frame], source: SourceBlock | None = None) -> str:
    """Category of a goroutine (or a profile stack when ``state`` is empty).

    ``source`` reads source lines when the files are here; it lets Go 1.27's trimmed
    profiles be categorised and tells ticker loops from plain channel receives.
    """
    if state in ("running", "runnable"):
        return "unknown"
    category = STATE_CATEGORY.get(state) or category_from_frames(frames)
    # The innermost frame outside the runtime: the user's line for channel ops.
    top = next((f for f in frames if not is_runtime(f.function)), None)
    if category is None and source is not None and top is not None and top.line:
        block = source(top, 1)
        category = category_from_source(block[0]) if block else None
    category = category or "unknown"
    readloop_top = top is not None and top.function == READ_LOOP
    if readloop_top and category in ("select", "chan-recv", "unknown"):
        # readLoop parks in a select waiting for the caller to read/close the body
        return "http-body-not-closed"
    # Ticker channels: the user frame is the top frame for channel ops.
    if category in ("chan-recv", "select") and source is not None and top is not None \
            and top.line and is_ticker_wait(source(top, 30)):
        return "ticker"
    return category


def is_parked(state: str, category: str) -> bool:
    """Whether a goroutine sits in runtime.gopark (the seed's metric); profile stacks carry
    no state, so their category decides."""
    if state:
        return state not in NOT_PARKED
    return category not in ("unknown", "syscall")


# Frames of pprof writing a profile (the request gopark itself makes). Not all of
# runtime/pprof: pprof.Do wraps the user's own labelled code, which may leak.
PPROF_WRITERS = (
    "net/http/pprof.",
    "runtime/pprof.writeGoroutine",
    "runtime/pprof.writeRuntimeProfile",
    "runtime/pprof.(*Profile).WriteTo",
    "runtime/pprof.profileWriter",
    "runtime/pprof.writeHeap",
    "runtime/pprof.writeProfileInternal",
)


def benign_shape(frames: Sequence[Frame], category: str, created_by: Frame | None,
                 goroutine_id: int | None = None) -> str | None:
    """Why a stack is a known idle shape every Go program has, or None.

    Pool and keep-alive pairing rules need the whole snapshot and live in inventory.
    """
    names = [f.function for f in frames]
    has = set(names).__contains__
    if not frames:
        return "runtime worker (its stack is entirely inside the runtime)"
    if any(n.startswith(PPROF_WRITERS) for n in names):
        return "the pprof handler serving this very request"
    if has("os/signal.signal_recv") or has("os/signal.loop"):
        return "signal.Notify loop"
    if all(is_runtime(n) for n in names) or (
        created_by is not None and is_runtime(created_by.function)
    ):
        return "runtime worker"
    if any(n.endswith(").Accept") or n.endswith(").accept") for n in names) and \
            category in ("io-wait", "syscall", "unknown"):
        return "accept loop"
    if has("net/http.(*conn).serve") and category == "io-wait":
        return "idle HTTP server connection (keep-alive)"
    if any(n.startswith("net/http.(*connReader).") and "ackgroundRead" in n for n in names):
        return "HTTP server connection watching for the client going away"
    if has(READ_LOOP) and category == "io-wait":
        return "idle keep-alive HTTP client connection"
    main = has("runtime.main") or (goroutine_id == 1 and created_by is None)
    if main and category in ("nil-chan", "select", "chan-recv", "sleep", "waitgroup"):
        return "the main goroutine waiting for the program to end"
    return None
