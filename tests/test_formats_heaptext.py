"""heap?debug=1 text from real Go programs: the runtime.MemStats block and the samples,
checked against the runtime's own invariants, `go tool pprof -raw` and the proto form."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import gofixtures
import pproforacle
import pytest
from dumpwait import settle
from gopark.errors import InputError
from gopark.formats.heaptext import parse_heap_text, parse_memstats
from gopark.formats.pprof import parse_profile

VERSIONS = ["1.21", "1.24", "1.27"]


@pytest.fixture(scope="module", params=VERSIONS)
def heap_files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[str, Path, Path]:
    """(Go version, heap?debug=1 text after a forced GC, heap protobuf) of labeledwork."""
    short: str = request.param
    out = tmp_path_factory.mktemp(f"heaptext-{short}")
    text, proto = out / "heap.txt", out / "heap.pb.gz"
    with gofixtures.run("labeledwork", short, ["-n", "300"]) as p:
        settle(p)  # all 300 requests have allocated (the test counts their bytes)
        # gc=1 runs a GC first, so NumGC and the pause ring are not empty.
        text.write_bytes(gofixtures.fetch(p, "heap?gc=1&debug=1"))
        proto.write_bytes(gofixtures.fetch(p, "heap"))
    return short, text, proto


def test_memstats_fields_obey_the_runtime_invariants(heap_files: tuple[str, Path, Path]) -> None:
    _, text, _ = heap_files
    m = parse_memstats(text.read_bytes(), str(text))
    # Identities runtime.ReadMemStats guarantees: they fail if a field is misread.
    assert m["Alloc"] == m["HeapAlloc"]
    assert m["HeapSys"] == m["HeapIdle"] + m["HeapInuse"]
    assert m["HeapObjects"] == m["Mallocs"] - m["Frees"]
    assert m["Sys"] == sum(m[k] for k in ("HeapSys", "StackSys", "MSpanSys", "MCacheSys",
                                          "BuckHashSys", "GCSys", "OtherSys"))
    assert m["StackInuse"] <= m["StackSys"] and m["MSpanInuse"] <= m["MSpanSys"]
    # 300 requests allocated 32 KiB each; the program keeps the last 64.
    assert m["HeapAlloc"] >= 64 * (32 << 10)
    assert m["TotalAlloc"] >= 300 * (32 << 10)
    assert m["NumGC"] >= 1 and m["NumForcedGC"] >= 1
    assert m["DebugGC"] == 0
    # The ring's newest entry is the last GC: its end time is LastGC.
    assert m["PauseEnd"] == m["LastGC"]
    assert m["PauseNs"] > 0


def test_gc_pause_series(heap_files: tuple[str, Path, Path]) -> None:
    _, text, _ = heap_files
    h = parse_heap_text(text.read_bytes(), str(text))
    n = h.memstats["NumGC"]
    assert len(h.pause_ns) == len(h.pause_end) == min(n, 256)
    assert h.pause_end == sorted(h.pause_end)  # oldest first
    assert h.pause_end[-1] == h.memstats["LastGC"] and h.pause_ns[-1] == h.memstats["PauseNs"]
    assert 0 < h.gc_cpu_fraction < 1


def test_samples_agree_with_pprof_raw(heap_files: tuple[str, Path, Path]) -> None:
    short, text, _ = heap_files
    profile = parse_heap_text(text.read_bytes(), str(text)).profile
    oracle = pproforacle.raw(short, text)
    assert [(st.type, st.unit) for st in profile.sample_types] == oracle.sample_types
    assert profile.period_type is not None
    assert (profile.period_type.type, profile.period_type.unit) == oracle.period_type
    assert profile.period == oracle.period == 512 * 1024
    assert len(profile.samples) == len(oracle.samples)
    for ours, theirs in zip(profile.samples, oracle.samples, strict=True):
        assert ours.values == theirs.values  # scaled for sampling exactly as pprof does
        assert ours.addresses == oracle.addresses(theirs)
        assert {k: [v] for k, v in ours.num_labels.items()} == theirs.num_labels
    # (a record of zeros that no GC has published yet carries no size label)
    assert any(s.num_labels.get("bytes") == 32 << 10 for s in profile.samples)


def test_sample_frames_match_the_proto_form(heap_files: tuple[str, Path, Path]) -> None:
    """The text form symbolizes on the runtime side too: the same allocation stack must read
    the same frames (inlined ones included) in both forms."""
    _, text, proto = heap_files
    from_text = parse_heap_text(text.read_bytes(), str(text)).profile.samples
    from_proto = parse_profile(proto.read_bytes(), str(proto)).samples
    matched = 0
    for t in from_text:
        for p in from_proto:
            # The text form keeps the allocator's runtime frames and runtime.goexit in its
            # addresses (not in its frames); the proto form drops them.
            n = len(p.addresses)
            if t.addresses[-n - 1:-1] == p.addresses:
                assert t.frames == p.frames
                matched += 1
    work = [t for t in from_text if t.frames and t.frames[0].function == "main.work"]
    assert work and matched >= len(work)


def test_no_memstats_block() -> None:
    with pytest.raises(InputError, match=r"heap\.txt: no '# runtime\.MemStats' block"):
        parse_memstats(b"heap profile: 0: 0 [0: 0] @ heap/1048576\n", "heap.txt")


def test_garbled_memstats_line_is_named(heap_files: tuple[str, Path, Path]) -> None:
    _, text, _ = heap_files
    data = text.read_bytes().replace(b"# HeapInuse = ", b"# HeapInuse = x")
    line = data[: data.index(b"# HeapInuse")].count(b"\n") + 1
    with pytest.raises(InputError) as e:
        parse_memstats(data, "heap.txt")
    assert e.value.where == f"line {line}" and "HeapInuse" in e.value.what


def test_garbled_sample_line_is_named(heap_files: tuple[str, Path, Path]) -> None:
    _, text, _ = heap_files
    lines = text.read_bytes().split(b"\n")
    lines[1] = b"1: 2 [3 4] @ 0x1"
    with pytest.raises(InputError) as e:
        parse_heap_text(b"\n".join(lines), "heap.txt")
    assert e.value.where == "line 2" and "expected 'N: N [N: N] @ 0xPC...'" in e.value.what


def test_not_a_heap_profile() -> None:
    with pytest.raises(InputError) as e:
        parse_heap_text(b"goroutine profile: total 1\n\n# runtime.MemStats\n# NumGC = 0\n", "g.txt")
    assert e.value.where == "line 1"


def test_random_damage_gives_input_errors_only(heap_files: tuple[str, Path, Path]) -> None:
    """A small fuzz run over real heap?debug=1 text: damaged copies parse or raise
    InputError, never anything else."""
    _, text, _ = heap_files
    original = text.read_bytes()
    rng = random.Random(11_27)
    alphabet = b"0123456789 :[]@#x/=\t\n-abcdef"
    outcomes: Counter[str] = Counter()
    for _ in range(300):
        data = bytearray(original)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[at] = rng.choice(alphabet)
            else:
                del data[at: at + rng.randint(1, 30)]
        try:
            parse_heap_text(bytes(data), "fuzz.txt")
            outcomes["ok"] += 1
        except InputError as e:
            assert str(e).startswith("fuzz.txt") and "\n" not in str(e)
            outcomes["error"] += 1
    assert outcomes["ok"] and outcomes["error"]


def test_counts_too_big_to_scale() -> None:
    text = (b"heap profile: 1: 1 [1: 1] @ heap/1048576\n"
            b"99999999999999999999999999: 1 [1: 1] @ 0x1\n\n# runtime.MemStats\n# NumGC = 0\n")
    with pytest.raises(InputError) as e:
        parse_heap_text(text, "big.txt")
    assert e.value.where == "line 2" and "cannot be scaled" in e.value.what
