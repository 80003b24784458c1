"""Time gopark's pprof protobuf parser against `go tool pprof -raw` on one large profile.

The profile starts as a real one: the CPU profile of the labeledwork fixture under Go 1.27
(labelled samples, inlined frames). Its samples are repeated with distinct values until
there are --samples of them, so stacks and labels are real and the size is what is chosen.

    python benchmarks/pprof_parse.py --samples 200000
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import gofixtures  # noqa: E402
from gopark.formats import profile_pb2  # noqa: E402

GO = "1.27"


def make_profile(samples: int, out: Path) -> None:
    args = ["-n", "200", "-rate", "200"]
    with gofixtures.run("labeledwork", GO, args) as p:
        real = gzip.decompress(gofixtures.fetch(p, "profile?seconds=2"))
    pb = profile_pb2.Profile()  # type: ignore[attr-defined]
    pb.ParseFromString(real)
    base = list(pb.sample)
    if not base:
        sys.exit("the CPU profile came back empty; run again")
    for i in range(samples - len(base)):
        s = pb.sample.add()
        s.CopyFrom(base[i % len(base)])
        s.value[0] = i + 1
    out.write_bytes(gzip.compress(pb.SerializeToString()))


# Runs a command and prints its peak RSS (KiB): a fresh parent per measurement, so the
# children's maximum belongs to that command alone.
_PEAK = ("import resource, subprocess, sys; "
         "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Best wall time of 3 runs, and peak RSS in MiB."""
    best = float("inf")
    peak = 0
    for _ in range(3):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _PEAK, *cmd], check=True, env=env,
                             capture_output=True, text=True).stdout
        best = min(best, time.perf_counter() - start)
        peak = max(peak, int(out.strip()) // 1024)
    return best, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200_000)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.pb.gz"
        make_profile(opts.samples, path)
        print(f"{path.stat().st_size / 1e6:.1f} MB gzipped, {opts.samples} samples")
        ours = [sys.executable, "-c",
                "import sys; from gopark.formats.pprof import parse_profile; "
                "parse_profile(open(sys.argv[1], 'rb').read(), sys.argv[1])", str(path)]
        secs, mib = timed(ours)
        print(f"gopark parse_profile      {secs:6.2f} s  peak {mib} MiB")
        env = dict(os.environ, GOTOOLCHAIN="local", GOROOT=str(gofixtures.goroot(GO)))
        go = [str(gofixtures.go_binary(GO)), "tool", "pprof", "-raw", "-symbolize=none", str(path)]
        secs, mib = timed(go, env)
        print(f"go tool pprof -raw        {secs:6.2f} s  peak {mib} MiB")


if __name__ == "__main__":
    main()
