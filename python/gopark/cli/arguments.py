"""Argument types and options shared by the commands that talk to a live service
(collect, diagnose URL, watch, demo), so the options read the same everywhere."""

from __future__ import annotations

import argparse
import re
from dataclasses import replace

from gopark.collect import ClientOptions, CollectOptions

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"(\d+(?:\.\d*)?)\s*([kmgt]?i?b?)", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration (``10s``, ``1m30s``, ``500ms``) or a plain number."""
    t = text.strip().lower()
    try:
        return float(t)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(t) or not t:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (like 10s, 1m30s, 500ms)")
    return total


def parse_size(text: str) -> int:
    """Bytes in ``512MB``, ``1GiB``, ``100k`` or a plain number (binary multiples)."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (like 512MB, 1GB)")
    return int(float(m.group(1)) * _SIZE_FACTOR[m.group(2)[:1].lower()])


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` → (name, value)."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or " " in name.strip():
        # Not echoed: a malformed header may well be the secret itself.
        raise argparse.ArgumentTypeError("a header must be given as 'Name: value'")
    return name.strip(), value.strip()


def add_collection_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a live collection (all but the URL and the output folder)."""
    d = CollectOptions()
    c = ClientOptions()
    g = parser.add_argument_group("collection")
    g.add_argument("--interval", type=parse_duration, default=d.interval, metavar="DUR",
                   help="time between goroutine snapshots (default 10s)")
    g.add_argument("--duration", type=parse_duration, default=d.duration, metavar="DUR",
                   help="how long to watch (default 60s)")
    g.add_argument("--max-dump-goroutines", type=int, default=d.max_dump_goroutines,
                   metavar="N", help="skip the debug=2 dumps (they stop the world) above N "
                   "goroutines (default 20000)")
    g.add_argument("--force-dumps", action="store_true",
                   help="take the debug=2 dumps whatever the goroutine count")
    g.add_argument("--cpu", type=parse_duration, default=0.0, metavar="DUR",
                   help="also take a CPU profile this long (e.g. 10s)")
    g.add_argument("--trace", type=parse_duration, default=0.0, metavar="DUR",
                   help="also take an execution trace this long (e.g. 5s)")
    n = parser.add_argument_group("connection")
    n.add_argument("--timeout", type=parse_duration, default=c.timeout, metavar="DUR",
                   help="give up on a request not done in this long, plus the capture time "
                   "for --cpu/--trace (default 30s)")
    n.add_argument("--max-size", type=parse_size, default=c.max_bytes, metavar="SIZE",
                   help="largest response accepted (default 512MiB)")
    add_access_arguments(n)


def add_access_arguments(group: argparse._ActionsContainer) -> None:
    """Request headers and TLS: how to reach a service that asks for credentials."""
    group.add_argument("--header", type=parse_header, action="append", default=[],
                       metavar="'NAME: VALUE'", help="extra request header, e.g. an auth token "
                       "(repeatable; never written to disk)")
    group.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    group.add_argument("--cacert", metavar="PEM", help="CA certificates to verify the target with")
    group.add_argument("--cert", metavar="PEM", help="client certificate for mutual TLS")
    group.add_argument("--key", metavar="PEM", help="private key of --cert, if not in that file")


def client_options(args: argparse.Namespace) -> ClientOptions:
    """ClientOptions from ``--timeout`` and the arguments of add_access_arguments."""
    return ClientOptions(timeout=args.timeout, headers=tuple(args.header),
                         insecure=args.insecure, cacert=args.cacert, cert=args.cert,
                         key=args.key)


def collect_options(args: argparse.Namespace) -> CollectOptions:
    """CollectOptions from arguments registered by add_collection_arguments."""
    client = replace(client_options(args), max_bytes=args.max_size)
    return CollectOptions(interval=args.interval, duration=args.duration,
                          max_dump_goroutines=args.max_dump_goroutines,
                          force_dumps=args.force_dumps, cpu=args.cpu, trace=args.trace,
                          client=client)
