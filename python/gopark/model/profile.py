"""pprof profiles (heap, allocs, block, mutex, CPU, goroutine) in a form analyses can use."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from gopark.model.goroutine import Frame


@dataclass(frozen=True, slots=True)
class SampleType:
    """A value column of a profile, e.g. ``inuse_space``/``bytes``."""

    type: str
    unit: str


@dataclass(slots=True)
class Sample:
    """One sample: values (one per sample type) at a stack (innermost frame first).

    A location with inlined functions becomes several frames, innermost first, as
    ``go tool pprof -traces`` prints them.
    """

    values: tuple[int, ...]
    frames: tuple[Frame, ...]
    labels: dict[str, str] = field(default_factory=dict)
    num_labels: dict[str, int] = field(default_factory=dict)
    addresses: tuple[int, ...] = ()
    """Location addresses, one per location (not per inlined frame)."""


@dataclass(slots=True)
class Profile:
    """A decoded pprof profile."""

    source: str
    sample_types: list[SampleType]
    samples: list[Sample]
    period_type: SampleType | None = None
    period: int = 0
    duration_ns: int = 0
    time: datetime | None = None
    default_sample_type: str = ""
    comments: list[str] = field(default_factory=list)
    memstats: dict[str, int] = field(default_factory=dict)
    """runtime.MemStats of the moment, when the profile came as heap?debug=1 text (which
    carries them; see formats/heaptext.parse_memstats). Empty otherwise."""

    def index(self, type_name: str) -> int:
        """Position of the sample type called ``type_name``; raises KeyError if absent."""
        for i, st in enumerate(self.sample_types):
            if st.type == type_name:
                return i
        raise KeyError(type_name)

    @property
    def kind(self) -> str:
        """A guess at the profile kind from its sample types: heap, cpu, block, mutex,
        contention (block or mutex), goroutine, goroutineleak or unknown."""
        names = {st.type for st in self.sample_types}
        if "inuse_space" in names or "alloc_space" in names:
            return "heap"
        if "goroutineleak" in names:
            return "goroutineleak"
        if "goroutine" in names:
            return "goroutine"
        if "contentions" in names:
            # block and mutex profiles share their sample types; only the source tells them apart
            return "contention"
        if "cpu" in names:
            return "cpu"
        return "unknown"
