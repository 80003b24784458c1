"""sniff, load_path and load_bytes on real files of every kind, named misleadingly on
purpose: the format comes from the bytes, never from the file name."""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import gofixtures
import pytest
from dumpwait import settle
from gopark.cli import main as gopark_main
from gopark.errors import InputError
from gopark.formats.load import load_bytes, load_path
from gopark.formats.sniff import sniff
from gopark.model import Profile, Snapshot

N = 30


@functools.cache
def captures() -> dict[str, bytes]:
    """One of each input Go's net/http/pprof serves, from one run of sendaftertimeout."""
    with gofixtures.run("sendaftertimeout", "1.27", ["-n", str(N)]) as p:
        return {
            "dump": settle(p),
            "debug1": gofixtures.fetch(p, "goroutine?debug=1"),
            "goroutine.pb.gz": gofixtures.fetch(p, "goroutine"),
            "heap.pb.gz": gofixtures.fetch(p, "heap"),
            "heap-text": gofixtures.fetch(p, "heap?debug=1"),
            "trace": gofixtures.fetch(p, "trace?seconds=0.3"),
        }


@functools.cache
def traceback() -> bytes:
    return gofixtures.stderr_of_crash("sendaftertimeout", "1.24", ["-n", str(N), "-crash"])


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("key", "kind"), [
    ("dump", "dump"), ("debug1", "debug1"), ("goroutine.pb.gz", "pprof"),
    ("heap.pb.gz", "pprof"), ("heap-text", "heap-text"), ("trace", "trace"),
])
def test_sniff_real_inputs(key: str, kind: str) -> None:
    data = captures()[key]
    assert sniff(data) == kind
    if data.startswith(b"\x1f\x8b"):
        assert sniff(gzip.decompress(data)) == kind  # raw protobuf too


def test_sniff_traceback_and_gzipped_text() -> None:
    assert sniff(traceback()) == "dump"
    assert sniff(gzip.compress(captures()["dump"])) == "dump"
    assert sniff(gzip.compress(captures()["debug1"])) == "debug1"


def test_sniff_other_bytes() -> None:
    go_source = (gofixtures.GOPROGRAMS / "sendaftertimeout" / "main.go").read_bytes()
    assert sniff(go_source) == "unknown"
    assert sniff(b"") == "unknown"


def test_load_dump_named_like_a_profile(tmp_path: Path) -> None:
    [snap] = load_path(write(tmp_path, "profile.pb.gz", captures()["dump"]))
    assert isinstance(snap, Snapshot) and snap.form == "debug2"
    assert sum(g.state == "chan send" for g in snap.goroutines) == N
    assert snap.source == str(tmp_path / "profile.pb.gz")


def test_load_debug1_and_gzipped_dump(tmp_path: Path) -> None:
    [snap] = load_path(write(tmp_path, "trace.out", captures()["debug1"]))
    assert isinstance(snap, Snapshot) and snap.form == "debug1" and snap.total_reported
    [snap] = load_path(write(tmp_path, "x.txt", gzip.compress(captures()["dump"])))
    assert isinstance(snap, Snapshot) and snap.form == "debug2"


def test_load_traceback_log(tmp_path: Path) -> None:
    log = b"starting\n" + traceback() + b"exit status 2\n" + captures()["dump"]
    snaps = load_path(write(tmp_path, "app.log", log))
    assert [type(s) for s in snaps] == [Snapshot, Snapshot]


def test_load_pprof_goroutine_profile_gives_a_snapshot(tmp_path: Path) -> None:
    for data in (captures()["goroutine.pb.gz"], gzip.decompress(captures()["goroutine.pb.gz"])):
        [snap] = load_path(write(tmp_path, "dump.txt", data))
        assert isinstance(snap, Snapshot) and snap.form == "proto"
        leak = [g for g in snap.goroutines if g.frames and any(
            f.function == "main.fetch.func1" for f in g.frames)]
        assert sum(g.count for g in leak) == N


def test_load_heap_profile_gives_a_profile(tmp_path: Path) -> None:
    [profile] = load_bytes(captures()["heap.pb.gz"], "heap")
    assert isinstance(profile, Profile) and profile.kind == "heap"


def test_load_trace_gives_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "goroutine.txt", captures()["trace"])
    assert load_path(path) == [path]
    with pytest.raises(InputError, match="execution trace"):
        load_bytes(captures()["trace"], "trace-from-http")


def test_heap_text_is_refused_with_advice() -> None:
    with pytest.raises(InputError, match=r"^heap: line 1: heap profile in debug=1 text form"):
        load_bytes(captures()["heap-text"], "heap")


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty input"),
    (b"hello\nworld\n", "byte 0: unknown input: expected a goroutine dump"),
])
def test_unknown_and_empty(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path, "in.txt", data)
    with pytest.raises(InputError) as e:
        load_path(path)
    assert str(e.value).startswith(str(path)) and message in str(e.value)


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read: No such file"):
        load_path(tmp_path / "missing")
    with pytest.raises(InputError, match="cannot read: Is a directory"):
        load_path(tmp_path)


def test_cut_gzip_is_named(tmp_path: Path) -> None:
    data = gzip.compress(captures()["dump"])
    path = write(tmp_path, "cut.gz", data[: len(data) // 2])
    with pytest.raises(InputError, match=rf"^{path}: byte \d+: gzip data ends early"):
        load_path(path)


def test_cli_reports_damage_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gopark goroutines` on a damaged real dump: exit 2, one line naming file and line."""
    lines = captures()["dump"].decode().split("\n")
    k = next(i for i, line in enumerate(lines) if line == "main.fetch.func1()")
    del lines[k + 1]
    path = write(tmp_path, "damaged.txt", "\n".join(lines).encode())
    assert gopark_main(["goroutines", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{path}: line {k + 2}: expected the source line of main.fetch.func1" in err
