"""Run a collection against a live /debug/pprof/ endpoint and write a bundle.

The schedule is in :mod:`gopark.collect.plan`; this module carries it out: it times the
snapshots, runs the long captures (trace, CPU) in a second thread while snapshots go on,
keeps heavy captures from overlapping, stops early when the target stops answering, and
leaves a valid bundle however the collection ends (Ctrl-C included).
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from gopark.collect import plan
from gopark.collect.bundle import MANIFEST, Bundle, BundleFile, BundleWriter, zip_bundle
from gopark.collect.client import ClientOptions, FetchError, PprofClient, redact_url
from gopark.errors import CollectError

# Prometheus' Go collector (client_golang) publishes the runtime version as a label.
_GO_INFO = re.compile(rb'^go_info\{[^}]*version="(go[0-9][^"]*)"', re.MULTILINE)
_METRICS_CAP = 8 * 1024 * 1024


@dataclass(frozen=True)
class CollectOptions:
    """What to collect and how hard to try. Defaults follow the collection etiquette."""

    interval: float = 10.0
    """Seconds between cheap goroutine snapshots."""
    duration: float = 60.0
    """Seconds from the first snapshot to the last."""
    max_dump_goroutines: int = 20_000
    """Skip ``debug=2`` dumps (they stop the world) above this many goroutines."""
    force_dumps: bool = False
    cpu: float = 0.0
    """Seconds of CPU profile to take during the window (0: none)."""
    trace: float = 0.0
    """Seconds of execution trace to take during the window (0: none)."""
    probe_go_version: bool = True
    """Look for ``go_info{version=...}`` on the host's /metrics (Prometheus)."""
    give_up_after: int = 3
    """Consecutive unanswered requests after which the target counts as lost."""
    client: ClientOptions = field(default_factory=ClientOptions)

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.duration < 0 or self.cpu < 0 or self.trace < 0:
            raise CollectError("--interval must be positive; --duration, --cpu and --trace "
                               "must not be negative")
        if self.max_dump_goroutines < 0:
            raise CollectError("--max-dump-goroutines must not be negative")

    def for_manifest(self) -> dict[str, Any]:
        """The options worth recording: nothing secret (no headers, no certificate paths)."""
        return {"interval_s": float(self.interval), "duration_s": float(self.duration),
                "max_dump_goroutines": self.max_dump_goroutines,
                "force_dumps": self.force_dumps, "cpu_s": float(self.cpu),
                "trace_s": float(self.trace), "timeout_s": float(self.client.timeout),
                "max_bytes": self.client.max_bytes}


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """What a collection is doing, for a progress display.

    ``what`` is ``"step"`` (about to take something), ``"file"`` (a request finished;
    ``file`` is set), ``"note"`` or ``"done"``. ``planned_s`` is the expected length of the
    whole collection, so ``planned_s - elapsed_s`` is the time left.
    """

    what: str
    text: str
    elapsed_s: float
    planned_s: float
    file: BundleFile | None = None


ProgressCallback = Callable[[ProgressEvent], None]


def collect_bundle(url: str, out_dir: str | Path, options: CollectOptions | None = None,
                   progress: ProgressCallback | None = None) -> Bundle:
    """Collect from the /debug/pprof/ endpoint at ``url`` into a new bundle at ``out_dir``.

    Returns the bundle, whose ``status`` says how it ended (``complete`` or
    ``target-lost``). Raises CollectError when the target cannot be read at all (the
    folder then holds a manifest with status ``failed`` and the error). On Ctrl-C the
    bundle is closed with status ``interrupted`` and KeyboardInterrupt propagates.
    """
    return _Collection(url, Path(out_dir), options or CollectOptions(), progress).run()


def collecting_folder(out_zip: Path) -> Path:
    """Where collect_zip collects before zipping: ``NAME.zip.collecting`` beside the zip."""
    return out_zip.with_name(out_zip.name + ".collecting")


def collect_zip(url: str, out_zip: str | Path, options: CollectOptions | None = None,
                progress: ProgressCallback | None = None) -> Bundle:
    """Like collect_bundle, but the bundle ends up zipped at ``out_zip``.

    The collection goes into the folder ``NAME.zip.collecting`` beside it (same disk, so
    each file is still written atomically); however the collection ends — complete, target
    lost, failed, Ctrl-C — what was taken is zipped atomically and the folder removed, and
    the exception, if any, propagates. If gopark is killed, the folder stays: a valid
    bundle. Returns the zipped bundle.
    """
    out = Path(out_zip)
    work = collecting_folder(out)
    for path in (out, work):
        if path.exists():
            raise CollectError(f"{path}: exists; not overwritten")
    zipped: Bundle | None = None
    try:
        collect_bundle(url, work, options, progress)
    finally:
        if (work / MANIFEST).is_file():
            zipped = zip_bundle(work, out)
            shutil.rmtree(work, ignore_errors=True)
    assert zipped is not None  # collect_bundle returned, so it wrote a manifest
    return zipped


class _Collection:
    def __init__(self, url: str, out_dir: Path, options: CollectOptions,
                 progress: ProgressCallback | None) -> None:
        self.options = options
        self.client = PprofClient(url, options.client)
        self.target = redact_url(self.client.base_url)
        self.writer = BundleWriter(out_dir, self.target, options.for_manifest())
        self.progress = progress
        self.stop = threading.Event()
        self.heavy = threading.Lock()  # never two heavy captures at once
        self.state = threading.Lock()
        self.unanswered = 0
        self.lost_reason: str | None = None
        self.snapshot_form = plan.GOROUTINES
        self.began = time.monotonic()
        heavy = plan.heavy_captures(options.trace, options.cpu)
        # The window, the long captures if they outlast it, and a little for each end.
        self.planned = max(options.duration, sum(c.seconds for c in heavy)) + 2.0

    def run(self) -> Bundle:
        try:
            status = self._collect()
        except KeyboardInterrupt:
            self.stop.set()
            self.writer.finish("interrupted")
            raise
        except CollectError as e:
            self.writer.note(str(e))
            self.writer.finish("failed")
            raise
        finally:
            self.stop.set()
            self.client.close()
        bundle = self.writer.finish(status)
        self._emit("done", status)
        return bundle

    # -- the schedule ---------------------------------------------------------------

    def _collect(self) -> str:
        o = self.options
        profiles = self._read_index("start")
        self.writer.update(profiles=profiles)
        if o.probe_go_version:
            self._probe_go_version()

        t0 = time.monotonic()
        self._snapshot("start")
        start, notes = plan.start_captures(profiles, o.max_dump_goroutines, o.force_dumps)
        self._notes(notes)
        for cap in start:
            self._take(cap, "start")
        if self.lost_reason is not None:
            return self._lost()

        heavy = plan.heavy_captures(o.trace, o.cpu)
        worker = threading.Thread(target=self._run_heavy, args=(heavy,), daemon=True)
        if heavy:
            worker.start()

        offsets = plan.snapshot_offsets(o.duration, o.interval)
        skipped = 0
        for i, offset in enumerate(offsets[1:-1], start=1):
            next_due = t0 + offsets[i + 1]
            if time.monotonic() >= next_due:
                skipped += 1  # running late: skip this one rather than bunch them up
                continue
            if self.stop.wait(max(0.0, t0 + offset - time.monotonic())):
                break
            self._snapshot("interval")
            if "heap" in profiles:
                # A heap profile is cheap (no GC, ~ms of target CPU) and a series of them is
                # what tells a site that keeps growing from one that grew once.
                self._take(plan.HEAP[0], "interval")
        if skipped:
            self._notes([f"{skipped} of {len(offsets) - 2} interval snapshots skipped: "
                         "the requests before them ran past the next one's time"])
        if not self.stop.wait(max(0.0, t0 + o.duration - time.monotonic())) \
                and worker.is_alive():
            self._emit("step", "waiting for the trace/CPU capture to finish")
        while worker.is_alive():
            worker.join(0.2)
        if self.lost_reason is not None:
            return self._lost()

        profiles = self._read_index("end")
        self._snapshot("end")
        end, notes = plan.end_captures(profiles, o.max_dump_goroutines, o.force_dumps)
        self._notes(notes)
        for cap in end:
            self._take(cap, "end")
        return self._lost() if self.lost_reason is not None else "complete"

    def _read_index(self, phase: str) -> dict[str, int]:
        entry, _ = self._take(plan.INDEX, phase)
        if not entry.ok:
            if phase == "start":
                raise CollectError(f"{self.target}: {entry.error}")
            return dict(self.writer.bundle.profiles)  # keep deciding by the start counts
        profiles = plan.parse_index(self.writer.bundle.read(entry))
        if profiles is None:
            if phase == "start":
                raise CollectError(f"{self.target}: not a net/http/pprof index page "
                                   "(no table of profiles)")
            return dict(self.writer.bundle.profiles)
        return profiles

    def _snapshot(self, phase: str) -> None:
        entry, error = self._take(self.snapshot_form, phase)
        if error is not None and not error.unreachable and self.snapshot_form is plan.GOROUTINES:
            # The target answered, but not with a profile: use the text form from now on.
            self.snapshot_form = plan.GOROUTINES_TEXT
            self.writer.note(f"goroutine protobuf form failed ({entry.error}); "
                             "snapshots use debug=1 text instead")
            self._take(self.snapshot_form, phase)

    def _run_heavy(self, captures: list[plan.Capture]) -> None:
        for cap in captures:
            if self.stop.is_set():
                return
            self._take(cap, "capture")

    def _lost(self) -> str:
        self.writer.note(f"target stopped answering {time.monotonic() - self.began:.1f} s "
                         f"into the collection ({self.lost_reason}); the bundle holds what "
                         "was taken before")
        return "target-lost"

    # -- one request ------------------------------------------------------------------

    def _take(self, cap: plan.Capture, phase: str) -> tuple[BundleFile, FetchError | None]:
        """Make one request into the bundle; returns its entry and the failure if any."""
        failure: list[FetchError] = []
        if self.stop.is_set():  # stopping: add no load and no entries
            return BundleFile(None, cap.kind, cap.form, cap.request, phase, datetime.now(UTC),
                              0.0, 0, "not taken: the collection is stopping"), None
        self._emit("step", f"{cap.label} ({phase})")

        retries: list[str] = []

        def receive(sink: BinaryIO) -> None:
            try:
                self.client.fetch(cap.request, sink, capture_seconds=cap.seconds,
                                  max_bytes=cap.max_bytes, stop=self.stop, expect=cap.expect,
                                  on_retry=retries.append)
            except FetchError as e:
                failure.append(e)
                self._count(e)
                raise
            self._count(None)

        def save() -> BundleFile:
            return self.writer.save_response(cap.kind, cap.form, cap.request, phase, receive,
                                             retries)

        if cap.heavy:
            with self.heavy:
                entry = save()
        else:
            entry = save()
        self._emit("file", cap.request or "(index)", entry)
        return entry, (failure[0] if failure else None)

    def _count(self, error: FetchError | None) -> None:
        with self.state:
            if error is None or not error.unreachable:
                self.unanswered = 0  # it answered, even if with an error
                return
            self.unanswered += 1
            if self.unanswered >= self.options.give_up_after and self.lost_reason is None:
                self.lost_reason = str(error)
                self.stop.set()

    def _probe_go_version(self) -> None:
        try:
            body = self.client.fetch_bytes("/metrics", _METRICS_CAP,
                                           timeout=min(5.0, self.options.client.timeout))
        except FetchError:
            return  # most targets have no /metrics: the version stays unknown
        m = _GO_INFO.search(body)
        if m:
            self.writer.update(go_version=m.group(1).decode(),
                               go_version_source="/metrics go_info")

    def _notes(self, notes: list[str]) -> None:
        for n in notes:
            self.writer.note(n)
            self._emit("note", n)

    def _emit(self, what: str, text: str, entry: BundleFile | None = None) -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(what, text, time.monotonic() - self.began,
                                        self.planned, entry))
