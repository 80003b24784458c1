"""Time `gopark goroutines` on a 100,000-goroutine goroutine?debug=2 dump of a real program.

The manygoroutines fixture (tests/goprograms/manygoroutines) starts --goroutines blocked
goroutines in five shapes (sends nobody receives, a mutex queue, waits at the bottom of a
deep call chain, sleeps, a WaitGroup); its debug=2 dump is taken over HTTP like any
service's. The dump is parsed and grouped by the CLI in a fresh process each time (best
wall time of 3, peak RSS), and the parser alone is timed in this process. With
--panicparse, panicparse (benchmarks/panicparse, a Go module) parses the same file.

    python benchmarks/dump_bench.py                  # 100,000 goroutines, Go 1.27
    python benchmarks/dump_bench.py --keep big.txt   # also keep the dump
    python benchmarks/dump_bench.py --panicparse     # and time panicparse (needs the
                                                     # Go module proxy the first time)
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import gofixtures  # noqa: E402
from gopark.demo.goprocess import go_env  # noqa: E402
from gopark.formats.dump import parse_dump  # noqa: E402

PANICPARSE = Path(__file__).resolve().parent / "panicparse"

# Runs a command and prints its peak RSS (KiB): a fresh parent per measurement, so the
# children's maximum belongs to that command alone.
_PEAK = ("import resource, subprocess, sys; "
         "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def make_dump(goroutines: int, version: str, out: Path) -> None:
    """The debug=2 dump of manygoroutines with ``goroutines`` parked goroutines."""
    with gofixtures.run("manygoroutines", version, ["-n", str(goroutines)]) as p:
        out.write_bytes(gofixtures.fetch(p, "goroutine?debug=2", timeout=600))


def timed(cmd: list[str], runs: int = 3) -> tuple[float, float]:
    """Best wall time (s) of ``runs`` runs of ``cmd`` and its peak RSS (MiB)."""
    best, peak = float("inf"), 0
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _PEAK, *cmd], check=True,
                             capture_output=True, text=True).stdout
        best = min(best, time.perf_counter() - start)
        peak = max(peak, int(out.split()[-1]))
    return best, peak / 1024


def build_panicparse(version: str, out: Path) -> Path | None:
    """The panicparse benchmark command, or None (with the reason) if it cannot be built."""
    go = str(gofixtures.go_binary(version))
    env = go_env(go, {"GOCACHE": str(gofixtures.CACHE / "gocache"),
                      "GOPATH": str(gofixtures.CACHE / "gopath")})
    proc = subprocess.run([go, "build", "-o", str(out), "."], cwd=PANICPARSE, env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        print(f"panicparse: not built: {proc.stderr.strip()[:300]}", file=sys.stderr)
        return None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--goroutines", type=int, default=100_000)
    parser.add_argument("--go", default="1.27", choices=sorted(gofixtures.GO_VERSIONS))
    parser.add_argument("--keep", type=Path, help="write the dump here (and reuse it if there)")
    parser.add_argument("--panicparse", action="store_true", help="also time panicparse")
    args = parser.parse_args()
    rows: list[tuple[str, float, float]] = []

    with tempfile.TemporaryDirectory() as tmp:
        dump = args.keep or Path(tmp) / "goroutines.txt"
        if not dump.exists():
            print(f"making a {args.goroutines:,}-goroutine dump with Go {args.go} ...",
                  file=sys.stderr)
            make_dump(args.goroutines, args.go, dump)
        data = dump.read_bytes()

        start, cpu = time.perf_counter(), time.process_time()
        snapshots = parse_dump(data, str(dump))
        parse_wall, parse_cpu = time.perf_counter() - start, time.process_time() - cpu
        found = sum(len(s.goroutines) for s in snapshots)
        parse_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        rows.append((f"parse_dump (in process; cpu {parse_cpu:.2f} s)", parse_wall, parse_rss))
        gopark = [sys.executable, "-m", "gopark", "goroutines", str(dump)]
        rows.append(("gopark goroutines FILE", *timed(gopark)))
        rows.append(("gopark goroutines FILE --format json", *timed([*gopark, "--format", "json"])))
        if args.panicparse:
            pp = build_panicparse(args.go, Path(tmp) / "panicparse-bench")
            if pp is not None:
                rows.append(("panicparse: parse only", *timed([str(pp), "-parse-only", str(dump)])))

    print(f"dump: {len(data) / 1e6:.1f} MB, {found:,} goroutines (Go {args.go})")
    print(f"{'what':<44} {'wall s':>7} {'peak MiB':>9}")
    for what, wall, rss in rows:
        print(f"{what:<44} {wall:>7.2f} {rss:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
