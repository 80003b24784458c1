"""What observing a service costs the service: target CPU with and without gopark.

Two identical copies of a busy Go service with 50,000 parked goroutines run side by side
(tests/goprograms/loadtarget: -n idle goroutines, -rate requests/s of fixed CPU work).
gopark observes one of them at its default settings — `gopark collect` (a goroutine
profile every 10 s for 60 s, heap at both ends, goroutineleak at the end; the debug=2
dumps are skipped above 20,000 goroutines) and/or `gopark watch` (a goroutine profile
and heap?debug=1 every 5 s) — while the other runs unobserved. Each target's CPU time
(user+system, /proc/PID/stat) over the same window gives the added CPU; a second round
swaps the roles so a difference between the two copies cancels out.

    python benchmarks/target_load.py                 # collect and watch, 2 rounds each
    python benchmarks/target_load.py --mode watch --duration 30

Prints, per mode: the unobserved and observed target's CPU (cores), the CPU gopark added
(seconds, % of the target's own CPU, % of one core) and gopark's own CPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import gofixtures  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def gopark_command(mode: str, url: str, duration: float, out: Path) -> list[str]:
    """gopark at its default settings, for `duration` seconds."""
    base = [sys.executable, "-m", "gopark"]
    if mode == "collect":
        return [*base, "collect", url, "-o", str(out), "--quiet",
                "--duration", f"{duration:g}s"]
    return [*base, "watch", url, "--iterations", str(max(1, round(duration / 5)))]


@dataclass
class Round:
    observed_cpu: float
    unobserved_cpu: float
    gopark_cpu: float
    seconds: float


def one_round(mode: str, args: argparse.Namespace, observe_first: bool) -> Round:
    target_args = ["-n", str(args.goroutines), "-rate", str(args.rate)]
    with gofixtures.run("loadtarget", args.go, target_args) as a, \
            gofixtures.run("loadtarget", args.go, target_args) as b:
        observed, other = (a, b) if observe_first else (b, a)
        assert observed.proc is not None and other.proc is not None
        time.sleep(args.settle)  # let both reach their steady load
        with tempfile.TemporaryDirectory() as tmp:
            cmd = gopark_command(mode, observed.base_url, args.duration, Path(tmp) / "bundle")
            start = time.monotonic()
            c_obs, c_other = cpu_seconds(observed.proc.pid), cpu_seconds(other.proc.pid)
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(proc.pid, 0)
            c_obs2, c_other2 = cpu_seconds(observed.proc.pid), cpu_seconds(other.proc.pid)
            seconds = time.monotonic() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise SystemExit(f"gopark {mode} failed ({proc.returncode}): {err}")
    return Round(observed_cpu=c_obs2 - c_obs, unobserved_cpu=c_other2 - c_other,
                 gopark_cpu=usage.ru_utime + usage.ru_stime, seconds=seconds)


def report(mode: str, rounds: list[Round]) -> None:
    secs = sum(r.seconds for r in rounds)
    obs = sum(r.observed_cpu for r in rounds)
    base = sum(r.unobserved_cpu for r in rounds)
    added = obs - base
    print(f"{mode:8} {len(rounds)} rounds, {secs:6.1f} s: target CPU unobserved "
          f"{base / secs:.3f} cores, observed {obs / secs:.3f} cores; added {added:+.2f} CPU-s "
          f"= {added / base:+.2%} of the target's CPU, {added / secs:+.2%} of one core "
          f"({added / secs * 60:+.2f} CPU-s/min); gopark itself "
          f"{sum(r.gopark_cpu for r in rounds) / secs:.2%} of one core")
    for i, r in enumerate(rounds, 1):
        print(f"         round {i}: observed {r.observed_cpu:.2f} s, unobserved "
              f"{r.unobserved_cpu:.2f} s over {r.seconds:.1f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("collect", "watch", "both"), default="both")
    p.add_argument("--goroutines", type=int, default=50_000)
    p.add_argument("--rate", type=int, default=2000,
                   help="requests/s of fixed CPU work (sets the target's own load)")
    p.add_argument("--duration", type=float, default=60.0,
                   help="seconds gopark observes (collect's default is 60)")
    p.add_argument("--rounds", type=int, default=2, help="rounds per mode (roles swap)")
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument("--go", default="1.27", choices=sorted(gofixtures.GO_VERSIONS))
    args = p.parse_args()
    gofixtures.program("loadtarget", args.go)  # build once, outside the measurement
    print(f"target: loadtarget with {args.goroutines:,} parked goroutines, {args.rate}/s "
          f"requests of fixed work, Go {args.go}; {os.cpu_count()} CPUs")
    modes = ("collect", "watch") if args.mode == "both" else (args.mode,)
    for mode in modes:
        rounds = [one_round(mode, args, observe_first=i % 2 == 0) for i in range(args.rounds)]
        report(mode, rounds)


if __name__ == "__main__":
    main()
