"""`gopark watch` against real Go services on loopback: plain output, live view, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import gofixtures
from gopark.cli import main
from terminal import run_in_terminal

WATCH = [sys.executable, "-m", "gopark", "watch"]


def _watch(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WATCH, url, *extra], capture_output=True, text=True, timeout=120)


def test_plain_output_highlights_the_growing_group() -> None:
    with gofixtures.run("sendaftertimeout", "1.24", ["-n", "30", "-rate", "20"]) as p:
        out = _watch(p.base_url, "--interval", "0.4s", "--iterations", "6")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    refreshes = [ln for ln in lines if re.match(r"\d\d:\d\d:\d\d goroutines ", ln)]
    assert len(refreshes) == 6
    assert all("heap in use" in ln and "MiB" in ln for ln in refreshes)
    totals = [int(re.search(r"goroutines ([\d,]+)", ln)[1].replace(",", ""))  # type: ignore[index]
              for ln in refreshes]
    assert totals == sorted(totals) and totals[-1] - totals[0] >= 20
    growing = [ln for ln in lines if " growing " in ln]
    assert growing and all("main.fetch.func1 main.go:20" in ln for ln in growing)
    # The summary names the group and its rate (20/s ≈ 1,200/min). Loose bounds: on a loaded
    # machine each snapshot's time is taken up to a few hundred ms after the target wrote it,
    # which over a ~2 s watch moves the rate by a quarter; counting per second or twice
    # (20/min, 2,400/min) would still be far out.
    summary = lines[lines.index(next(ln for ln in lines if ln.startswith("watched "))):]
    grow = next(ln for ln in summary if ln.startswith("growing:"))
    rate = float(re.search(r"\(\+([\d,.]+)/min\)", grow)[1].replace(",", ""))  # type: ignore[index]
    assert 600 < rate < 2000 and "main.fetch.func1" in grow
    assert any("not steady" in ln for ln in summary)


def test_healthy_pool_shows_nothing_growing() -> None:
    with gofixtures.run("healthypool", "1.24", ["-n", "0", "-rate", "50"]) as p:
        out = _watch(p.base_url, "--interval", "0.3s", "--iterations", "6")
    assert out.returncode == 0, out.stderr
    assert " growing " not in out.stdout
    assert "no group grew steadily" in out.stdout


def test_ctrl_c_prints_the_summary_and_exits_cleanly() -> None:
    with gofixtures.run("tickerloop", "1.27", ["-n", "10", "-rate", "20"]) as p:
        proc = subprocess.Popen([*WATCH, p.base_url, "--interval", "0.3s"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        seen = 0
        while seen < 8:  # enough refreshes for a trend test even if one saw no growth
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            seen += " goroutines " in line
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert re.search(r"watched http://127\.0\.0\.1:\d+/debug/pprof/ for \d+ s \(\d+ snapshots\)",
                     rest)
    assert "growing:" in rest and "main.startSession.func1" in rest


def test_live_view_on_a_terminal() -> None:
    with gofixtures.run("sendaftertimeout", "1.27", ["-n", "30", "-rate", "20"]) as p:
        code, screen = run_in_terminal(
            [*WATCH, p.base_url, "--interval", "0.3s", "--iterations", "7"],
            dict(os.environ, COLUMNS="160", TERM="xterm"), timeout=120, keep_styles=True)
    assert code == 0, screen
    assert "\x1b[" in screen  # styled and redrawn in place
    for column in ("goroutines", "change", "rate", "trend", "where"):
        assert column in screen
    assert "main.fetch.func1 main.go:20" in screen
    assert "Ctrl-C to stop" in screen and "heap in use" in screen
    assert "growing:" in screen  # the summary after the last refresh


def test_unreachable_target_is_one_line_and_exit_2(capsys: object) -> None:
    # A port nothing listens on (bind, learn the port, close).
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    out = _watch(f"http://127.0.0.1:{port}/debug/pprof/", "--iterations", "2", "--interval",
                 "0.1s")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("gopark: error: ")
    assert f"127.0.0.1:{port}" in out.stderr
    assert main(["watch", "http://127.0.0.1:1/", "--iterations", "-1"]) == 2


def test_interval_stretches_on_a_big_target() -> None:
    # 20,000 goroutines: each goroutine profile takes the target tens of ms to write, so at
    # 2% of a core the watch may not refresh every 0.2 s.
    with gofixtures.run("loadtarget", "1.27", ["-n", "20000"]) as p:
        started = time.monotonic()
        out = _watch(p.base_url, "--interval", "0.2s", "--iterations", "3")
        took = time.monotonic() - started
        fast = _watch(p.base_url, "--interval", "0.2s", "--iterations", "3", "--max-load", "0")
    assert out.returncode == 0 and fast.returncode == 0, out.stderr + fast.stderr
    waits = [float(m) for m in re.findall(r"next refresh in ([\d.]+) s \(stretched", out.stdout)]
    assert len(waits) == 3 and min(waits) >= 0.5
    assert took >= sum(waits[:2])  # it did wait that long between refreshes
    assert "stretched" not in fast.stdout
    assert re.search(r"goroutines 20,0\d\d", out.stdout)


def test_target_dying_mid_watch_is_reported_not_fatal() -> None:
    with gofixtures.run("sendaftertimeout", "1.24", ["-n", "10", "-rate", "20"]) as p:
        proc = subprocess.Popen([*WATCH, p.base_url, "--interval", "0.3s", "--iterations", "8",
                                 "--timeout", "2s"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for _ in range(2):  # two refreshes while it lives
            while " goroutines " not in proc.stdout.readline():
                pass
        p.stop()
        rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert re.search(r"error: .*(connect|refused|closed)", rest)
    assert re.search(r"\(\d+ snapshots, \d+ failed requests\)", rest)
