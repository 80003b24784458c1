"""Conformance: Go's own trace reader tests (GOROOT/src/internal/trace/testdata/tests/*.test
of the installed Go 1.27, read there at test time). Each holds a trace in Go's text
encoding and the expected outcome: SUCCESS, or FAILURE with a pattern the error must
match. The text encoding is turned into wire bytes by the small encoder below."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gofixtures import goroot
from gopark import _core
from gopark.errors import InputError
from gopark.formats.gotext import go_unquote
from gopark.formats.trace import TraceReader

TESTS_DIR = goroot("1.27") / "src" / "internal" / "trace" / "testdata" / "tests"
WIRE = _core.wire_event_types()


def parse_txtar(text: str) -> dict[str, str]:
    """The sections of a txtar archive ("-- name --" lines start each)."""
    files: dict[str, list[str]] = {}
    name = None
    for line in text.splitlines():
        m = re.fullmatch(r"-- (.+) --", line.strip())
        if m:
            name = m.group(1)
            files[name] = []
        elif name is not None:
            files[name].append(line)
    return {k: "\n".join(v) for k, v in files.items()}


def uvarint(x: int) -> bytes:
    out = bytearray()
    while x >= 0x80:
        out.append(x & 0x7F | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


def _args(line: str, names: list[str], where: str) -> list[int]:
    toks = line.split()
    assert [t.split("=", 1)[0] for t in toks] == names, where
    return [int(t.split("=", 1)[1]) for t in toks]


def encode_text_trace(text: str) -> bytes:
    """Wire bytes of a trace in Go's text encoding ("Trace Go1.N" then one event per
    line, stack frames and string data on the lines after their event)."""
    stripped = (raw.split("#", 1)[0].rstrip() for raw in text.splitlines())
    lines = [ln for ln in stripped if ln.strip()]
    m = re.fullmatch(r"Trace Go1\.(\d+)", lines[0].strip())
    assert m, lines[0]
    out = bytearray(f"go 1.{m.group(1)} trace\x00\x00\x00".encode())
    i = 1
    while i < len(lines):
        name, _, rest = lines[i].strip().partition(" ")
        typ, argnames = WIRE[name]
        args = _args(rest, argnames, lines[i])
        i += 1
        out.append(typ)
        if name == "ExperimentalBatch":
            out.append(args[0])  # the experiment ID is a byte, not a varint
            args = args[1:]
        for a in args:
            out += uvarint(a)
        if name == "Stack":
            for _ in range(args[1]):
                frame = _args(lines[i], ["pc", "func", "file", "line"], lines[i])
                out += b"".join(uvarint(v) for v in frame)
                i += 1
        if name in ("String", "ExperimentalBatch"):
            key, _, quoted = lines[i].strip().partition("=")
            assert key == "data", lines[i]
            data = go_unquote(quoted).encode()
            out += uvarint(len(data)) + data
            i += 1
    return bytes(out)


def _outcome(trace: bytes) -> str | None:
    """None if the trace reads cleanly, else the error message."""
    try:
        reader = TraceReader(trace, name="test")
    except InputError as e:
        return str(e)
    for _ in reader.generations():
        pass
    d = reader.damage()
    return None if d is None else d.message


CASES = sorted(TESTS_DIR.glob("*.test"))


def test_go_ships_conformance_tests() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_conformance(path: Path) -> None:
    files = parse_txtar(path.read_text())
    expect = files["expect"].strip()
    err = _outcome(encode_text_trace(files["trace"]))
    if expect == "SUCCESS":
        assert err is None, err
    else:
        m = re.fullmatch(r'FAILURE "(.*)"', expect)
        assert m, expect
        assert err is not None, "expected the trace to be rejected"
        assert re.search(m.group(1), err), err


def test_encoder_round_trips_a_real_header() -> None:
    """The encoder is ours; check it against a known event: a Go 1.22 batch header."""
    b = encode_text_trace("Trace Go1.22\nEventBatch gen=1 m=300 time=5 size=0\n")
    assert b == b"go 1.22 trace\x00\x00\x00" + bytes([1, 1, 0xAC, 0x02, 5, 0])
