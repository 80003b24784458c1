"""`gopark goroutines`: exit codes, JSON validity, filters, similarity, plain text when piped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gofixtures
import pytest
from gopark.cli import main
from leakcaptures import N, capture


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:  # type: ignore[type-arg]
    assert main(["goroutines", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_json_inventory(capsys: pytest.CaptureFixture[str]) -> None:
    cap = capture("sendaftertimeout", "1.24")
    doc = run_json(capsys, str(cap.files["debug2"]), str(cap.files["proto"]))
    assert doc["schema"] == "gopark.goroutines/v1"
    assert [i["form"] for i in doc["inventories"]] == ["debug2", "proto"]
    dump, proto = doc["inventories"]
    top = dump["groups"][0]
    assert (top["count"], top["category"]) == (N, "chan-send")
    assert top["location"]["function"] == "main.fetch.func1"
    assert top["creators"] > N // 2 and len(top["goroutine_ids"]) == N
    assert proto["groups"][0]["key"] == top["key"]  # same group across forms
    assert dump["goroutines"] == sum(g["count"] for g in dump["groups"])


def test_filters(capsys: pytest.CaptureFixture[str]) -> None:
    dump = str(capture("mutexpileup", "1.24").files["debug2"])
    only = run_json(capsys, dump, "--filter", r"function=main\.\(\*cache\)")["inventories"][0]
    assert {g["location"]["function"] for g in only["groups"]} == {
        "main.(*cache).get", "main.(*cache).refresh"}
    state = run_json(capsys, dump, "--filter", "state=IO wait")["inventories"][0]
    assert state["groups"] and all(g["states"] == {"IO wait": g["count"]}
                                   for g in state["groups"])
    cat = run_json(capsys, dump, "--filter", "category=mutex")["inventories"][0]
    assert [g["category"] for g in cat["groups"]] == ["mutex"]
    # nothing there has waited a minute yet
    assert run_json(capsys, dump, "--filter", "min-wait=1")["inventories"][0]["groups"] == []


def test_similarity(capsys: pytest.CaptureFixture[str]) -> None:
    dump = str(capture("httpbodyunclosed", "1.24").files["debug2"])
    sizes = {s: len(run_json(capsys, dump, "--similarity", s)["inventories"][0]["groups"])
             for s in ("exact", "functions", "user")}
    assert sizes["exact"] >= sizes["functions"] >= sizes["user"]


def test_plain_text_when_piped() -> None:
    dump = str(capture("sendaftertimeout", "1.21").files["debug2"])
    out = subprocess.run([sys.executable, "-m", "gopark", "goroutines", dump, "--limit", "3"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "goroutines in" in lines[0]
    assert lines[1].split()[:3] == ["COUNT", "CATEGORY", "STATE"]
    assert lines[2].split()[:4] == [str(N), "chan-send", "chan", "send"]
    assert "main.fetch.func1 (main.go:" in lines[2]
    assert "smaller groups not shown" in lines[-1]
    assert not any(ch in out.stdout for ch in "┃│━─")


def test_stacks(capsys: pytest.CaptureFixture[str]) -> None:
    dump = str(capture("waitgroupmissing", "1.24").files["debug2"])
    assert main(["goroutines", dump, "--stacks", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    block = out.split("\n#1 ")[1]
    assert block.startswith(f"{N} × waitgroup [sync.WaitGroup.Wait]; goroutines ")
    assert "> wg.Wait()" in block
    assert "sync.(*WaitGroup).Wait" in block and "main.runBatch" in block
    assert "created by goparkfixtures/harness.Run" in block
    assert "\n#2 " not in out


def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"this is not a goroutine dump\n" * 3)
    assert main(["goroutines", str(junk)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(junk) in err and "expected" in err
    assert main(["goroutines", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    dump = str(capture("sendaftertimeout", "1.21").files["debug2"])
    assert main(["goroutines", dump, "--filter", "colour=red"]) == 2
    assert "--filter" in capsys.readouterr().err


def test_damaged_dump_via_subprocess(tmp_path: Path) -> None:
    """A real dump cut in the middle of a frame: one line on stderr, exit 2, no traceback."""
    data = capture("rangeunclosed", "1.24").files["proto"].read_bytes()
    cut = tmp_path / "cut.pb.gz"
    cut.write_bytes(data[: len(data) // 2])
    out = subprocess.run([sys.executable, "-m", "gopark", "goroutines", str(cut)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert str(cut) in out.stderr


def test_bundle_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bundle from `gopark collect` shows its last full dump."""
    bundle = tmp_path / "bundle"
    with gofixtures.run("sendaftertimeout", "1.24", ["-n", str(N)]) as p:
        assert main(["collect", p.base_url, "-o", str(bundle), "--duration", "2s",
                     "--interval", "1s"]) == 0
    capsys.readouterr()
    doc = run_json(capsys, str(bundle))
    [inv] = doc["inventories"]
    assert inv["form"] == "debug2"
    top = inv["groups"][0]
    assert (top["count"], top["category"]) == (N, "chan-send")
