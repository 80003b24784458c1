"""pprof protobuf profiles from real Go programs, checked against `go tool pprof` on the
same files; then damaged and hostile inputs."""

from __future__ import annotations

import gzip
import random
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import gofixtures
import pproforacle
import pytest
from dumpwait import settle
from gopark.errors import InputError
from gopark.formats import profile_pb2
from gopark.formats.debug1 import parse_debug1
from gopark.formats.pprof import parse_profile, profile_to_snapshot
from gopark.model import Frame, Goroutine, Profile, Sample, Snapshot

VERSIONS = ["1.21", "1.24", "1.27"]
# endpoint under /debug/pprof/ -> file name, fetched in this order
ENDPOINTS = {
    "goroutine": "goroutine",
    "cpu": "profile?seconds=2",  # at -rate 200, ~40 samples in checksum
    # A heap sample shows only once a GC after it has completed: a forced GC publishes all
    # the ~600 buffers made by then (each sampled with p = 1 - e^(-32/512) = 0.06; none:
    # e^-37). Without it, a capture right after start published 2 to 16 samples.
    "heap": "heap?gc=1",
    "allocs": "allocs",
    "block": "block",
    "mutex": "mutex",
    "threadcreate": "threadcreate",
}
LEAKED = 40  # sendaftertimeout requests, each leaks one goroutine
LABELEDWORK = gofixtures.GOPROGRAMS / "labeledwork" / "main.go"


@pytest.fixture(scope="module", params=VERSIONS)
def captured(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[str, dict[str, Path]]:
    """Every profile kind of one run of the labeledwork program, as files."""
    short: str = request.param
    out = tmp_path_factory.mktemp(f"pprof-{short}")
    files: dict[str, Path] = {}
    args = ["-n", "200", "-rate", "200", "-block-rate", "1", "-mutex-fraction", "1"]
    with gofixtures.run("labeledwork", short, args) as p:
        for kind, endpoint in ENDPOINTS.items():
            files[kind] = out / f"{kind}.pb.gz"
            files[kind].write_bytes(gofixtures.fetch(p, endpoint))
    return short, files


@pytest.fixture(scope="module", params=[("1.27", ""), ("1.26", "goroutineleakprofile")])
def leak_profile(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[str, Path]:
    """The goroutineleak profile of sendaftertimeout (Go 1.27; Go 1.26 with the experiment)."""
    short, experiment = request.param
    path = tmp_path_factory.mktemp(f"leak-{short}") / "goroutineleak.pb.gz"
    with gofixtures.run("sendaftertimeout", short, ["-n", str(LEAKED)],
                        experiment=experiment) as p:
        settle(p)  # all of them blocked in their send (the test counts them)
        path.write_bytes(gofixtures.fetch(p, "goroutineleak"))
    return short, path


def load(path: Path) -> Profile:
    return parse_profile(path.read_bytes(), str(path))


def assert_matches_raw(profile: Profile, oracle: pproforacle.RawProfile) -> None:
    """gopark's reading of a profile is exactly what `go tool pprof -raw` prints."""
    assert [(st.type, st.unit) for st in profile.sample_types] == oracle.sample_types
    assert profile.default_sample_type == oracle.default_sample_type
    pt = profile.period_type
    assert ((pt.type, pt.unit) if pt else None) == oracle.period_type
    assert profile.period == oracle.period
    assert profile.comments == oracle.comments
    if oracle.time is None:
        assert profile.time is None
    else:
        assert profile.time is not None
        # pprof prints nanoseconds; datetime keeps microseconds.
        stamp, frac = oracle.time.split(" +")[0].split(".") if "." in oracle.time else (
            oracle.time.split(" +")[0], "0")
        want = datetime.fromisoformat(stamp).replace(microsecond=int(frac.ljust(9, "0")[:6]))
        assert abs((profile.time.replace(tzinfo=None) - want).total_seconds()) < 2e-6
    assert len(profile.samples) == len(oracle.samples)
    for ours, theirs in zip(profile.samples, oracle.samples, strict=True):
        assert ours.values == theirs.values
        assert [(f.function, f.file, f.line) for f in ours.frames] == list(oracle.stack(theirs))
        assert ours.addresses == oracle.addresses(theirs)
        assert {k: [v] for k, v in ours.labels.items()} == theirs.labels
        assert {k: [v] for k, v in ours.num_labels.items()} == theirs.num_labels


@pytest.mark.parametrize("kind", list(ENDPOINTS))
def test_profile_agrees_with_pprof_raw(captured: tuple[str, dict[str, Path]], kind: str) -> None:
    short, files = captured
    profile = load(files[kind])
    assert_matches_raw(profile, pproforacle.raw(short, files[kind]))
    assert profile.source == str(files[kind])
    # Not vacuous: the program did work of every kind.
    assert profile.samples and any(any(s.values) for s in profile.samples)


def functions(s: Sample) -> list[str]:
    return [f.function for f in s.frames]


def test_kinds_carry_what_the_program_did(captured: tuple[str, dict[str, Path]]) -> None:
    _, files = captured
    p = {kind: load(path) for kind, path in files.items()}
    assert p["goroutine"].kind == "goroutine"
    assert p["heap"].kind == "heap" and p["allocs"].default_sample_type == "alloc_space"
    assert p["block"].kind == p["mutex"].kind == "contention"
    assert p["cpu"].kind == "cpu" and p["cpu"].duration_ns >= 1_000_000_000
    assert p["cpu"].period_type is not None and p["cpu"].period_type.unit == "nanoseconds"

    # The requests' 32 KiB buffers, allocated at main.work's make, with their size label.
    # (Not every main.work sample: now and then its `append(recent, buf)` is sampled too,
    # with another size, or shows as a record of zeros, without a size, until a GC
    # publishes it.)
    make_line = next(i for i, text in enumerate(LABELEDWORK.read_text().splitlines(), 1)
                     if "buf := make([]byte, 32<<10)" in text)
    work_allocs = [s for s in p["allocs"].samples if functions(s)[:1] == ["main.work"]
                   and s.frames[0].line == make_line and s.values[0] > 0]
    assert work_allocs and all(s.num_labels["bytes"] == 32 << 10 for s in work_allocs)
    # Contention on the shared mutex, in main.work.
    assert any("main.work" in functions(s) for s in p["mutex"].samples)
    assert any("main.work" in functions(s) for s in p["block"].samples)
    # CPU time under the requests' labels, in checksum inlined into work: one location,
    # two frames.
    labelled = [s for s in p["cpu"].samples if s.labels.get("handler") == "report"]
    assert labelled
    inlined = [s for s in labelled if functions(s)[:2] == ["main.checksum", "main.work"]]
    assert inlined and all(len(s.frames) > len(s.addresses) for s in inlined)


def test_frames_are_interned(captured: tuple[str, dict[str, Path]]) -> None:
    _, files = captured
    profile = load(files["goroutine"])
    seen: dict[object, object] = {}
    shared = 0
    for s in profile.samples:
        for f in s.frames:
            first = seen.setdefault(f, f)
            assert first is f
            shared += first is f
    assert shared > len(seen)  # some frames occur in several samples


def test_goroutine_snapshot_agrees_with_pprof_traces(captured: tuple[str, dict[str, Path]]
                                                     ) -> None:
    short, files = captured
    profile = load(files["goroutine"])
    snap = profile_to_snapshot(profile)
    assert snap.form == "proto" and snap.profile == "goroutine"
    assert snap.taken_at == profile.time and snap.source == profile.source
    assert snap.total == snap.total_reported == sum(s.values[0] for s in profile.samples)

    ours = Counter(
        (str(g.count), tuple(f.function for f in g.frames), tuple(sorted(g.labels.items())))
        for g in snap.goroutines if g.frames  # -traces skips samples without a stack
    )
    theirs = Counter(
        (t.value, tuple(fn.removesuffix(" (inline)") for fn in t.functions), t.labels)
        for t in pproforacle.traces(short, files["goroutine"])
    )
    assert ours == theirs
    # The parked requests, a quarter of them, by tenant label.
    parked = [g for g in snap.goroutines if any(f.function == "main.work" for f in g.frames)]
    assert {g.labels["tenant"] for g in parked} == {"t0", "t1", "t2"}
    assert sum(g.count for g in parked) >= 200 // 4


@pytest.fixture(scope="module", params=VERSIONS)
def both_forms(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[str, Path, Path]:
    """The goroutine profile of a program at rest, in protobuf and in debug=1 text form."""
    short: str = request.param
    out = tmp_path_factory.mktemp(f"forms-{short}")
    proto, text = out / "goroutine.pb.gz", out / "goroutine.txt"
    with gofixtures.run("labeledwork", short, ["-n", "200"]) as p:
        settle(p)  # at rest: every request done or parked, so both forms see the same
        proto.write_bytes(gofixtures.fetch(p, "goroutine"))
        text.write_bytes(gofixtures.fetch(p, "goroutine?debug=1"))
    return short, proto, text


def as_debug1_prints(frames: tuple[Frame, ...]) -> tuple[Frame, ...]:
    """The frames debug=1 text shows: runtime/pprof's printStackRecord hides the leading
    runtime frames and runtime.goexit."""
    i = 0
    while i < len(frames) and frames[i].function.startswith(("runtime.", "internal/runtime/")):
        i += 1
    return tuple(f for f in frames[i:] if f.function != "runtime.goexit")


def serves_pprof(g: Goroutine) -> bool:
    """Whether ``g`` is the harness's pprof accept loop (its outermost frame is the
    harness's `go func() { http.Serve(...) }`)."""
    own = [f.function for f in g.frames if f.function != "runtime.goexit"]
    return own[-1:] == ["goparkfixtures/harness.Run.func1"]


def program_groups(snap: Snapshot, strip: bool) -> Counter[tuple[object, ...]]:
    """(count, frames, labels) of the program's own goroutines: those with a frame in its
    code. The HTTP connections serving the captures come and go between the two, and so
    does the shape of the accept loop that took them: parked in IO wait, or (2-3% of the
    captures) caught in accept(2) or back in Server.Serve."""
    groups: Counter[tuple[object, ...]] = Counter()
    for g in snap.goroutines:
        if serves_pprof(g):
            continue
        if any(f.function.startswith(("main.", "goparkfixtures/")) for f in g.frames):
            frames = as_debug1_prints(g.frames) if strip else g.frames
            groups[(g.count, frames, tuple(sorted(g.labels.items())))] += 1
    return groups


def test_proto_and_debug1_forms_group_alike(both_forms: tuple[str, Path, Path]) -> None:
    short, proto, text = both_forms
    from_proto = profile_to_snapshot(load(proto))
    from_text = parse_debug1(text.read_bytes(), str(text))
    assert program_groups(from_proto, strip=True) == program_groups(from_text, strip=False)
    for snap in (from_proto, from_text):  # the accept loop is there in both, once
        assert [g.count for g in snap.goroutines if serves_pprof(g)] == [1]
    # and the proto form's groups are pprof's, as -traces prints them
    ours = Counter((str(g.count), tuple(f.function for f in g.frames))
                   for g in from_proto.goroutines if g.frames)
    theirs = Counter((t.value, tuple(fn.removesuffix(" (inline)") for fn in t.functions))
                     for t in pproforacle.traces(short, proto))
    assert ours == theirs
    parked = [g for g in from_text.goroutines if g.frames and g.frames[0].function == "main.work"]
    assert sum(g.count for g in parked) == 200 // 4


def test_goroutineleak_profile(leak_profile: tuple[str, Path]) -> None:
    short, path = leak_profile
    profile = load(path)
    assert_matches_raw(profile, pproforacle.raw(short, path))
    snap = profile_to_snapshot(profile)
    assert snap.profile == "goroutineleak" and snap.form == "proto"
    assert all(g.leaked for g in snap.goroutines)
    leaked = [g for g in snap.goroutines if "main.fetch.func1" in [f.function for f in g.frames]]
    assert sum(g.count for g in leaked) == LEAKED
    assert leaked[0].frames[0].function == "runtime.gopark"


def test_plain_and_gzipped_read_the_same(captured: tuple[str, dict[str, Path]]) -> None:
    _, files = captured
    data = files["heap"].read_bytes()
    assert data[:2] == b"\x1f\x8b"
    assert parse_profile(gzip.decompress(data), "x") == parse_profile(data, "x")


def test_snapshot_of_a_non_goroutine_profile_is_refused(captured: tuple[str, dict[str, Path]]
                                                        ) -> None:
    _, files = captured
    with pytest.raises(InputError, match="expected a goroutine profile"):
        profile_to_snapshot(load(files["heap"]))


# --- damaged and hostile input ------------------------------------------------------------


@pytest.fixture(scope="module")
def real_profile(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real (decompressed) goroutine profile to damage."""
    with gofixtures.run("sendaftertimeout", "1.27", ["-n", "10"]) as p:
        return gzip.decompress(gofixtures.fetch(p, "goroutine"))


def message(data: bytes) -> Any:
    pb = profile_pb2.Profile()
    pb.ParseFromString(data)
    return pb


def error_of(data: bytes) -> InputError:
    with pytest.raises(InputError) as e:
        parse_profile(data, "damaged.pb.gz")
    assert str(e.value).startswith("damaged.pb.gz: ")
    assert "\n" not in str(e.value)
    return e.value


def test_truncated_gzip(real_profile: bytes) -> None:
    zipped = gzip.compress(real_profile)
    cut = zipped[: len(zipped) // 2]
    err = error_of(cut)
    assert err.where == f"byte {len(cut)}" and "truncated" in err.what


def test_corrupt_gzip(real_profile: bytes) -> None:
    zipped = bytearray(gzip.compress(real_profile))
    zipped[20:40] = b"\xff" * 20
    err = error_of(bytes(zipped))
    assert err.where == "gzip stream"


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
    with pytest.raises(InputError, match="limit"):
        parse_profile(bomb, "bomb.pb.gz", max_bytes=1 << 20)


def test_text_is_not_a_profile(real_profile: bytes) -> None:
    err = error_of(b"goroutine profile: total 5\n5 @ 0x1 0x2\n")
    assert err.where is not None and err.where.startswith("byte ")
    assert "not a pprof protobuf profile" in err.what


def test_empty_input() -> None:
    err = error_of(b"")
    assert err.where == "byte 0"


def test_truncated_protobuf_names_the_offset(real_profile: bytes) -> None:
    # Cut inside a field: in a string of the string table, and inside the first location's
    # line. (A cut at a fixed fraction of a live profile can fall between two fields: the
    # rest then reads fine and the missing strings are the error, with no offset.)
    line = message(real_profile).location[0].line[0].SerializeToString()
    inside = [real_profile.index(b"main.fetch.func1") + 5,
              real_profile.index(b"\x22" + bytes([len(line)]) + line) + 3]
    for cut in inside:
        err = error_of(real_profile[:cut])
        assert err.where is not None and err.where.startswith("byte "), (cut, err)
        assert 0 <= int(err.where.split()[1]) < cut


def test_damage_inside_a_sub_message_is_located(real_profile: bytes) -> None:
    # The first location's first line (field 4, length-delimited) claims 127 bytes,
    # more than its location holds.
    line = message(real_profile).location[0].line[0].SerializeToString()
    field = b"\x22" + bytes([len(line)]) + line
    at = real_profile.index(field)
    damaged = real_profile[: at + 1] + b"\x7f" + real_profile[at + 2:]
    err = error_of(damaged)
    assert err.where == f"byte {at}"
    assert "field 4 (line)" in err.what and "remain" in err.what


def test_string_index_outside_the_table(real_profile: bytes) -> None:
    pb = message(real_profile)
    pb.function[0].name = 10**6
    err = error_of(pb.SerializeToString())
    assert err.where is not None and err.where.startswith("function 0")
    assert "string index 1000000" in err.what


def test_location_id_outside_the_table(real_profile: bytes) -> None:
    pb = message(real_profile)
    pb.sample[1].location_id.append(999_999)
    err = error_of(pb.SerializeToString())
    assert err.where == "sample 1" and "location id 999999" in err.what


def test_function_id_outside_the_table(real_profile: bytes) -> None:
    pb = message(real_profile)
    pb.location[2].line[0].function_id = 424242
    err = error_of(pb.SerializeToString())
    assert err.where is not None and err.where.startswith("location 2")
    assert "function id 424242" in err.what


def test_values_do_not_match_sample_types(real_profile: bytes) -> None:
    pb = message(real_profile)
    pb.sample[0].value.append(7)
    err = error_of(pb.SerializeToString())
    assert err.where == "sample 0" and "2 values for 1 sample types" in err.what


def test_huge_length_field_does_not_allocate() -> None:
    # Field 2 (sample), length 2**62: a size field that must not be believed.
    data = b"\x12" + bytes([0x80] * 8 + [0x40]) + b"\x00" * 16
    err = error_of(data)
    assert err.where == "byte 0" and "remain" in err.what


def test_huge_counts_stay_counts(real_profile: bytes) -> None:
    pb = message(real_profile)
    for s in pb.sample:
        s.value[0] = 1 << 60
    snap = profile_to_snapshot(parse_profile(pb.SerializeToString(), "x"))
    assert snap.total == len(snap.goroutines) << 60


def test_random_damage_gives_input_errors_only(real_profile: bytes) -> None:
    """A small fuzz run: flipped, dropped and inserted bytes in a real profile (plain and
    gzipped) either still decode or raise InputError; nothing else escapes."""
    rng = random.Random(20261127)
    outcomes: Counter[str] = Counter()
    for i in range(400):
        data = bytearray(real_profile)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            op = rng.choice(("flip", "drop", "insert"))
            if op == "flip":
                data[at] ^= 1 << rng.randrange(8)
            elif op == "drop":
                del data[at: at + rng.randint(1, 8)]
            else:
                data[at:at] = rng.randbytes(rng.randint(1, 8))
        blob = gzip.compress(bytes(data)) if i % 4 == 0 else bytes(data)
        try:
            profile = parse_profile(blob, "fuzz.pb")
            if profile.kind == "goroutine":
                profile_to_snapshot(profile)
            outcomes["ok"] += 1
        except InputError as e:
            assert str(e).startswith("fuzz.pb") and "\n" not in str(e)
            outcomes["error"] += 1
    assert outcomes["ok"] and outcomes["error"]  # both paths were exercised
