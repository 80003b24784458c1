"""`gopark diagnose`: text and JSON output, --fail-on exit codes, bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gopark.cli import main
from leakcaptures import N, capture


def test_json_is_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    cap = capture("waitgroupmissing", "1.21")
    assert main(["diagnose", str(cap.files["debug2"]), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "gopark.diagnosis/v1"
    top = doc["findings"][0]
    assert (top["verdict"], top["category"], top["goroutines"]) == ("suspected", "waitgroup", N)
    assert top["location"]["function"] == "main.runBatch"
    assert "defer wg.Done()" in top["fix"]


def test_fail_on(capsys: pytest.CaptureFixture[str]) -> None:
    leaky = str(capture("rangeunclosed", "1.24").files["debug2"])
    healthy = str(capture("healthypool", "1.24").files["debug2"])
    assert main(["diagnose", leaky, "--fail-on", "suspected"]) == 1
    assert main(["diagnose", leaky, "--fail-on", "proven"]) == 0
    assert main(["diagnose", healthy, "--fail-on", "suspected"]) == 0
    cap = capture("rangeunclosed", "1.27")
    assert main(["diagnose", str(cap.files["debug2"]), str(cap.files["leak-proto"]),
                 "--fail-on", "proven"]) == 1
    capsys.readouterr()


def test_text_report_when_piped() -> None:
    cap = capture("mutexpileup", "1.27")
    out = subprocess.run([sys.executable, "-m", "gopark", "diagnose", str(cap.files["debug2"])],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "F1 [suspected] mutex:" in text
    assert "> c.mu.Lock()" in text
    assert "main.(*cache).refresh" in text
    assert "fix: don't hold locks across network calls" in text
    assert "Known idle shapes" in text and "accept loop" in text
    assert "\x1b[" not in text  # no colour codes in a pipe


def test_threshold_option(capsys: pytest.CaptureFixture[str]) -> None:
    dump = str(capture("mutexpileup", "1.21").files["debug2"])
    assert main(["diagnose", dump, "--threshold", "100000", "--fail-on", "suspected"]) == 0
    assert "No leak suspects" in capsys.readouterr().out


def test_unreadable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = capture("sendaftertimeout", "1.21").files["proto"].read_bytes()
    broken = tmp_path / "broken.pb.gz"
    broken.write_bytes(data[: len(data) * 2 // 3])  # a real profile, cut short
    code = main(["diagnose", str(broken)])
    err = capsys.readouterr().err
    assert code == 2 and str(broken) in err and len(err.strip().splitlines()) == 1


def test_ignore_leaves_out_a_known_shape(capsys: pytest.CaptureFixture[str]) -> None:
    """--ignore REGEX: a finding with a matching function in its stack, location or creator
    is left out (counted in a note); the rest stays, ids are given again, and --fail-on
    judges what is left."""
    dump = str(capture("rangeunclosed", "1.24").files["debug2"])
    assert main(["diagnose", dump, "--format", "json"]) == 0
    full = json.loads(capsys.readouterr().out)
    top = full["findings"][0]
    assert top["verdict"] == "suspected" and top["location"]["function"] == "main.consume"
    # by the creator's function only (not in the leaking goroutines' own stacks)
    creator = top["created_by"]["function"]
    assert not [s for s in top["stack"] if s.startswith(f"{creator} ")]
    args = ["diagnose", dump, "--format", "json", "--ignore", f"^{re.escape(creator)}$"]
    assert main([*args, "--fail-on", "suspected"]) == 0
    kept = json.loads(capsys.readouterr().out)
    assert not [f for f in kept["findings"] if f["location"] == top["location"]]
    assert len(kept["findings"]) < len(full["findings"])
    assert [f["id"] for f in kept["findings"]] == [f"F{i}" for i in
                                                   range(1, len(kept["findings"]) + 1)]
    assert any("left out by --ignore" in n for n in kept["notes"])
    # a pattern that matches nothing changes nothing
    assert main(["diagnose", dump, "--format", "json", "--ignore", "^no\\.such$",
                 "--fail-on", "suspected"]) == 1
    assert json.loads(capsys.readouterr().out)["findings"] == full["findings"]


def test_ignore_with_a_bad_regex_is_a_usage_error() -> None:
    dump = str(capture("rangeunclosed", "1.24").files["debug2"])
    out = subprocess.run([sys.executable, "-m", "gopark", "diagnose", dump, "--ignore", "(*"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("gopark: error: --ignore '(*': not a regular expression")
    assert out.stderr.count("\n") == 1
