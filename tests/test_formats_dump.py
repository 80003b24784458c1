"""parse_dump on dumps and tracebacks written by real Go programs (Go 1.21-1.27).

Every input here is made by running a fixture program (tests/goprograms) and taking its
goroutine?debug=2 dump, goroutineleak?debug=2 dump, panic traceback or SIGQUIT
traceback; the damaged-input tests cut or alter such real dumps.
"""

from __future__ import annotations

import functools
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import gofixtures
import pytest
from dumpwait import settle
from gopark.demo.goprocess import GoProcess, go_env
from gopark.errors import InputError
from gopark.formats.dump import parse_dump
from gopark.model import Goroutine, Snapshot

VERSIONS = ["1.21", "1.24", "1.27"]
N = 40  # leaky requests each fixture runs before it is ready
SEND_MAIN = gofixtures.GOPROGRAMS / "sendaftertimeout" / "main.go"


def source_line(path: Path, snippet: str) -> int:
    """Line number of the first line of ``path`` that contains ``snippet``."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if snippet in line:
            return number
    raise AssertionError(f"{snippet!r} not in {path}")


SEND_LINE = source_line(SEND_MAIN, "result <- slowLookup(id)")
GO_LINE = source_line(SEND_MAIN, "go func() {")


def only(snapshots: list[Snapshot]) -> Snapshot:
    assert len(snapshots) == 1, [len(s.goroutines) for s in snapshots]
    return snapshots[0]


def senders(snapshot: Snapshot) -> list[Goroutine]:
    """The goroutines blocked in sendaftertimeout's leaky send."""
    return [g for g in snapshot.goroutines
            if any(f.function == "main.fetch.func1" for f in g.frames)]


def functions(g: Goroutine) -> list[str]:
    return [f.function for f in g.frames]


# -- inputs from real programs, made once per module ----------------------------------


@functools.cache
def debug2(name: str, version: str, n: int = N) -> bytes:
    with gofixtures.run(name, version, ["-n", str(n)]) as p:
        return settle(p)


@functools.cache
def leak_dumps(version: str, experiment: str = "") -> tuple[bytes, bytes]:
    """(goroutineleak?debug=2, goroutine?debug=2 taken after it) of sendaftertimeout."""
    with gofixtures.run("sendaftertimeout", version, ["-n", str(N)], experiment=experiment) as p:
        settle(p)
        leak = gofixtures.fetch(p, "goroutineleak?debug=2")
        return leak, gofixtures.fetch(p, "goroutine?debug=2")


@functools.cache
def crash_traceback(version: str, traceback: str) -> bytes:
    """stderr of sendaftertimeout panicking (-crash) under GOTRACEBACK=traceback."""
    return gofixtures.stderr_of_crash("sendaftertimeout", version, ["-n", str(N), "-crash"],
                                      env={"GOTRACEBACK": traceback})


@functools.cache
def sigquit_traceback(version: str, traceback: str, godebug: str = "") -> bytes:
    """stderr of sendaftertimeout killed by SIGQUIT under GOTRACEBACK=traceback."""
    env = {"GOTRACEBACK": traceback}
    if godebug:
        env["GODEBUG"] = godebug
    with gofixtures.run("sendaftertimeout", version, ["-n", str(N)], env=env) as p:
        settle(p)
        p.signal(signal.SIGQUIT)
        p.wait(60)
        return p.stderr_text().encode()


@functools.cache
def bubble_dump(version: str) -> bytes:
    """stdout of the bubbledump test binary: a debug=2 dump taken inside a synctest bubble."""
    go = str(gofixtures.go_binary(version))
    out = gofixtures.CACHE / "bin" / f"bubbledump-{gofixtures.GO_VERSIONS[version]}.test"
    env = go_env(go, {"GOCACHE": str(gofixtures.CACHE / "gocache")})
    subprocess.run([go, "test", "-c", "-o", str(out), "./bubbledump"],
                   cwd=gofixtures.GOPROGRAMS, env=env, check=True, capture_output=True)
    run = subprocess.run([str(out), "-test.run", "TestDump"], capture_output=True, timeout=120,
                         check=True)
    return run.stdout


# -- goroutine?debug=2 ------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_debug2_dump_of_send_after_timeout(version: str) -> None:
    data = debug2("sendaftertimeout", version)
    snap = only(parse_dump(data, "dump.txt"))
    assert snap.form == "debug2" and snap.profile == "goroutine" and snap.source == "dump.txt"
    ids = [g.id for g in snap.goroutines]
    assert len(ids) == len(set(ids))

    leaked = senders(snap)
    assert len(leaked) == N
    for g in leaked:
        assert g.state == "chan send" and g.wait_minutes == 0 and not g.leaked
        top = g.frames[0]
        assert (top.function, Path(top.file), top.line) == \
            ("main.fetch.func1", SEND_MAIN, SEND_LINE)
        assert g.created_by is not None
        assert (g.created_by.function, g.created_by.line) == ("main.fetch", GO_LINE)
        # each was started by its own request goroutine, which has returned since
        assert g.creator_id is not None and g.creator_id not in ids
        assert len(g.args) == len(g.frames) and g.args[0] == ""
    assert len({g.creator_id for g in leaked}) == N
    # frames are interned: one object per distinct frame
    assert len({id(g.frames[0]) for g in leaked}) == 1
    assert len({id(g.created_by) for g in leaked}) == 1

    assert not any(g.elided for g in snap.goroutines)
    # the dump's writer is running; on a busy machine another goroutine may be too
    running = [g for g in snap.goroutines if g.state == "running"]
    writers = [g for g in running if "runtime/pprof.writeGoroutineStacks" in functions(g)]
    assert len(writers) == 1 and len(running) <= 3
    main = next(g for g in snap.goroutines if g.id == 1)
    assert main.state == "select (no cases)" and main.created_by is None
    assert functions(main)[-1] == "main.main"
    # the pprof server's accept loop, created in goroutine 1: an IO wait with arguments (or,
    # when the dump catches it back in accept(2) after taking the dump's own connection,
    # in a syscall; or, about 1 dump in 100, runnable on its way back from Accept to
    # Server.Serve): the state is what its header says
    [accept] = [g for g in snap.goroutines
                if functions(g)[-1:] == ["goparkfixtures/harness.Run.func1"]]
    assert accept.creator_id == 1 and "net/http.(*Server).Serve" in functions(accept)
    header = re.search(rb"(?m)^goroutine %d \[([^\]]*)\]:$" % accept.id, data)
    assert header and accept.state == header[1].decode() in ("IO wait", "syscall", "runnable")
    assert accept.args[0].startswith("0x")


@pytest.mark.parametrize("version", ["1.21", "1.27"])
def test_debug2_mutex_pileup(version: str) -> None:
    snap = only(parse_dump(debug2("mutexpileup", version), "mutex.txt"))
    queued = [g for g in snap.goroutines if "main.(*cache).get" in functions(g)]
    assert len(queued) == N  # refresh holds the lock before the first request starts
    # Go 1.21 calls this wait "sync.Mutex.Lock" already (it was "semacquire" before 1.20)
    assert {g.state for g in queued} == {"sync.Mutex.Lock"}
    holder = [g for g in snap.goroutines if "main.(*cache).refresh" in functions(g)]
    assert len(holder) == 1 and holder[0].state == "IO wait"
    # (*cache).get(key): the second argument word is the request's own key
    keys = [g.args[functions(g).index("main.(*cache).get")].split(", ") for g in queued]
    assert all(len(k) == 2 and k[1].startswith("0x") for k in keys)
    if version == "1.27":  # Go 1.21 prints register arguments it no longer has as 0x0?
        assert len({int(k[1].rstrip("?"), 16) for k in keys}) == len(queued)


def test_many_goroutines_in_few_shapes() -> None:
    """manygoroutines (the benchmark program) at 5,000: every shape counted, argument
    values kept per goroutine while stacks of one shape share their frames."""
    snap = only(parse_dump(debug2("manygoroutines", "1.27", 5000), "many.txt"))
    states = Counter(g.state for g in snap.goroutines)
    assert states["chan send"] == 2000
    assert states["sync.Mutex.Lock"] == 1000
    assert states["chan receive"] == 1000 + 1  # and the one 300 calls deep
    assert states["sleep"] == 500
    assert states["sync.WaitGroup.Wait"] == 500
    # the runtime prints 50 inner and 50 outer frames of a deep stack, eliding the rest
    [cut] = [g for g in snap.goroutines if g.elided]
    assert len(cut.frames) == 100 and set(functions(cut)) == {"main.deepWait"}
    assert cut.created_by is not None and cut.created_by.function == "main.main.func1"
    deep = [g for g in snap.goroutines if g.state == "chan receive" and g is not cut]
    assert all(functions(g)[:7] == ["main.deepWait"] * 7 for g in deep)
    assert len({g.frames for g in deep}) == 1
    # each waits on a channel of its own: the argument text differs between goroutines
    assert len({g.args for g in deep}) > 1
    assert all(len(g.args) == len(g.frames) for g in deep)


# -- goroutineleak?debug=2 ----------------------------------------------------------------


@pytest.mark.parametrize(("version", "experiment"), [("1.27", ""),
                                                      ("1.26", "goroutineleakprofile")])
def test_goroutineleak_debug2(version: str, experiment: str) -> None:
    leak, after = leak_dumps(version, experiment)
    snap = only(parse_dump(leak, "leak.txt"))
    assert snap.profile == "goroutineleak"
    leaked = [g for g in snap.goroutines if g.leaked]
    sends = [g for g in leaked if g.frames[0].function == "main.fetch.func1"]
    assert len(sends) == N and {g.state for g in sends} == {"chan send"}
    # Go 1.26 also calls the harness's final `select {}` leaked (nothing can wake it)
    assert {g.state for g in leaked if g not in sends} <= {"select (no cases)"}
    # the dump holds the other goroutines too, not marked
    assert len(snap.goroutines) > len(leaked)
    assert not any(g.leaked for g in snap.goroutines if g.state in ("running", "IO wait"))
    # a plain goroutine dump is not the leak profile, even when it still shows the marks
    assert only(parse_dump(after, "after.txt")).profile == "goroutine"


# -- tracebacks -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.21", "1.27"])
@pytest.mark.parametrize("traceback", ["all", "system"])
def test_panic_traceback(version: str, traceback: str) -> None:
    text = crash_traceback(version, traceback)
    assert b"panic: gopark-fixture: crash requested" in text
    snap = only(parse_dump(text, "stderr.log"))
    first = snap.goroutines[0]
    assert first.id == 1 and first.state == "running"
    assert "goparkfixtures/harness.Run" in functions(first)
    # the panic comes right after "ready": on a loaded machine a few workers may still
    # sleep in slowLookup, so only those already sending are checked for their stack
    leaked = [g for g in senders(snap) if g.state == "chan send"]
    assert len(senders(snap)) == N and len(leaked) >= N // 2
    if traceback == "system":
        # runtime frames and runtime goroutines are shown; frames carry fp/sp/pc
        assert all(functions(g)[0] == "runtime.gopark" for g in leaked)
        assert all(functions(g)[-1] == "runtime.goexit" for g in leaked)
        assert any(g.state == "force gc (idle)" for g in snap.goroutines)
        assert all(g.frames[functions(g).index("main.fetch.func1")].line == SEND_LINE
                   for g in leaked)
    else:
        assert all(functions(g) == ["main.fetch.func1"] for g in leaked)
        assert not any("runtime.gopark" in functions(g) for g in snap.goroutines)


@pytest.mark.parametrize("version", ["1.21", "1.27"])
def test_sigquit_with_ancestors(version: str) -> None:
    text = sigquit_traceback(version, "system", "tracebackancestors=5")
    assert text.startswith(b"SIGQUIT: quit")
    snap = only(parse_dump(text, "stderr.log"))
    # the signal arrives on a thread's g0, shown as goroutine 0 [idle]
    assert snap.goroutines[0].id == 0 and snap.goroutines[0].state == "idle"
    leaked = senders(snap)
    assert len(leaked) == N
    for g in leaked:
        # who started the goroutine, and who started that one: the request goroutine,
        # itself started by the harness's main goroutine
        assert [a[0] for a in g.ancestors] == [g.creator_id, 1]
        assert all(a[1] and a[1][-1].function == "runtime.goexit" for a in g.ancestors)
        assert any(f.function == "goparkfixtures/harness.Run" for f in g.ancestors[1][1])
        assert g.created_by is not None and g.created_by.function == "main.fetch"


def test_sigquit_crash_threads_make_one_dump() -> None:
    """GOTRACEBACK=crash prints every thread's signal frame, separated by '-----'."""
    text = sigquit_traceback("1.27", "crash")
    assert text.count(b"\n-----\n") >= 1 and text.count(b"SIGQUIT: quit") >= 2
    snap = only(parse_dump(text, "stderr.log"))
    assert len(senders(snap)) == N
    threads = [g for g in snap.goroutines if g.id == 0]
    assert len(threads) == text.count(b"SIGQUIT: quit")
    ids = [g.id for g in snap.goroutines if g.id]
    assert len(ids) == len(set(ids))


# -- marks only some programs have ----------------------------------------------------------


@pytest.mark.parametrize("version", ["1.25", "1.27"])
def test_synctest_bubble_and_locked_thread(version: str) -> None:
    snap = only(parse_dump(bubble_dump(version), "bubble.txt"))
    by_function = {g.frames[0].function.rsplit(".", 1)[-1]: g for g in snap.goroutines
                   if g.frames and "bubbledump" in g.frames[0].function}
    receivers = [g for g in snap.goroutines
                 if g.frames and g.frames[0].function.endswith("bubbledump.bubbleReceiver")]
    assert len(receivers) == 3
    bubble = receivers[0].bubble
    assert bubble is not None
    for g in receivers:
        assert (g.state, g.durable, g.bubble) == ("chan receive", True, bubble)
    sleeper = next(g for g in snap.goroutines if "goparkfixtures/bubbledump.bubbleSleeper"
                   in functions(g))
    assert (sleeper.state, sleeper.durable, sleeper.bubble) == ("sleep", True, bubble)
    waiter = next(g for g in snap.goroutines if "goparkfixtures/bubbledump.bubbleWaiter"
                  in functions(g))
    assert (waiter.state, waiter.durable) == ("sync.WaitGroup.Wait", True)
    locked = by_function["lockedWaiter"]
    assert locked.locked_to_thread and locked.bubble is None and not locked.durable
    assert locked.state == "chan receive"
    # the dump is followed directly by the test's "PASS": not a goroutine, not an error,
    # and no cut either
    assert all(g.bubble in (None, bubble) for g in snap.goroutines)
    assert not any(g.elided for g in snap.goroutines)


@pytest.fixture(scope="module")
def long_waiter() -> Iterator[tuple[GoProcess, float, float]]:
    """sendaftertimeout started when this module starts, so that by the time the test
    that needs it runs, its leaked goroutines have (nearly) waited a minute. Yields the
    process and the monotonic times just before and just after the GC that stamped them."""
    with gofixtures.run("sendaftertimeout", "1.27", ["-n", "3"]) as p:
        # The runtime stamps a goroutine's wait start only when a GC scans it, and clears
        # the stamp when the goroutine runs again: force one once all three are blocked in
        # their send, not while they still sleep in slowLookup.
        settle(p)
        before_gc = time.monotonic()
        gofixtures.fetch(p, "heap?gc=1")
        yield p, before_gc, time.monotonic()


@pytest.fixture(scope="module", autouse=True)
def _start_long_waiter_early(long_waiter: tuple[GoProcess, float, float]) -> None:
    return None


def test_wait_minutes(long_waiter: tuple[GoProcess, float, float]) -> None:
    p, before_gc, after_gc = long_waiter
    time.sleep(max(0.0, 62 - (time.monotonic() - after_gc)))
    gofixtures.fetch(p, "heap?gc=1")  # measured: minutes show only after a GC since then
    start = time.monotonic()
    snap = only(parse_dump(gofixtures.fetch(p, "goroutine?debug=2"), "dump.txt"))
    end = time.monotonic()
    leaked = senders(snap)
    assert len(leaked) == 3
    # The stamp is the GC's start, between before_gc and after_gc; the dump was written
    # between start and end. On a loaded machine the module's other tests can take more
    # than a minute too: the wait is whole minutes in that range.
    low, high = int((start - after_gc) // 60), int((end - before_gc) // 60)
    assert all(g.state == "chan send" and low <= g.wait_minutes <= high for g in leaked), \
        ([g.wait_minutes for g in leaked], low, high)
    assert all(g.wait_minutes >= 1 for g in leaked)


# -- logs with several dumps -------------------------------------------------------------


def test_log_with_several_dumps_and_text_around() -> None:
    first = debug2("sendaftertimeout", "1.27")
    second = debug2("mutexpileup", "1.27")
    crash = crash_traceback("1.21", "all")
    log = (b"gopark-fixture listening 127.0.0.1:6060\ngopark-fixture ready\n"
           + first  # goroutine?debug=2 ends without a blank line ...
           + second  # ... so a second dump appended to the file follows directly
           + b"\n2026/11/27 08:00:00 http: Accept error: accept tcp: too many open files\n"
           + crash
           + b"exit status 2\n")
    snaps = parse_dump(log, "service.log")
    assert [s.source for s in snaps] == ["service.log"] * 3
    one, two, three = snaps
    assert len(senders(one)) == N
    assert len(one.goroutines) == len(only(parse_dump(first, "a")).goroutines)
    assert len(two.goroutines) == len(only(parse_dump(second, "b")).goroutines)
    assert sum("main.(*cache).get" in functions(g) for g in two.goroutines) == N
    assert len(senders(three)) == N and three.goroutines[0].state == "running"


# -- damaged input -----------------------------------------------------------------------


def real_lines() -> list[str]:
    return debug2("sendaftertimeout", "1.27").decode().split("\n")


def test_missing_source_line_is_named() -> None:
    lines = real_lines()
    k = next(i for i, line in enumerate(lines) if line == "main.fetch.func1()")
    del lines[k + 1]
    with pytest.raises(InputError) as e:
        parse_dump("\n".join(lines).encode(), "cut.txt")
    message = str(e.value)
    assert message.startswith(
        f"cut.txt: line {k + 2}: expected the source line of main.fetch.func1")
    assert "\n" not in message


def test_source_line_without_its_function_is_named() -> None:
    lines = real_lines()
    k = next(i for i, line in enumerate(lines) if line == "main.fetch.func1()")
    del lines[k]
    with pytest.raises(InputError, match=rf"^cut.txt: line {k + 1}: expected a function call"):
        parse_dump("\n".join(lines).encode(), "cut.txt")


def test_damaged_header_is_named() -> None:
    lines = real_lines()
    k = next(i for i, line in enumerate(lines) if line.endswith("[chan send]:"))
    lines[k] = lines[k].replace("]:", ":")
    with pytest.raises(InputError, match=rf"^bad.txt: line {k + 1}: expected a goroutine header"):
        parse_dump("\n".join(lines).encode(), "bad.txt")


def test_unknown_status_detail_is_named() -> None:
    lines = real_lines()
    k = next(i for i, line in enumerate(lines) if line.endswith("[chan send]:"))
    lines[k] = lines[k].replace("[chan send]", "[chan send, 3 fortnights]")
    with pytest.raises(InputError, match=rf"^bad.txt: line {k + 1}: expected a goroutine status"):
        parse_dump("\n".join(lines).encode(), "bad.txt")


def test_no_goroutine_is_an_error() -> None:
    with pytest.raises(InputError, match=r"^app.log: line 1: no goroutine"):
        parse_dump(b"gopark-fixture listening 127.0.0.1:6060\ngopark-fixture ready\n", "app.log")
    with pytest.raises(InputError, match=r"no goroutine"):
        parse_dump(b"", "empty.txt")


@pytest.mark.parametrize("keep", [0.3, 0.5, 0.77, 0.999])
def test_dump_cut_anywhere_parses_what_is_there(keep: float) -> None:
    """Go itself cuts dumps at 64 MB; a cut dump keeps every complete goroutine.

    Where a fraction of a live dump falls differs from run to run, so the dump is cut at
    every byte of the goroutine block around that fraction: inside its header, function
    names, arguments, file paths, line numbers, offsets and its "created by" line."""
    data = debug2("sendaftertimeout", "1.27")
    whole = only(parse_dump(data, "whole.txt"))
    at = int(len(data) * keep)
    start = data.rfind(b"\n\ngoroutine ", 0, at) + 2
    end = data.find(b"\n\ngoroutine ", at)
    end = len(data) if end < 0 else end + 2
    assert start > 2 and end - start > 50
    for k in range(start, end + 1):
        cut = data[:k]
        snap = only(parse_dump(cut, "cut.txt"))
        headers = re.findall(rb"(?m)^goroutine \d+ \[[^\]\n]*\]:", cut)
        assert len(snap.goroutines) == len(headers), k
        for g, w in zip(snap.goroutines[:-1], whole.goroutines[: len(headers) - 1], strict=True):
            assert (g.id, g.frames, g.created_by) == (w.id, w.frames, w.created_by), k
        last, same = snap.goroutines[-1], whole.goroutines[len(headers) - 1]
        assert last.id == same.id and last.frames == same.frames[: len(last.frames)], k


@pytest.mark.parametrize("after", [b"main.fetch.func1()\n", b"created by main.fetch in goroutine "])
def test_dump_cut_at_a_line_end(after: bytes) -> None:
    data = debug2("sendaftertimeout", "1.27")
    k = data.rindex(after) + len(after)
    if not after.endswith(b"\n"):
        k = data.index(b"\n", k) + 1  # the whole "created by" line, not its source line
    snap = only(parse_dump(data[:k], "cut.txt"))
    last = snap.goroutines[-1]
    assert last.elided and last.created_by is None and last.state == "chan send"
    assert not any(g.elided for g in snap.goroutines[:-1])


@pytest.mark.parametrize("line", [b"main.fetch.func1()\n", b"created by main.fetch in goroutine "])
def test_dump_cut_inside_a_line_number(line: bytes) -> None:
    """A cut "main.go:20 +0x46" reads "main.go:2": that frame is dropped, not kept wrong."""
    data = debug2("sendaftertimeout", "1.27")
    start = data.index(b"\n", data.rindex(line) + len(line) - 1) + 1  # the source line
    k = data.index(b".go:", start) + len(b".go:") + 1  # one digit of the line number
    last = only(parse_dump(data[:k], "cut.txt")).goroutines[-1]
    assert last.elided
    if line.startswith(b"created by"):
        assert last.created_by is None and last.frames[-1].function == "main.fetch.func1"
    else:
        assert all(f.function != "main.fetch.func1" for f in last.frames)


def test_binary_garbage_inside_a_dump() -> None:
    data = bytearray(debug2("sendaftertimeout", "1.27"))
    k = data.index(b"main.fetch.func1()")
    data[k : k + 30] = b"\xff\xfe\x00\x01" * 7 + b"\xff\xfe"  # over the frame's line break
    with pytest.raises(InputError, match=r"^bin.txt: line \d+: expected"):
        parse_dump(bytes(data), "bin.txt")


def test_crlf_line_endings() -> None:
    data = debug2("sendaftertimeout", "1.24")
    crlf = only(parse_dump(data.replace(b"\n", b"\r\n"), "windows.txt"))
    plain = only(parse_dump(data, "plain.txt"))
    assert [(g.id, g.frames, g.state) for g in crlf.goroutines] == \
        [(g.id, g.frames, g.state) for g in plain.goroutines]


def test_goroutine_labels_in_headers() -> None:
    """Go 1.27 prints pprof labels after the status (GODEBUG=tracebacklabels=1; a module
    that says go 1.21 has it off by default)."""
    with gofixtures.run("labeledwork", "1.27", ["-n", "12"],
                        env={"GODEBUG": "tracebacklabels=1"}) as p:
        data = settle(p)  # all three parked (the test names them)
    assert b"] {handler: report, tenant: t0}:" in data
    snap = only(parse_dump(data, "labels.txt"))
    parked = [g for g in snap.goroutines if "main.work" in functions(g)]
    assert sorted(g.labels["tenant"] for g in parked) == ["t0", "t1", "t2"]
    assert all(g.labels["handler"] == "report" and g.state == "chan receive" for g in parked)
    assert all(g.labels == {} for g in snap.goroutines if g not in parked)


@pytest.mark.parametrize("seed", range(4))
def test_mutated_dumps_never_escape_as_other_errors(seed: int) -> None:
    """Fuzzing with real material: random cuts, flips, dropped and repeated lines of real
    dumps and tracebacks give Snapshots or an InputError, nothing else."""
    import random

    rng = random.Random(seed)
    sources = [debug2("sendaftertimeout", "1.27"), crash_traceback("1.21", "system"),
               sigquit_traceback("1.27", "system", "tracebackancestors=5")]
    for _ in range(150):
        lines = rng.choice(sources).split(b"\n")
        for _ in range(rng.randint(1, 4)):
            k = rng.randrange(len(lines))
            action = rng.randrange(4)
            if action == 0:
                del lines[k]
            elif action == 1:
                lines.insert(k, lines[rng.randrange(len(lines))])
            elif action == 2 and lines[k]:
                j = rng.randrange(len(lines[k]))
                lines[k] = lines[k][:j] + bytes([rng.randrange(256)]) + lines[k][j + 1 :]
            else:
                lines[k] = lines[k][: rng.randrange(len(lines[k]) + 1)]
        data = b"\n".join(lines)
        try:
            snaps = parse_dump(data, "fuzz.txt")
        except InputError as e:
            assert str(e).startswith("fuzz.txt: line ") and "\n" not in str(e)
        else:
            assert snaps and all(s.goroutines for s in snaps)
