"""pprof protobuf profiles (gzipped or not): goroutine, goroutineleak, heap, allocs, block,
mutex, CPU and threadcreate, as Go's runtime/pprof writes them.

The wire format is described by profile.proto beside this module; decoding is protobuf's
(upb backend, in C). This module resolves the string, function and location tables into
model objects, building each location's frames once however many samples share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from google.protobuf.message import DecodeError

from gopark.errors import InputError
from gopark.formats import profile_pb2
from gopark.formats.gotext import FrameInterner
from gopark.formats.inflate import gunzip
from gopark.formats.sniff import GZIP_MAGIC
from gopark.model import Frame, Goroutine, Profile, Sample, SampleType, Snapshot
from gopark.untrusted import printable

MAX_PROFILE_BYTES = 1 << 30
"""Largest decompressed profile accepted; a gzip bomb stops here instead of eating memory."""


def parse_profile(data: bytes, source: str, max_bytes: int = MAX_PROFILE_BYTES) -> Profile:
    """Decode a pprof protobuf profile (gzipped or not) read from ``source``.

    Sample values, sample types, period, duration, time, comments and labels are kept.
    A location with inlined functions becomes several frames, innermost first, as
    ``go tool pprof -traces`` prints them; equal frames are one object.
    Raises InputError naming ``source``, where in it, and what was expected.
    """
    raw = gunzip(data, source, max_bytes) if data[:2] == GZIP_MAGIC else data
    if len(raw) > max_bytes:
        raise InputError(source, None, f"profile is {len(raw)} bytes, over the {max_bytes} limit")
    if not raw:
        raise InputError(source, "byte 0", "empty input, expected a pprof protobuf profile")
    # The gencode builds its classes at import time, out of mypy's sight.
    pb = profile_pb2.Profile()  # type: ignore[attr-defined]
    try:
        pb.ParseFromString(raw)
    except DecodeError as e:
        where, what = _locate_damage(raw, pb.DESCRIPTOR)
        raise InputError(source, where, f"not a pprof protobuf profile: {what}") from e
    return _Resolver(pb, source).profile()


def profile_to_snapshot(profile: Profile) -> Snapshot:
    """A goroutine or goroutineleak profile as a Snapshot (form ``"proto"``).

    One Goroutine per sample, with ``count`` = the sample's value, its frames and labels.
    Raises InputError when the profile is of another kind.
    """
    kind = profile.kind
    if kind not in ("goroutine", "goroutineleak"):
        types = ", ".join(f"{st.type}/{st.unit}" for st in profile.sample_types) or "none"
        raise InputError(profile.source, None,
                         f"expected a goroutine profile, got sample types {types}")
    col = profile.index(kind)
    goroutines: list[Goroutine] = []
    for i, s in enumerate(profile.samples):
        count = s.values[col]
        if count < 0:
            raise InputError(profile.source, f"sample {i}", f"negative goroutine count {count}")
        goroutines.append(Goroutine(frames=s.frames, labels=s.labels, count=count,
                                    leaked=kind == "goroutineleak"))
    return Snapshot(
        source=profile.source,
        form="proto",
        goroutines=goroutines,
        taken_at=profile.time,
        profile=kind,
        total_reported=sum(g.count for g in goroutines),
    )


class _Resolver:
    """Turns a decoded message into a Profile, checking every table reference."""

    def __init__(self, pb: Any, source: str) -> None:
        self.pb = pb
        self.source = source
        self.strings: list[str] = [printable(s.decode("utf-8", "replace"))
                                   for s in pb.string_table]
        if not self.strings or self.strings[0] != "":
            raise InputError(source, None, "not a pprof profile: string table does not start "
                             'with ""')
        self.frames = FrameInterner()

    def profile(self) -> Profile:
        pb = self.pb
        sample_types = [self._value_type(vt, f"sample type {i}")
                        for i, vt in enumerate(pb.sample_type)]
        if not sample_types:
            raise InputError(self.source, None, "not a pprof profile: no sample types")
        functions = self._functions()
        locations = self._locations(functions)
        period_type = (self._value_type(pb.period_type, "period type")
                       if pb.HasField("period_type") else None)
        return Profile(
            source=self.source,
            sample_types=sample_types,
            samples=self._samples(locations, len(sample_types)),
            period_type=period_type,
            period=pb.period,
            duration_ns=pb.duration_nanos,
            time=(datetime.fromtimestamp(pb.time_nanos / 1e9, tz=UTC)
                  if pb.time_nanos else None),
            default_sample_type=self._string(pb.default_sample_type, "default sample type"),
            comments=[self._string(c, "comment") for c in pb.comment],
        )

    def _string(self, index: int, where: str) -> str:
        if 0 <= index < len(self.strings):
            return self.strings[index]
        raise InputError(self.source, where, f"string index {index} is outside the string table "
                         f"(0..{len(self.strings) - 1})")

    def _value_type(self, vt: Any, where: str) -> SampleType:
        return SampleType(self._string(vt.type, where), self._string(vt.unit, where))

    def _functions(self) -> dict[int, tuple[str, str]]:
        """Function id -> (name, file)."""
        functions: dict[int, tuple[str, str]] = {}
        for i, f in enumerate(self.pb.function):
            where = f"function {i} (id {f.id})"
            functions[f.id] = (self._string(f.name, where), self._string(f.filename, where))
        return functions

    def _locations(self, functions: dict[int, tuple[str, str]]
                   ) -> dict[int, tuple[tuple[Frame, ...], int]]:
        """Location id -> (its frames innermost first, its address)."""
        locations: dict[int, tuple[tuple[Frame, ...], int]] = {}
        for i, loc in enumerate(self.pb.location):
            frames: list[Frame] = []
            for line in loc.line:
                fn = functions.get(line.function_id)
                if fn is None:
                    raise InputError(self.source, f"location {i} (id {loc.id})",
                                     f"function id {line.function_id} is not in the function "
                                     "table")
                frames.append(self.frames.get(fn[0], fn[1], line.line))
            if not frames:
                # Unsymbolized: the address is all there is, as pprof shows it.
                frames.append(self.frames.get(f"{loc.address:#x}", "", 0))
            locations[loc.id] = (tuple(frames), loc.address)
        return locations

    def _samples(self, locations: dict[int, tuple[tuple[Frame, ...], int]],
                 n_values: int) -> list[Sample]:
        # The hot loop: one pass over possibly 100k samples, so table lookups are inline.
        strings = self.strings
        n_strings = len(strings)
        # Samples often share stacks: resolve each distinct stack once.
        stacks: dict[tuple[int, ...], tuple[tuple[Frame, ...], tuple[int, ...]]] = {}
        samples: list[Sample] = []
        for i, s in enumerate(self.pb.sample):
            values = tuple(s.value)
            if len(values) != n_values:
                raise InputError(self.source, f"sample {i}",
                                 f"{len(values)} values for {n_values} sample types")
            ids = tuple(s.location_id)
            stack = stacks.get(ids)
            if stack is None:
                stack = stacks[ids] = self._stack(ids, locations, i)
            labels: dict[str, str] = {}
            num_labels: dict[str, int] = {}
            for label in s.label:
                key, value = label.key, label.str
                if not (0 <= key < n_strings and 0 <= value < n_strings):
                    bad = value if 0 <= key < n_strings else key
                    self._string(bad, f"sample {i}")  # raises, naming the index
                if value:
                    labels[strings[key]] = strings[value]
                else:
                    num_labels[strings[key]] = label.num
            samples.append(Sample(values=values, frames=stack[0], labels=labels,
                                  num_labels=num_labels, addresses=stack[1]))
        return samples

    def _stack(self, ids: Sequence[int], locations: dict[int, tuple[tuple[Frame, ...], int]],
               sample: int) -> tuple[tuple[Frame, ...], tuple[int, ...]]:
        try:
            locs = [locations[lid] for lid in ids]
        except KeyError as e:
            raise InputError(self.source, f"sample {sample}",
                             f"location id {e.args[0]} is not in the location table") from None
        return tuple(chain.from_iterable(f for f, _ in locs)), tuple(a for _, a in locs)


def _locate_damage(raw: bytes, descriptor: Any, base: int = 0) -> tuple[str, str]:
    """Where protobuf decoding of ``raw`` (a message of type ``descriptor``) goes wrong.

    protobuf's DecodeError carries no position, so walk the wire format to find the first
    field that does not decode, descending into the sub-message that fails.
    """
    pos = 0
    end = len(raw)
    while pos < end:
        start = pos
        try:
            key, pos = _varint(raw, pos)
        except ValueError as e:
            return f"byte {base + start}", f"bad field key ({e})"
        number, wire = key >> 3, key & 7
        field = descriptor.fields_by_number.get(number)
        name = f"field {number} ({field.name})" if field else f"field {number}"
        if number == 0:
            return f"byte {base + start}", "field number 0"
        try:
            if wire == 0:
                _, pos = _varint(raw, pos)
            elif wire == 1 or wire == 5:
                pos += 8 if wire == 1 else 4
                if pos > end:
                    raise ValueError("ends inside a fixed-size value")
            elif wire == 2:
                length, pos = _varint(raw, pos)
                if pos + length > end:
                    raise ValueError(f"says {length} bytes but only {end - pos} remain")
                body = raw[pos:pos + length]
                if field is not None and field.message_type is not None:
                    try:
                        _message_class(field.message_type).FromString(body)
                    except DecodeError:
                        return _locate_damage(body, field.message_type, base + pos)
                pos += length
            else:
                raise ValueError(f"wire type {wire} is not valid")
        except ValueError as e:
            return f"byte {base + start}", f"{name}: {e}"
    return f"byte {base}", "message does not decode"


def _message_class(descriptor: Any) -> Any:
    """The generated message class for a descriptor of profile.proto."""
    return getattr(profile_pb2, descriptor.name)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    for shift in range(0, 70, 7):
        if pos >= len(buf):
            raise ValueError("ends inside a varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
    raise ValueError("varint longer than 10 bytes")
