"""One exception family. The CLI turns any GoparkError into one line and exit code 2."""

from __future__ import annotations


class GoparkError(Exception):
    """Base of every error gopark reports to a user (bad usage or unreadable input)."""


class InputError(GoparkError):
    """An input could not be read: says which input, where in it, and what was expected.

    ``where`` is free text such as ``"line 42"`` or ``"byte 1234"``.
    """

    def __init__(self, source: str, where: str | None, what: str) -> None:
        self.source = source
        self.where = where
        self.what = what
        loc = f"{source}: {where}" if where else source
        super().__init__(f"{loc}: {what}")


class CollectError(GoparkError):
    """A live target could not be collected from (unreachable, not a pprof endpoint, ...)."""


class ToolMissingError(GoparkError):
    """An external tool gopark needs (the ``go`` command for the demo) is not installed."""
