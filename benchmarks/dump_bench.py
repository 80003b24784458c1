"""Time `gopark goroutines` on a 100,000-goroutine goroutine?debug=2 dump of a real program.

The manygoroutines fixture (tests/goprograms/manygoroutines) starts --goroutines blocked
goroutines in five shapes (sends nobody receives, a mutex queue, waits at the bottom of a
deep call chain, sleeps, a WaitGroup); its debug=2 dump is taken over HTTP like any
service's. The dump is parsed and grouped by the CLI in a fresh process each time (best
wall time of 3, peak RSS), and the parser alone is timed in this process.

    python benchmarks/dump_bench.py                  # 100,000 goroutines, Go 1.27
    python benchmarks/dump_bench.py --keep big.txt   # also keep the dump
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
from gopark.formats.dump import parse_dump  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--goroutines", type=int, default=100_000)
    parser.add_argument("--go", default="1.27", choices=sorted(gofixtures.GO_VERSIONS))
    parser.add_argument("--keep", type=Path, help="write the dump here (and reuse it if there)")
    args = parser.parse_args()

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

        cli_wall, cli_rss = timed([sys.executable, "-m", "gopark", "goroutines", str(dump)])
        json_wall, json_rss = timed([sys.executable, "-m", "gopark", "goroutines", str(dump),
                                     "--format", "json"])

    print(f"dump: {len(data) / 1e6:.1f} MB, {found:,} goroutines (Go {args.go})")
    print(f"{'what':<40} {'wall s':>7} {'peak MiB':>9}")
    print(f"{'parse_dump (in process, cpu ' + f'{parse_cpu:.2f} s)':<40} {parse_wall:>7.2f}"
          f" {parse_rss:>9.0f}")
    print(f"{'gopark goroutines FILE':<40} {cli_wall:>7.2f} {cli_rss:>9.0f}")
    print(f"{'gopark goroutines FILE --format json':<40} {json_wall:>7.2f} {json_rss:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
