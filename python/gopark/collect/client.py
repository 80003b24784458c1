"""HTTP client for a /debug/pprof/ endpoint, careful with production targets.

Every request has a connect timeout, a silence timeout (no byte for that long) and a
total deadline; every body is streamed into a sink with a size cap, so a huge or endless
response costs neither memory nor unbounded disk; transient failures are retried with
exponential backoff, within the request's deadline. A 429 or 503 with ``Retry-After``
(seconds or an HTTP date) is retried no sooner than the target asked, or not at all when
that is later than the deadline or ``MAX_RETRY_AFTER``: an overloaded service is not
hammered. Failures become :class:`FetchError`, which says whether the target looked
unreachable (so the collector can stop adding load to a dying service).
"""

from __future__ import annotations

import base64
import io
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import BinaryIO
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import httpx

from gopark import __version__
from gopark.errors import CollectError
from gopark.untrusted import printable

MiB = 1024 * 1024

# Statuses a proxy or an overloaded server answers with when a retry may succeed.
_TRANSIENT_STATUS = {429, 502, 503, 504}
# Statuses whose Retry-After says when to come back (RFC 9110 10.2.3, RFC 6585 4).
_RETRY_AFTER_STATUS = {429, 503}
MAX_RETRY_AFTER = 60.0
"""Longest Retry-After gopark waits for; a target asking for more is not retried."""

_NETWORK_FAILURE = {"ConnectError": "cannot connect", "RemoteProtocolError": "connection closed",
                    "ReadError": "connection broken while reading",
                    "WriteError": "connection broken while sending"}


@dataclass(frozen=True)
class ClientOptions:
    """How to talk to the target. Secrets live here and nowhere else (never in a bundle)."""

    timeout: float = 30.0
    """Seconds without a byte before a request is abandoned; also the total budget of a
    plain request (captures that last N seconds get N more)."""
    connect_timeout: float = 5.0
    max_bytes: int = 512 * MiB
    """Largest response accepted; a bigger one is aborted and recorded as an error."""
    retries: int = 2
    """Extra attempts after a transient failure (connection refused/reset, 429/502/503/504)."""
    backoff: float = 0.5
    """First retry delay in seconds; doubles on each further retry."""
    headers: tuple[tuple[str, str], ...] = ()
    insecure: bool = False
    """Skip TLS certificate verification."""
    cacert: str | None = None
    cert: str | None = None
    """Client certificate (PEM) for mutual TLS; ``key`` is its private key if separate."""
    key: str | None = None


class FetchError(Exception):
    """A request failed. ``unreachable`` is true when the target did not answer at all
    (refused, reset, timed out) rather than answering with an error; ``retry_after`` is
    the target's Retry-After in seconds from now (429/503 only)."""

    def __init__(self, message: str, *, unreachable: bool, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: delay-seconds or an HTTP date (a date in
    the past means now); None when absent or malformed."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322, which HTTP dates always are
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _Stopped(Exception):
    pass


def normalize_url(url: str) -> str:
    """The /debug/pprof/ base URL for what a user typed.

    ``host:6060`` and ``http://host:6060`` mean ``http://host:6060/debug/pprof/``; a URL
    with a path keeps it (a proxy may mount pprof elsewhere) and gains a trailing slash.
    """
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CollectError(f"{url}: not an http(s) URL of a /debug/pprof/ endpoint")
    path = parts.path or "/"
    if path == "/":
        path = "/debug/pprof/"
    if not path.endswith("/"):
        path += "/"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def redact_url(url: str) -> str:
    """The URL without user:password and query string, safe to write down."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _secrets(url: str, headers: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """What must never be written down: header values (and their words: "Bearer TOKEN"),
    the URL's password (as typed, decoded, and inside the basic-auth header) and query
    values; longest first, so a secret is replaced whole before any part of it."""
    parts = urlsplit(url)
    found = {parts.query}
    for _, value in headers:
        found.add(value)
        found.update(value.split())
    if parts.password is not None:
        user, password = unquote(parts.username or ""), unquote(parts.password)
        found |= {parts.password, password,
                  base64.b64encode(f"{user}:{password}".encode()).decode()}
    found.update(v for _, v in parse_qsl(parts.query))
    # Very short values would blank out ordinary words of a message.
    return tuple(sorted((s for s in found if len(s) >= 4), key=len, reverse=True))


def _ssl_context(options: ClientOptions) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(cafile=options.cacert)
        if options.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if options.cert:
            ctx.load_cert_chain(options.cert, options.key)
    except (OSError, ssl.SSLError) as e:
        raise CollectError(f"cannot load TLS certificates: {e}") from e
    return ctx


class PprofClient:
    """GETs paths under one /debug/pprof/ base URL. Thread-safe; close it when done."""

    def __init__(self, base_url: str, options: ClientOptions | None = None) -> None:
        url = normalize_url(base_url)
        self.options = options or ClientOptions()
        o = self.options
        headers = {"User-Agent": f"gopark/{__version__}"}
        headers.update(dict(o.headers))
        # user:password in the URL means basic auth, unless an Authorization header is given.
        parts = urlsplit(url)
        auth = None
        if parts.username is not None and not any(k.lower() == "authorization"
                                                  for k, _ in o.headers):
            auth = httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
        self.base_url = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path,
                                    parts.query, ""))
        self._secrets = _secrets(url, o.headers)
        self._http = httpx.Client(
            auth=auth,
            headers=headers,
            verify=_ssl_context(o) if self.base_url.startswith("https") else True,
            timeout=httpx.Timeout(o.timeout, connect=o.connect_timeout),
            follow_redirects=True,
        )
        self._closed = threading.Event()

    def url(self, path: str) -> str:
        """Absolute URL of ``path``: relative to the base (``"goroutine?debug=2"``), or to
        the host when it starts with a slash (``"/metrics"``)."""
        parts = urlsplit(self.base_url)
        base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        path_part, _, query = path.partition("?")
        full = (base + path_part) if path.startswith("/") else (base + parts.path + path_part)
        # A query on the target URL (an access token for a proxy) goes on every request.
        query = "&".join(q for q in (query, parts.query) if q)
        return full + ("?" + query if query else "")

    def fetch(self, path: str, sink: BinaryIO, *, capture_seconds: float = 0.0,
              max_bytes: int | None = None, stop: threading.Event | None = None,
              timeout: float | None = None, retries: int | None = None,
              expect: bytes = b"", on_retry: Callable[[str], None] | None = None) -> int:
        """Stream the response body of ``path`` into ``sink``; returns its size.

        ``capture_seconds`` is how long the server is expected to stay silent on purpose
        (CPU profile, trace). Retries transient failures, rewinding ``sink`` each time,
        as long as the wait ends within the request's deadline (``timeout`` plus the
        capture time, from now); ``on_retry`` hears why each retry waits. Raises
        FetchError; ``stop`` being set aborts the transfer. ``timeout`` and ``retries``
        override the client's options for this request. A body that does not start with
        ``expect`` (a login page instead of a profile) is refused.
        """
        attempts = 1 + max(0, self.options.retries if retries is None else retries)
        budget = self.options.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget + capture_seconds
        backoff = self.options.backoff
        for attempt in range(attempts):
            sink.seek(0)
            sink.truncate()
            try:
                return self._fetch_once(path, sink, capture_seconds,
                                        max_bytes or self.options.max_bytes, stop, budget,
                                        expect)
            except FetchError as raw:
                # An error body may echo a token (a proxy's "token X expired"): scrubbed
                # here, so no message that leaves the client carries a secret.
                e = self.redacted(raw)
            retryable = e.status in _TRANSIENT_STATUS or (e.unreachable and e.status == -1)
            if not retryable or attempt == attempts - 1 or self._closed.is_set():
                raise e
            delay = backoff if e.retry_after is None else e.retry_after
            if e.retry_after is not None:
                limit = min(MAX_RETRY_AFTER, max(0.0, deadline - time.monotonic()))
                if e.retry_after > limit:
                    raise FetchError(f"{e}; not retried: later than gopark waits "
                                     f"({limit:.0f} s)", unreachable=False,
                                     status=e.status, retry_after=e.retry_after)
            elif time.monotonic() + delay > deadline:
                raise e
            if on_retry is not None:
                on_retry(f"{e}; retried after {delay:.1f} s")
            if stop is not None and stop.wait(delay):
                raise e
            if stop is None:
                time.sleep(delay)
            backoff *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def redacted(self, e: FetchError) -> FetchError:
        """``e`` with every secret of this client's URL and headers replaced by ***."""
        text = str(e)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        if text == str(e):
            return e
        return FetchError(text, unreachable=e.unreachable, status=e.status,
                          retry_after=e.retry_after)

    def fetch_bytes(self, path: str, max_bytes: int, timeout: float | None = None) -> bytes:
        """A small response (e.g. /metrics) into memory, capped at ``max_bytes``; no retries."""
        buf = io.BytesIO()
        self.fetch(path, buf, max_bytes=max_bytes, timeout=timeout, retries=0)
        return buf.getvalue()

    def _fetch_once(self, path: str, sink: BinaryIO, capture_seconds: float, max_bytes: int,
                    stop: threading.Event | None, base_timeout: float,
                    expect: bytes) -> int:
        o = self.options
        silence = base_timeout + capture_seconds
        deadline = time.monotonic() + silence
        timeout = httpx.Timeout(silence, connect=o.connect_timeout)
        size = 0
        try:
            with self._http.stream("GET", self.url(path), timeout=timeout) as resp:
                if resp.status_code != 200:
                    body = _short_text(resp)
                    after = parse_retry_after(resp.headers.get("Retry-After")) \
                        if resp.status_code in _RETRY_AFTER_STATUS else None
                    message = f"HTTP {resp.status_code}" + (f": {body}" if body else "")
                    if after is not None:
                        message += f" (Retry-After {round(after, 1):g} s)"
                    raise FetchError(message, unreachable=False, status=resp.status_code,
                                     retry_after=after)
                head = b""
                for chunk in resp.iter_bytes():
                    if len(head) < len(expect):
                        head += chunk[:64]
                        if head[:len(expect)] != expect[:len(head)]:
                            raise FetchError(f"not the expected content: starts with "
                                             f"{head[:24]!r}, expected {expect!r}",
                                             unreachable=False)
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(f"response larger than the {_human(max_bytes)} cap; "
                                         "aborted", unreachable=False)
                    sink.write(chunk)
                    if time.monotonic() > deadline:
                        raise FetchError(f"response still incomplete after {silence:.0f} s; "
                                         "aborted", unreachable=True)
                    if stop is not None and stop.is_set():
                        raise _Stopped()
        except _Stopped:
            raise FetchError("stopped", unreachable=False) from None
        except httpx.TimeoutException as e:
            what = "connect" if isinstance(e, httpx.ConnectTimeout) else "response"
            limit = o.connect_timeout if what == "connect" else silence
            raise FetchError(f"no {what} within {limit:g} s (timeout)", unreachable=True) from e
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError,
                httpx.WriteError) as e:
            # status -1 marks "no answer at all": worth a retry.
            what = _NETWORK_FAILURE.get(type(e).__name__, "connection failed")
            raise FetchError(f"{what}: {e}" if str(e) else what, unreachable=True,
                             status=-1) from e
        except httpx.HTTPError as e:
            raise FetchError(f"{type(e).__name__}: {e}", unreachable=False) from e
        except ssl.SSLError as e:
            raise FetchError(f"TLS: {e}", unreachable=False) from e
        return size

    def close(self) -> None:
        """Close connections; requests in flight in other threads fail."""
        self._closed.set()
        self._http.close()

    def __enter__(self) -> PprofClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short_text(resp: httpx.Response) -> str:
    # Error bodies from net/http/pprof are one short line; read at most 200 bytes.
    got = b""
    try:
        for chunk in resp.iter_bytes():
            got += chunk
            if len(got) >= 200:
                break
    except httpx.HTTPError:
        pass
    text = got[:200].decode("utf-8", "replace").strip()
    return printable(text.splitlines()[0]) if text else ""  # the target's words: untrusted


def _human(n: int) -> str:
    return f"{n / MiB:g} MiB" if n >= MiB else f"{n} bytes"
