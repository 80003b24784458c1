"""Text from a profile, dump or trace is untrusted: control characters become visible.

A hostile or broken target can put anything in a profile's string table, and a program's
own trace annotations and labels may carry request data. Written to a terminal as they are,
an ESC sequence in a function name or a trace log message could retitle the window, hide
lines or rewrite what the user sees. No real Go name or path holds a control character, so
every parser hands out text through :func:`printable` and the oracles still agree.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every C0/C1 control character (and DEL) written as a ``\\xNN`` escape."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
