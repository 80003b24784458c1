"""Steady HTTP load on the demo service, from gopark itself.

Searches go out at a fixed rate (``item-N`` with a fresh request id each, so a quarter of
them hit the demo's slow upstream and leak a goroutine, and the rest add a page to its
never-evicted cache), with a health check every fifth tick, over a few keep-alive
connections (which the diagnosis shows as idle server connections). The load is bounded:
it only goes to a loopback address, and stops after ``max_seconds`` whatever happens.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from gopark.errors import GoparkError

HEALTH_EVERY = 5
"""One health check per this many searches."""

MAX_SEARCHES = 5000
"""The most searches one run sends: the demo's cache then holds at most ~240 MiB."""


@dataclass(slots=True)
class LoadStats:
    """What the load did so far (updated while it runs)."""

    searches: int = 0
    """Searches answered (any status)."""
    timed_out: int = 0
    """Searches answered 504: the upstream outlived the deadline (a goroutine left behind)."""
    cached: int = 0
    """Searches answered 200: a result page went into the cache."""
    health_checks: int = 0
    failed: int = 0
    """Requests that got no answer (the service went away or did not respond in time)."""


def is_loopback(base_url: str) -> bool:
    """True when the URL's host is a loopback address (127.0.0.0/8, ::1)."""
    host = urlsplit(base_url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoadDriver:
    """Sends ``rate`` searches a second to ``base_url`` from a background thread.

    Use as a context manager, or call start() and stop(). It stops by itself after
    ``max_seconds`` or MAX_SEARCHES searches, whichever comes first.
    """

    def __init__(self, base_url: str, rate: float, max_seconds: float,
                 connections: int = 4) -> None:
        if not is_loopback(base_url):
            raise GoparkError(f"the demo load only goes to loopback addresses, not {base_url}")
        if rate <= 0 or max_seconds <= 0:
            raise GoparkError("the demo load needs a positive rate and time limit")
        self.base_url = base_url.rstrip("/")
        self.rate = rate
        self.max_seconds = max_seconds
        self.limit = min(MAX_SEARCHES, math.ceil(rate * max_seconds))
        self.connections = connections
        self.stats = LoadStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gopark-demo-load", daemon=True)

    def start(self) -> LoadDriver:
        """Start sending."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sending and wait for the requests in flight."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> LoadDriver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.connections,
                              max_keepalive_connections=self.connections)
        began = time.monotonic()
        with httpx.Client(timeout=10.0, limits=limits) as client:
            pool = ThreadPoolExecutor(self.connections, thread_name_prefix="gopark-demo-load")
            try:
                for i in range(self.limit):
                    due = began + i / self.rate
                    if self._stop.wait(max(0.0, due - time.monotonic())):
                        break
                    if time.monotonic() - began > self.max_seconds:
                        break
                    pool.submit(self._search, client, i)
                    if i % HEALTH_EVERY == 0:
                        pool.submit(self._health, client)
            finally:
                # Requests still queued (a service that stopped answering) are dropped.
                pool.shutdown(wait=True, cancel_futures=True)

    def _search(self, client: httpx.Client, i: int) -> None:
        try:
            r = client.get(f"{self.base_url}/search", params={"q": f"item-{i}", "req": str(i)})
        except httpx.HTTPError:
            self._count(failed=1)
            return
        self._count(searches=1, timed_out=int(r.status_code == 504),
                    cached=int(r.status_code == 200))

    def _health(self, client: httpx.Client) -> None:
        try:
            client.get(f"{self.base_url}/health").raise_for_status()
        except httpx.HTTPError:
            self._count(failed=1)
            return
        self._count(health_checks=1)

    def _count(self, searches: int = 0, timed_out: int = 0, cached: int = 0,
               health_checks: int = 0, failed: int = 0) -> None:
        with self._lock:
            s = self.stats
            s.searches += searches
            s.timed_out += timed_out
            s.cached += cached
            s.health_checks += health_checks
            s.failed += failed
