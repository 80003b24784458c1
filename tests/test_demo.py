"""`gopark demo`: builds the bundled service with a real Go, leaks, diagnoses, stops it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gofixtures
import pytest
from gopark.demo import run as demo


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = dict(os.environ)
    env["GOPARK_GO"] = str(gofixtures.go_binary("1.21"))  # the oldest Go the demo supports
    env["GOPARK_CACHE"] = str(tmp_path_factory.mktemp("gopark-cache"))
    return env


def test_demo_finds_the_leak(demo_env: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-m", "gopark", "demo", "--requests", "120",
                          "--format", "json"], capture_output=True, text=True, env=demo_env,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    top = doc["findings"][0]
    assert (top["verdict"], top["category"]) == ("suspected", "chan-send")
    assert top["location"]["function"] == "main.lookupPrice.func1"
    assert top["location"]["file"].endswith("gopark/demo/leaky/main.go")
    assert top["source_line"].startswith("result <- queryUpstream(q)")
    # every search timed out and left its worker behind
    assert top["goroutines"] == 120
    assert "120 searches timed out" in out.stderr
    # the healthy audit pool is recognised, not suspected
    pools = [f for f in doc["findings"] if f["location"]
             and f["location"]["function"] == "main.auditWorker"]
    assert [f["verdict"] for f in pools] == ["benign"]
    # the program was stopped: its built binary is no longer running
    built = next(Path(demo_env["GOPARK_CACHE"]).rglob("leaky"))
    ps = subprocess.run(["pgrep", "-f", str(built)], capture_output=True, text=True)
    assert ps.stdout.strip() == ""


def test_demo_build_is_cached(demo_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOPARK_CACHE", demo_env["GOPARK_CACHE"])
    first = demo.build_demo(demo_env["GOPARK_GO"])
    stamp = first.stat().st_mtime_ns
    assert demo.build_demo(demo_env["GOPARK_GO"]) == first
    assert first.stat().st_mtime_ns == stamp


def test_no_go_is_a_clear_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GOPARK_GO"}
    env["PATH"] = str(tmp_path)  # no go here
    env["GOPARK_CACHE"] = str(tmp_path / "cache")
    out = subprocess.run([sys.executable, "-m", "gopark", "demo"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 2
    assert "no Go toolchain found" in out.stderr
    assert "Traceback" not in out.stderr
