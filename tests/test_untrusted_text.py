"""Names and paths from a profile are untrusted text: every terminal view prints them as
they are. Go's generic functions have brackets in their names (``main.(*queue[...]).wait``
in dumps and traces, ``[go.shape.int]`` in profiles), and a source folder may be called
``a[bold]b`` or hold ``c[/]d``: a renderer that takes them for markup drops text or crashes
(rich's MarkupError on ``[/]``).

The genericleak program is built from a copy of the fixture module under such folders, so
its dumps, profiles and trace carry both for real.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gofixtures
import pytest
from gopark.collect.client import FetchError, PprofClient
from gopark.demo.goprocess import GoProcess, build
from gopark.formats import profile_pb2
from terminal import run_in_terminal

GOPARK = str(Path(sys.executable).parent / "gopark")
DUMP_NAME = "main.(*queue[...]).wait"
PROFILE_NAME = "main.(*queue[go.shape.int]).wait"
HOSTILE_DIR = "a[bold]b/c[/]d"  # two folders: "a[bold]b", then "c[" holding "]d"
LEAKED = 60


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GoProcess, Path]]:
    """The running program (leaking a goroutine per request) and a folder with a debug=2
    dump and a goroutine profile before and after a short execution trace."""
    root = tmp_path_factory.mktemp("untrusted")
    module = root / HOSTILE_DIR / "mod"
    module.mkdir(parents=True)
    src = gofixtures.GOPROGRAMS
    for name in ("go.mod", "go.sum"):
        if (src / name).exists():
            shutil.copy(src / name, module / name)
    for package in ("harness", "genericleak"):
        shutil.copytree(src / package, module / package)
    cache = gofixtures.CACHE
    binary = build(module, "genericleak", root / "genericleak", str(gofixtures.go_binary("1.27")),
                   {"GOCACHE": str(cache / "gocache"), "GOPATH": str(cache / "gopath")})
    files = root / "files"
    files.mkdir()
    with GoProcess(binary, ["-n", str(LEAKED), "-rate", "20"]) as p:
        # Two dumps some requests apart (diff prints only groups that changed); what they
        # hold exactly doesn't matter here, only how names and paths are printed.
        (files / "before.txt").write_bytes(gofixtures.fetch(p, "goroutine?debug=2"))
        (files / "before.pb.gz").write_bytes(gofixtures.fetch(p, "goroutine"))
        (files / "trace.out").write_bytes(gofixtures.fetch(p, "trace?seconds=0.5"))
        (files / "dump.txt").write_bytes(gofixtures.fetch(p, "goroutine?debug=2"))
        (files / "goroutine.pb.gz").write_bytes(gofixtures.fetch(p, "goroutine"))
        yield p, files


def _terminal(*args: str) -> str:
    """`gopark ARGS` on a wide pseudo-terminal (rich renders as for a user); its output."""
    env = {**os.environ, "COLUMNS": "400", "LINES": "60", "TERM": "xterm-256color"}
    code, text = run_in_terminal([GOPARK, *args], env, timeout=300)
    assert code == 0, text
    assert "Traceback" not in text and "MarkupError" not in text, text
    return text


def test_the_inputs_carry_brackets(captured: tuple[GoProcess, Path]) -> None:
    """The premise: Go itself writes these names and paths."""
    _, files = captured
    dump = (files / "dump.txt").read_text()
    assert DUMP_NAME in dump and f"{HOSTILE_DIR}/mod/genericleak/main.go" in dump


def test_goroutines_prints_bracketed_names(captured: tuple[GoProcess, Path]) -> None:
    _, files = captured
    assert DUMP_NAME in _terminal("goroutines", str(files / "dump.txt"))
    assert PROFILE_NAME in _terminal("goroutines", str(files / "goroutine.pb.gz"))


def test_diagnose_prints_the_name_and_the_path(captured: tuple[GoProcess, Path]) -> None:
    _, files = captured
    text = _terminal("diagnose", str(files / "dump.txt"))
    assert f"at {DUMP_NAME} (main.go:" in text
    assert f"{HOSTILE_DIR}/mod/genericleak/main.go:" in text


def test_diff_and_trace_print_bracketed_names(captured: tuple[GoProcess, Path]) -> None:
    _, files = captured
    assert DUMP_NAME in _terminal("diff", str(files / "before.txt"), str(files / "dump.txt"))
    assert PROFILE_NAME in _terminal("diff", str(files / "before.pb.gz"),
                                     str(files / "goroutine.pb.gz"))
    trace = _terminal("trace", str(files / "trace.out"))  # traces print [...] too
    assert f"blocked at {DUMP_NAME} " in trace
    assert f"{HOSTILE_DIR}/mod/genericleak/main.go:" in trace


def test_watch_live_view_prints_bracketed_names(captured: tuple[GoProcess, Path]) -> None:
    p, _ = captured
    text = _terminal("watch", p.base_url, "--interval", "0.5s", "--iterations", "3")
    assert PROFILE_NAME in text


# -- control characters: hand-altered copies of the real captures (hostile input) --------

ESCAPES = "\x1b]0;pwned\x07\x1b[2J"  # retitle the terminal window, then clear the screen
SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J"  # how gopark must print them


def _raw_terminal(*args: str) -> str:
    """Like _terminal, but with every byte gopark wrote, its own styles included."""
    env = {**os.environ, "COLUMNS": "400", "LINES": "60", "TERM": "xterm-256color"}
    code, text = run_in_terminal([GOPARK, *args], env, timeout=300, keep_styles=True)
    assert code == 0, text
    return text


def test_control_characters_in_a_profile_are_escaped(captured: tuple[GoProcess, Path],
                                                     tmp_path: Path) -> None:
    """A hostile target's profile with an ESC sequence in a function name and a newline in a
    file name: every view shows them escaped and never writes the ESC to the terminal."""
    _, files = captured
    pb = profile_pb2.Profile()
    pb.ParseFromString(gzip.decompress((files / "goroutine.pb.gz").read_bytes()))
    table = list(pb.string_table)  # bytes: our profile.proto reads strings as bytes
    table[table.index(PROFILE_NAME.encode())] = (PROFILE_NAME + ESCAPES).encode()
    path = next(s for s in table if s.endswith(b"/genericleak/main.go"))
    table[table.index(path)] = path.replace(b"/main.go", b"/ma\nin.go")
    del pb.string_table[:]
    pb.string_table.extend(table)
    hostile = tmp_path / "hostile.pb.gz"
    hostile.write_bytes(gzip.compress(pb.SerializeToString()))
    for command in ("goroutines", "diagnose"):
        text = _raw_terminal(command, str(hostile))
        assert ESCAPES not in text and "\x1b]0;" not in text, command
        assert PROFILE_NAME + SHOWN in text, command
    doc = json.loads(subprocess.run([GOPARK, "goroutines", str(hostile), "--format", "json"],
                                    capture_output=True, text=True, timeout=120).stdout)
    texts = list(_strings(doc))  # the JSON holds the same visible escapes
    assert any(PROFILE_NAME + SHOWN in t for t in texts)
    assert any("/ma\\x0ain.go" in t for t in texts) and not any("\n" in t for t in texts)


def _strings(doc: Any) -> Iterator[str]:
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict):
        for v in doc.values():
            yield from _strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _strings(v)


def test_control_characters_in_a_dump_and_a_trace_are_escaped(
        captured: tuple[GoProcess, Path], tmp_path: Path) -> None:
    _, files = captured
    dump = tmp_path / "hostile.txt"
    dump.write_text((files / "dump.txt").read_text().replace(DUMP_NAME, DUMP_NAME + ESCAPES))
    text = _raw_terminal("goroutines", str(dump))
    assert ESCAPES not in text and DUMP_NAME + SHOWN in text
    # In the trace's string table, a path of the same length with an ESC sequence in it.
    data = (files / "trace.out").read_bytes()
    plain, hostile = b"genericleak/main.go", b"generic\x1b[2J/main.go"
    assert len(plain) == len(hostile) and plain in data
    trace = tmp_path / "hostile.trace"
    trace.write_bytes(data.replace(plain, hostile))
    for args in (["trace", str(trace)], ["trace", str(trace), "--events"]):
        text = _raw_terminal(*args)
        assert "\x1b[2J" not in text and "generic\\x1b[2J/main.go" in text, args


def test_control_characters_in_a_shared_bundle_are_escaped(captured: tuple[GoProcess, Path],
                                                           tmp_path: Path) -> None:
    """A bundle someone sent: its manifest's target, notes and errors reach the terminal."""
    p, _ = captured
    bundle = tmp_path / "bundle"
    r = subprocess.run([GOPARK, "collect", p.base_url, "-o", str(bundle), "--duration", "1s",
                        "--interval", "0.5s", "--quiet"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["target"] += ESCAPES
    manifest["notes"].append("see" + ESCAPES)
    manifest["files"][-1]["error"] = "refused" + ESCAPES
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    text = _raw_terminal("diagnose", str(bundle))
    assert ESCAPES not in text and "\x1b]0;" not in text
    assert SHOWN in text  # the target, in the diagnosis's first line


def test_control_characters_in_an_error_body_are_escaped() -> None:
    """What a target (or a proxy in front of it) answers with an error status is quoted in
    messages, the manifest and watch's status line: escaped too. (A stand-in server: the
    point is the bytes it answers with, which no Go program is needed to send.)"""

    class Hostile(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = ("denied" + ESCAPES + "\n").encode()
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/debug/pprof/"
        with PprofClient(url) as c, pytest.raises(FetchError) as e:
            c.fetch_bytes("goroutine", 1 << 20)
    finally:
        server.shutdown()
    assert str(e.value) == "HTTP 403: denied" + SHOWN
