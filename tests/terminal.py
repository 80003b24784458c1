"""Running a command on a pseudo-terminal, as a user at a terminal would."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import time


def run_in_terminal(args: list[str], env: dict[str, str], timeout: float,
                    ctrl_c_after: str | None = None, keep_styles: bool = False
                    ) -> tuple[int, str]:
    """Run a command on a pseudo-terminal (stdin, stdout and stderr); its exit code and
    everything it wrote, colours and cursor moves removed unless `keep_styles`. With
    `ctrl_c_after`, type Ctrl-C once that text has appeared (the terminal sends SIGINT to
    the foreground process group). Killed after `timeout` seconds."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        os.execve(args[0], args, env)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
        if ctrl_c_after and ctrl_c_after.encode() in b"".join(chunks):
            os.write(fd, b"\x03")
            ctrl_c_after = None
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = b"".join(chunks).decode(errors="replace")
    if not keep_styles:
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return os.waitstatus_to_exitcode(status), text
