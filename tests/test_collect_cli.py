"""`gopark collect` as a user runs it: piped, on a terminal, interrupted, misused."""

from __future__ import annotations

import os
import pty
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gofixtures
import pytest
from gopark.cli.arguments import parse_duration, parse_size
from gopark.collect import open_bundle
from gopark.collect.client import PprofClient, normalize_url, redact_url
from gopark.demo.goprocess import GoProcess
from gopark.errors import GoparkError

GOPARK = [sys.executable, "-m", "gopark", "collect"]


@pytest.fixture(scope="module")
def target() -> Iterator[GoProcess]:
    with gofixtures.run("sendaftertimeout", "1.27", ["-n", "20", "-rate", "10"]) as p:
        yield p


def gopark(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GOPARK, *args], capture_output=True, text=True, timeout=timeout)


def test_piped_prints_one_summary_line(target: GoProcess, tmp_path: Path) -> None:
    out = tmp_path / "b"
    r = gopark(target.base_url, "-o", str(out), "--duration", "1s", "--interval", "500ms")
    assert r.returncode == 0, r.stderr
    b = open_bundle(out)
    assert re.fullmatch(rf"bundle {re.escape(str(out))}: {len(b.files)} files, \d+ KiB "
                        r"\[complete\]\n", r.stdout)
    assert "\x1b[" not in r.stderr  # no progress bar when not on a terminal
    assert [line for line in r.stderr.splitlines() if not line.startswith("note: ")] == []
    assert "SetMutexProfileFraction" in r.stderr


def test_verbose_lists_requests_and_quiet_says_nothing(target: GoProcess, tmp_path: Path) -> None:
    v = gopark(target.base_url, "-o", str(tmp_path / "v"), "--duration", "0", "-v")
    assert v.returncode == 0
    assert re.search(r"start\s+goroutine\?debug=2\s+[\d.]+s\s+\d+ bytes", v.stderr), v.stderr
    q = gopark(target.base_url, "-o", str(tmp_path / "q"), "--duration", "0", "--quiet")
    assert q.returncode == 0 and q.stdout == q.stderr == ""
    assert open_bundle(tmp_path / "q").status == "complete"


def test_verbose_says_when_a_request_was_retried(tmp_path: Path) -> None:
    with gofixtures.run("gateway", "1.27", ["-n", "0", "-throttle", "heap:1:0"]) as p:
        r = gopark(p.base_url, "-o", str(tmp_path / "b"), "--duration", "0", "-v")
    assert r.returncode == 0, r.stderr
    retried = [line for line in r.stderr.splitlines() if "retries" in line]
    assert len(retried) == 1 and re.search(r"start\s+heap\s+[\d.]+s\s+\d+ bytes "
                                           r"\(after 1 retries\)$", retried[0]), r.stderr
    (heap,) = [f for f in open_bundle(tmp_path / "b").files if f.retries]
    assert heap.retries == ["HTTP 429: slow down (Retry-After 0 s); retried after 0.0 s"]


def on_terminal(args: list[str], stdout: Path) -> tuple[int, str]:
    """Run gopark with stderr on a pseudo-terminal (stdout to a file): exit code and what
    the terminal received."""
    leader, follower = pty.openpty()
    with stdout.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gopark", *args], stdout=out,
                                stderr=follower, text=True,
                                env=dict(os.environ, COLUMNS="120", TERM="xterm"))
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return proc.wait(timeout=60), seen.decode(errors="replace")


def test_terminal_shows_progress_and_time_left(target: GoProcess, tmp_path: Path) -> None:
    code, text = on_terminal(["collect", target.base_url, "-o", str(tmp_path / "b"),
                              "--duration", "2s", "--interval", "1s"], tmp_path / "out")
    assert code == 0
    assert "collecting" in text and re.search(r"\d+s left", text), text[-2000:]


def test_diagnose_url_shows_progress_too(target: GoProcess, tmp_path: Path) -> None:
    code, text = on_terminal(["diagnose", target.base_url, "--duration", "2s",
                              "--interval", "1s"], tmp_path / "out")
    assert code == 0, text[-2000:]
    assert "collecting" in text and re.search(r"\d+s left", text), text[-2000:]
    assert "main.fetch.func1" in (tmp_path / "out").read_text()  # the diagnosis follows


def wait_for_snapshots(bundle: Path, n: int, timeout: float = 120) -> None:
    """Until the bundle being written lists n goroutine snapshots (the machine may be slow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(open_bundle(bundle).snapshots) >= n:
                return
        except GoparkError:
            pass  # not created yet
        time.sleep(0.1)
    raise AssertionError(f"{bundle}: fewer than {n} snapshots after {timeout} s")


def test_ctrl_c_keeps_what_is_done(target: GoProcess, tmp_path: Path) -> None:
    out = tmp_path / "b"
    proc = subprocess.Popen([*GOPARK, target.base_url, "-o", str(out), "--duration", "60s",
                             "--interval", "200ms"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_snapshots(out, 3)
    proc.send_signal(signal.SIGINT)
    # Ctrl-C ignored would run on to the 60 s window's end and exit 0, failing below.
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    b = open_bundle(out)
    kept = sum(f.ok for f in b.files)
    assert stderr == f"gopark: interrupted; kept {kept} files in {out}\n"
    assert b.status == "interrupted" and b.finished is not None
    assert len(b.select("goroutine", "proto")) >= 3
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def test_errors_are_one_line_exit_2(target: GoProcess, tmp_path: Path) -> None:
    port = _closed_port()
    r = gopark(f"127.0.0.1:{port}", "-o", str(tmp_path / "a"), "--timeout", "1s")
    assert r.returncode == 2
    assert r.stderr == (f"gopark: error: http://127.0.0.1:{port}/debug/pprof/: cannot connect: "
                        "[Errno 111] Connection refused\n")

    r = gopark(f"http://{target.addr}/nothing/here/", "-o", str(tmp_path / "b"))
    assert r.returncode == 2
    assert r.stderr == (f"gopark: error: http://{target.addr}/nothing/here/: HTTP 404: "
                        "404 page not found\n")

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("mine")
    r = gopark(target.base_url, "-o", str(tmp_path / "c"))
    assert r.returncode == 2
    assert r.stderr == f"gopark: error: {tmp_path / 'c'}: exists and is not an empty directory\n"

    r = gopark(target.base_url, "--duration", "soon")
    assert r.returncode == 2 and "'soon' is not a duration" in r.stderr

    r = gopark(target.base_url, "--header", "Bearer s3cr3t")
    assert r.returncode == 2 and "'Name: value'" in r.stderr and "s3cr3t" not in r.stderr


def test_duration_and_size_syntax() -> None:
    assert parse_duration("1m30s") == 90 and parse_duration("500ms") == 0.5
    assert parse_duration("2") == 2 and parse_duration("1h") == 3600
    assert parse_size("512MB") == 512 << 20 and parse_size("1GiB") == 1 << 30
    assert parse_size("100k") == 100 << 10 and parse_size("77") == 77


def test_bundle_valid_even_when_gopark_is_killed(target: GoProcess, tmp_path: Path) -> None:
    out = tmp_path / "b"
    proc = subprocess.Popen([*GOPARK, target.base_url, "-o", str(out), "--duration", "60s",
                             "--interval", "200ms", "--quiet"])
    wait_for_snapshots(out, 3)
    proc.kill()
    proc.wait(timeout=60)
    b = open_bundle(out)  # the manifest on disk always describes whole files
    assert b.status == "collecting" and b.finished is None
    assert len(b.snapshots) >= 3
    assert all(b.path(f).stat().st_size == f.size for f in b.files if f.ok)


def test_target_url_forms() -> None:
    assert normalize_url("127.0.0.1:6060") == "http://127.0.0.1:6060/debug/pprof/"
    assert normalize_url("https://h:1/") == "https://h:1/debug/pprof/"
    assert normalize_url("http://h/admin/pprof") == "http://h/admin/pprof/"
    with PprofClient("https://u:p@h:8443/debug/pprof/?token=abc") as c:
        # A proxy's access token in the query rides along on every request...
        assert c.url("goroutine?debug=2") == "https://h:8443/debug/pprof/goroutine?debug=2&token=abc"
        assert c.url("/metrics") == "https://h:8443/metrics?token=abc"
        # ...but neither it nor the password is ever written down.
        assert redact_url(c.base_url) == "https://h:8443/debug/pprof/"
    with pytest.raises(GoparkError, match="not an http"):
        normalize_url("ftp://h/")
