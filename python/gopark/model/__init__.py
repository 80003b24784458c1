"""The data model: what parsers produce and analyses consume. No I/O here."""

from gopark.model.goroutine import Frame, Goroutine, Snapshot
from gopark.model.profile import Profile, Sample, SampleType

__all__ = ["Frame", "Goroutine", "Snapshot", "Profile", "Sample", "SampleType"]
