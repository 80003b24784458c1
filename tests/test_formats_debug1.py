"""parse_debug1 on goroutine?debug=1 and goroutineleak?debug=1 from real programs,
checked against `go tool pprof -traces`, which reads the same text (symbolized with the
program's binary)."""

from __future__ import annotations

import functools
import os
import subprocess
from collections import Counter
from pathlib import Path

import gofixtures
import pytest
from dumpwait import settle
from gopark.errors import InputError
from gopark.formats.debug1 import UNKNOWN_FUNCTION, parse_debug1
from gopark.formats.dump import parse_dump
from gopark.model import Goroutine, Snapshot

N = 40
SEND_MAIN = gofixtures.GOPROGRAMS / "sendaftertimeout" / "main.go"
SEND_LINE = next(i for i, line in enumerate(SEND_MAIN.read_text().splitlines(), 1)
                 if "result <- slowLookup(id)" in line)


@functools.cache
def profiles(name: str, version: str, n: int = N) -> dict[str, bytes]:
    """goroutine?debug=1, goroutine?debug=2 and (Go 1.27) goroutineleak?debug=1."""
    with gofixtures.run(name, version, ["-n", str(n)]) as p:
        out = {"debug2": settle(p), "debug1": gofixtures.fetch(p, "goroutine?debug=1")}
        if version == "1.27":
            out["leak1"] = gofixtures.fetch(p, "goroutineleak?debug=1")
        return out


def functions(g: Goroutine) -> list[str]:
    return [f.function for f in g.frames]


@pytest.mark.parametrize("version", ["1.21", "1.24", "1.27"])
def test_counts_per_stack(version: str) -> None:
    snap = parse_debug1(profiles("sendaftertimeout", version)["debug1"], "g.txt")
    assert (snap.form, snap.profile, snap.source) == ("debug1", "goroutine", "g.txt")
    assert snap.total_reported == snap.total
    leak = [g for g in snap.goroutines if functions(g)[:1] == ["main.fetch.func1"]]
    assert len(leak) == 1 and leak[0].count == N
    top = leak[0].frames[0]
    assert (Path(top.file), top.line) == (SEND_MAIN, SEND_LINE)
    assert all(g.id is None and g.state == "" and g.args == () for g in snap.goroutines)
    # the same program's debug=2 dump, taken a moment later, agrees on the leak
    dump = parse_dump(profiles("sendaftertimeout", version)["debug2"], "d2")[0]
    assert sum(functions(g)[:1] == ["main.fetch.func1"] for g in dump.goroutines) == N


def test_labels() -> None:
    snap = parse_debug1(profiles("labeledwork", "1.27", 12)["debug1"], "labels.txt")
    parked = [g for g in snap.goroutines if "main.work" in functions(g)]
    # every fourth request parks, under its labels: tenants t0, t1, t2 (i % 3 of 0, 4, 8)
    assert sorted(g.labels["tenant"] for g in parked) == ["t0", "t1", "t2"]
    assert all(g.labels["handler"] == "report" and g.count == 1 for g in parked)
    assert all(g.labels == {} for g in snap.goroutines if g not in parked)


def test_goroutineleak_debug1() -> None:
    snap = parse_debug1(profiles("sendaftertimeout", "1.27")["leak1"], "leak.txt")
    assert snap.profile == "goroutineleak"
    leak = [g for g in snap.goroutines if functions(g)[:1] == ["main.fetch.func1"]]
    assert len(leak) == 1 and leak[0].count == N
    assert snap.total == snap.total_reported
    # Go 1.27 also writes a record whose PC it cannot name ("#\t0x0")
    assert all(f.function != "" for g in snap.goroutines for f in g.frames)
    assert any(f.function == UNKNOWN_FUNCTION for g in snap.goroutines for f in g.frames) == \
        (b"#\t0x0\n" in profiles("sendaftertimeout", "1.27")["leak1"])


# -- go tool pprof as the oracle ------------------------------------------------------------


def pprof_traces(binary: Path, path: Path, version: str) -> list[tuple[int, list[str]]]:
    """(count, functions innermost first) per record, as `go tool pprof -traces` reads them."""
    go = gofixtures.go_binary(version)
    env = dict(os.environ, GOTOOLCHAIN="local", GOROOT=str(gofixtures.goroot(version)))
    out = subprocess.run([str(go), "tool", "pprof", "-traces", "-symbolize=local", str(binary),
                          str(path)], capture_output=True, text=True, env=env, timeout=600,
                         check=True).stdout
    records: list[tuple[int, list[str]]] = []
    for section in out.split("-----------+")[1:]:
        lines = [line.split() for line in section.split("\n")[1:] if line.strip()]
        if not lines or not lines[0][0].isdigit():
            continue
        records.append((int(lines[0][0]), [lines[0][1]] + [w[0] for w in lines[1:]]))
    return records


def visible(functions: list[str]) -> list[str]:
    """A stack as debug=1 shows it: leading runtime frames and goexit dropped; repeated
    neighbours (pprof names an inlined frame after its caller) collapsed."""
    out: list[str] = []
    for f in functions:
        if f == "runtime.goexit" or (not out and f.startswith(("runtime.", "internal/runtime"))):
            continue
        if not out or out[-1] != f:
            out.append(f)
    return out


def subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(any(f == g for g in it) for f in small)


@pytest.mark.parametrize(("name", "version"), [("sendaftertimeout", "1.21"),
                                               ("httpbodyunclosed", "1.24"),
                                               ("labeledwork", "1.27")])
def test_agrees_with_go_tool_pprof(name: str, version: str, tmp_path: Path) -> None:
    data = profiles(name, version)["debug1"]
    path = tmp_path / "goroutine.txt"
    path.write_bytes(data)
    ours: Snapshot = parse_debug1(data, str(path))
    theirs = pprof_traces(gofixtures.program(name, version), path, version)
    assert sorted(c for c, _ in theirs) == sorted(g.count for g in ours.goroutines)
    unmatched = list(ours.goroutines)
    for count, stack in theirs:
        match = next((g for g in unmatched if g.count == count
                      and subsequence(visible(stack), visible(functions(g)))), None)
        assert match is not None, (count, stack)
        unmatched.remove(match)


# -- damaged input -----------------------------------------------------------------------


def real_lines() -> list[str]:
    return profiles("sendaftertimeout", "1.27")["debug1"].decode().split("\n")


@pytest.mark.parametrize(("change", "line", "expected"), [
    (lambda ls: ls.__setitem__(0, "goroutine profile: total many"), 1,
     "expected 'goroutine profile: total N'"),
    (lambda ls: ls.__setitem__(1, ls[1].replace(" @ ", " at ")), 2, "expected 'COUNT @ 0xPC"),
    (lambda ls: ls.__setitem__(2, ls[2].rsplit(":", 1)[0]), 3, "expected FILE:LINE"),
    (lambda ls: ls.insert(2, "# labels: {handler:report}"), 3, 'expected "key":"value"'),
    (lambda ls: ls.insert(1, ls[2]), 2, "a frame line before any"),
])
def test_damage_is_named(change: object, line: int, expected: str) -> None:
    lines = real_lines()
    change(lines)  # type: ignore[operator]
    with pytest.raises(InputError) as e:
        parse_debug1("\n".join(lines).encode(), "bad.txt")
    assert str(e.value).startswith(f"bad.txt: line {line}: ")
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_header_alone_and_empty_input() -> None:
    with pytest.raises(InputError, match=r"^h.txt: line \d+: no goroutine record"):
        parse_debug1(real_lines()[0].encode() + b"\n", "h.txt")
    with pytest.raises(InputError, match=r"^e.txt: line 1: empty input"):
        parse_debug1(b"\n\n", "e.txt")


def test_counts_survive_crlf() -> None:
    data = profiles("sendaftertimeout", "1.27")["debug1"]
    a = parse_debug1(data, "a")
    b = parse_debug1(data.replace(b"\n", b"\r\n"), "b")
    assert Counter((g.count, g.frames) for g in a.goroutines) == \
        Counter((g.count, g.frames) for g in b.goroutines)


@pytest.mark.parametrize("seed", range(3))
def test_mutated_text_never_escapes_as_other_errors(seed: int) -> None:
    """Random damage to real debug=1 text gives a Snapshot or an InputError, nothing else."""
    import random

    rng = random.Random(seed)
    real = profiles("labeledwork", "1.27", 12)["debug1"]
    for _ in range(200):
        data = bytearray(real)
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[k] = rng.randrange(256)
            else:
                del data[k : k + rng.randint(1, 40)]
        try:
            snap = parse_debug1(bytes(data), "fuzz.txt")
        except InputError as e:
            assert str(e).startswith("fuzz.txt: line ") and "\n" not in str(e)
        else:
            assert all(g.count >= 0 for g in snap.goroutines)
