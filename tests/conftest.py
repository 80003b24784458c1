"""Shared pytest setup: makes tests/gofixtures importable as `gofixtures`, and takes out
of the environment what a developer's shell or a CI runner may set that would change what
gopark prints or what the Go fixtures do (tests that need one set it themselves)."""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# rich's terminal, colour and width detection; Go runtime and build settings; the Go
# gopark's demo would otherwise pick.
for _name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS",
              "LINES", "JUPYTER_COLUMNS", "JUPYTER_LINES", "GOTRACEBACK", "GODEBUG",
              "GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GOEXPERIMENT", "GOFLAGS", "GOPARK_GO"):
    os.environ.pop(_name, None)
# gopark run as a subprocess prints UTF-8 ("→", "×") whatever the locale.
os.environ["PYTHONUTF8"] = "1"
# The fixtures listen on loopback: never through a proxy the runner may configure.
_no_proxy = [os.environ.get(n, "") for n in ("no_proxy", "NO_PROXY")]
os.environ["no_proxy"] = os.environ["NO_PROXY"] = ",".join(
    filter(None, [*_no_proxy, "127.0.0.1", "localhost", "::1"]))

# A runner that starts pytest in the background without job control (`cmd &` in a script,
# nohup) leaves SIGINT ignored; the gopark processes the Ctrl-C tests start would inherit
# that and never see their Ctrl-C. A handled signal is reset to its default in a child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
