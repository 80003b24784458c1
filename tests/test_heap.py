"""Heap diff by allocation site, against `go tool pprof -raw -base` on the same profiles."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import gofixtures
import pytest
from gopark.analysis.classify import PPROF_WRITERS
from gopark.analysis.heap import (
    MIN_SAMPLES,
    MIN_STACK,
    diff_heap,
    group_bytes,
    heap_findings,
    heap_under,
    site_frame,
    stack_bytes_each,
)
from gopark.errors import InputError
from gopark.formats.pprof import parse_profile
from gopark.model import Frame, Profile, Sample

VERSIONS = ["1.21", "1.24", "1.27"]


def _heap_series(name: str, version: str, args: list[str], tmp: Path, n: int = 3,
                 pause: float = 1.2) -> list[Path]:
    """n heap profiles (after a forced GC, so in-use numbers are current) of a running fixture.

    The pause is long enough that even a starved program allocates between two profiles
    what the 512 KiB sampling sees: 100 × 64 KiB a second gives ~14 samples a pause, so
    the chance that a growing site shows no growth in one is e^-14."""
    paths = []
    with gofixtures.run(name, version, args) as p:
        for i in range(n):
            if i:
                time.sleep(pause)
            path = tmp / f"{name}-{version}-{i}.pb.gz"
            path.write_bytes(gofixtures.fetch(p, "heap?gc=1"))
            paths.append(path)
    return paths


@pytest.fixture(scope="module", params=VERSIONS)
def globalmap(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[str, list[Path]]:
    tmp = tmp_path_factory.mktemp("heap")
    return request.param, _heap_series("globalmap", request.param, ["-n", "0", "-rate", "100"], tmp)


def _load(paths: list[Path]) -> list[Profile]:
    return [parse_profile(p.read_bytes(), str(p)) for p in paths]


def test_growing_map_is_the_top_site(globalmap: tuple[str, list[Path]]) -> None:
    _, paths = globalmap
    diff = diff_heap(_load(paths))
    top = diff.sites[0]
    assert top.site.function == "main.remember"
    assert top.site.file.endswith("globalmap/main.go") and top.site.line == 17  # the make()
    # 100 requests/s × 64 KiB for ~2.4 s: several MiB, sampled (one sample per 512 KiB).
    assert top.delta_bytes > 2 << 20
    assert top.delta_objects > 30
    assert top.series == sorted(top.series) and top.series[-1] > top.series[0]
    assert diff.seconds is not None and 1.0 < diff.seconds < 10


def test_growing_map_gives_heap_growth_finding(globalmap: tuple[str, list[Path]]) -> None:
    _, paths = globalmap
    findings = heap_findings(diff_heap(_load(paths)))
    assert [f.category for f in findings] == ["heap-growth"]
    f = findings[0]
    assert f.location is not None and f.location.function == "main.remember"
    assert f.verdict == "confirmed"  # three profiles, rising each time
    assert f.stack[0] == f.location and f.bytes and f.bytes > 2 << 20
    assert "main.remember" in f.evidence[0]
    # From the first and last profile only, the same site, but only suspected.
    two = heap_findings(diff_heap(_load([paths[0], paths[-1]])))
    assert [(g.verdict, g.location) for g in two] == [("suspected", f.location)]


_LOC = re.compile(r"^\s+(\d+): 0x[0-9a-f]+ M=\d+ (\S+) (\S+):(\d+):\d+ s=\d+$")
_INLINED = re.compile(r"^\s+(\S+) (\S+):(\d+):\d+ s=\d+$")
_SAMPLE = re.compile(r"^\s*(-?\d+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+):((?: \d+)*)\s*$")


def oracle_site_deltas(version: str, base: Path, last: Path) -> dict[Frame, int]:
    """In-use bytes per allocation site of `pprof -base base last`, from `-raw` output."""
    go = gofixtures.go_binary(version if version != "1.21" else "1.27")
    out = subprocess.run([str(go), "tool", "pprof", "-raw", "-base", str(base), str(last)],
                         capture_output=True, text=True, check=True).stdout
    header, _, rest = out.partition("Samples:\n")
    samples_text, _, locs_text = rest.partition("Locations\n")
    lines = samples_text.splitlines()
    columns = lines[0].split()
    space = columns.index("inuse_space/bytes")
    frames: dict[int, list[Frame]] = {}
    current: list[Frame] = []
    for line in locs_text.splitlines():
        if line.startswith("Mappings"):
            break
        if m := _LOC.match(line):
            current = frames.setdefault(int(m[1]), [])
            current.append(Frame(m[2], m[3], int(m[4])))
        elif m := _INLINED.match(line):
            current.append(Frame(m[1], m[2], int(m[3])))
    sites: dict[Frame, int] = {}
    for line in lines[1:]:
        if m := _SAMPLE.match(line):
            stack = tuple(f for loc in m[5].split() for f in frames[int(loc)])
            if any(f.function.startswith(PPROF_WRITERS) for f in stack):
                continue  # gopark leaves out the buffers pprof allocates to answer it
            site = site_frame(stack)
            assert site is not None
            sites[site] = sites.get(site, 0) + int(m.group(space + 1))
    return sites


def test_site_deltas_agree_with_pprof_base(globalmap: tuple[str, list[Path]]) -> None:
    version, paths = globalmap
    oracle = oracle_site_deltas(version, paths[0], paths[-1])
    diff = diff_heap(_load([paths[0], paths[-1]]))
    mine = {d.site: d.delta_bytes for d in diff.sites if d.delta_bytes}
    assert mine == {s: v for s, v in oracle.items() if v}
    assert any(s.function == "main.remember" for s in mine)


def test_runtime_only_site_is_no_finding(globalmap: tuple[str, list[Path]]) -> None:
    """A site with no frame of the program's own (a new goroutine's g from runtime.malg)
    names no line to fix: it is never a finding, even when it grows, though the diff still
    lists it. (CI once saw "1.0 MiB more heap held by allocations at runtime.mallocgc" for
    tickerloop: two 512 KiB-rate samples of small runtime objects.) The rest of the real
    profiles still give their finding at the insert."""
    _, paths = globalmap
    profiles = _load(paths)
    last = profiles[-1]
    space = [t.type for t in last.sample_types].index("inuse_space")
    # A stack like the one a new goroutine's g is allocated at (runtime.malg, on the system
    # stack: no frame of the program), holding 64 MiB more in the last profile.
    tail = (Frame("runtime.mallocgc", "malloc.go", 1131), Frame("runtime.malg", "proc.go", 5000),
            Frame("runtime.newproc1", "proc.go", 5050), Frame("runtime.systemstack", "asm.s", 500))
    values = [0] * len(last.sample_types)
    values[space] = 64 << 20  # far above every threshold
    grown = Sample(values=tuple(values), frames=tail)
    last.samples.append(grown)
    diff = diff_heap(profiles)
    assert any(d.site == grown.frames[0] and d.delta_bytes >= 64 << 20 for d in diff.sites)
    findings = heap_findings(diff)
    assert all(not f.location.function.startswith("runtime.") for f in findings if f.location)
    assert any(f.location and f.location.function == "main.remember" for f in findings)


def test_growth_worth_few_samples_is_noise(globalmap: tuple[str, list[Path]]) -> None:
    """Growth must be worth MIN_SAMPLES heap samples (the profile's period each)."""
    _, paths = globalmap
    diff = diff_heap(_load(paths))
    assert diff.sample_rate == 512 * 1024  # Go's default MemProfileRate, from the profiles
    top = diff.sites[0].delta_bytes
    assert heap_findings(diff) and top >= MIN_SAMPLES * diff.sample_rate
    diff.sample_rate = top // MIN_SAMPLES + 1  # a sparser sampling: the same growth is noise
    assert heap_findings(diff) == []


def test_healthy_service_has_no_heap_growth(tmp_path: Path) -> None:
    # The service's cache evicts beyond 100 entries: its heap stays flat under load.
    paths = _heap_series("healthyservice", "1.27", ["-n", "0", "-rate", "100"], tmp_path)
    assert heap_findings(diff_heap(_load(paths))) == []


def test_goroutine_profile_is_not_a_heap_profile(tmp_path: Path) -> None:
    with gofixtures.run("sendaftertimeout", "1.27", ["-n", "5"]) as p:
        data = gofixtures.fetch(p, "goroutine")
    prof = parse_profile(data, "goroutine.pb.gz")
    with pytest.raises(InputError, match=r"goroutine\.pb\.gz: expected a heap profile"):
        diff_heap([prof])


def test_group_bytes_counts_stacks_and_heap_under_the_group(
        globalmap: tuple[str, list[Path]]) -> None:
    _, paths = globalmap
    last = _load(paths)[-1]
    remember = next(d.site for d in diff_heap([last]).sites if d.site.function == "main.remember")
    held = heap_under(last, "main.remember")
    assert held > 2 << 20
    # Ten goroutines at that frame, no MemStats: ten minimum stacks plus the heap under it.
    total, how = group_bytes(10, remember, None, 100, last)
    assert total == 10 * MIN_STACK + held
    assert "lower bound" in how and "main.remember" in how
    # With MemStats, the stack estimate is StackInuse spread over the goroutines.
    assert stack_bytes_each({"StackInuse": 1 << 20}, 64) == 16384
    assert stack_bytes_each({"StackInuse": 1000}, 64) == MIN_STACK
