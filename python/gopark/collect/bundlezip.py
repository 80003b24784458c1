"""Zipped bundles: read one in place, without extracting it; write one atomically.

A bundle gets zipped two ways in practice: ``zip -r b.zip b/`` (the folder inside) and
``cd b && zip ../b.zip *`` (flat); both are read. A zip from elsewhere is untrusted, so
reading it is bounded before anything is decompressed: the central directory's declared
size and entry count are checked first (the stdlib reads the whole directory into
memory), every member name is checked for ``..`` and absolute paths (zip-slip; nothing is
extracted, but such a zip was made to attack someone), and a member is read only up to
the size the manifest lists for it, counting the bytes really inflated — a header can lie
about its size, the inflater cannot.
"""

from __future__ import annotations

import lzma
import os
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from gopark.errors import InputError

MAX_MEMBERS = 50_000
"""More entries than any collection writes (an hour at one snapshot a second is ~15,000)."""
MAX_DIRECTORY_BYTES = 16 << 20
"""Bound on the central directory the stdlib loads whole (~100 bytes per entry)."""
MAX_MEMBER_BYTES = 2 << 30
"""Largest member size a manifest may list (the bound gzip inputs have too)."""
_CHUNK = 1 << 20

# Read errors of a damaged or hostile member: bad CRC or header, bad compressed data, a
# cut file, an unsupported or encrypted member.
_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError,
                  NotImplementedError, RuntimeError, OSError, ValueError)

_END = struct.Struct("<4s4H2LH")        # end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")    # zip64 end of central directory record


def is_zip(path: str | Path) -> bool:
    """True for a zip file (a bundle or not), even one cut short (it starts like a zip)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) in (b"PK\x03\x04", b"PK\x05\x06") or zipfile.is_zipfile(f)
    except OSError:
        return False


def _directory_size(f: BinaryIO) -> tuple[int, int] | None:
    """(entries, bytes) the central directory declares; None if no end record is found
    (zipfile then says what is wrong)."""
    size = f.seek(0, os.SEEK_END)
    tail_len = min(size, _END.size + 0xFFFF)  # the record, then a comment of up to 64 KiB
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _END.size > len(tail):
        return None
    _, _, _, _, entries, dir_bytes, _, _ = _END.unpack_from(tail, at)
    if entries != 0xFFFF and dir_bytes != 0xFFFFFFFF:
        return entries, dir_bytes
    # zip64: a locator just before the record points at the zip64 record.
    loc = at - _END64_LOCATOR.size
    if loc < 0 or tail[loc:loc + 4] != b"PK\x06\x07":
        return None
    _, _, offset, _ = _END64_LOCATOR.unpack_from(tail, loc)
    f.seek(offset)
    record = f.read(_END64.size)
    if len(record) < _END64.size or record[:4] != b"PK\x06\x06":
        return None
    fields = _END64.unpack(record)
    return fields[7], fields[8]


def _unsafe(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":")


class BundleZip:
    """A zip holding one bundle, opened for reading; ``prefix`` is the folder it sits in
    inside the zip ("" when zipped flat)."""

    def __init__(self, path: Path, manifest_name: str) -> None:
        self.path = path
        self._zip = self._open(path)
        try:
            self.members = self._check_members()
            self.prefix = self._find_bundle(manifest_name)
        except InputError:
            self._zip.close()
            raise

    def _check_members(self) -> dict[str, zipfile.ZipInfo]:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            name = info.filename
            if _unsafe(name):
                raise InputError(str(self.path), f"member {name!r}",
                                 "path escapes the archive (.. or absolute): refused")
            if name in members:
                raise InputError(str(self.path), f"member {name!r}", "appears twice in the zip")
            members[name] = info
        return {name: info for name, info in members.items() if not info.is_dir()}

    def _find_bundle(self, manifest_name: str) -> str:
        """The folder holding the manifest: "" or "NAME/" (one level down at most)."""
        manifests = [n for n in self.members
                     if n.rpartition("/")[2] == manifest_name and n.count("/") <= 1
                     and not n.startswith("__MACOSX/")]  # macOS's resource forks
        if not manifests:
            raise InputError(str(self.path), None, f"not a gopark bundle (no {manifest_name} "
                             "at the top of the zip or in a folder at its top)")
        if len(manifests) > 1:
            raise InputError(str(self.path), None, f"holds several bundles "
                             f"({', '.join(manifests)}); zip one bundle per file")
        return manifests[0][:-len(manifest_name)]

    @staticmethod
    def _open(path: Path) -> zipfile.ZipFile:
        source = str(path)
        try:
            with open(path, "rb") as f:
                declared = _directory_size(f)
        except OSError as e:
            raise InputError(source, None, f"cannot read: {e.strerror or e}") from None
        if declared is not None:
            entries, dir_bytes = declared
            if entries > MAX_MEMBERS:
                raise InputError(source, "central directory", f"{entries} entries; a bundle "
                                 f"has at most {MAX_MEMBERS}")
            if dir_bytes > MAX_DIRECTORY_BYTES:
                raise InputError(source, "central directory", f"{dir_bytes} bytes; at most "
                                 f"{MAX_DIRECTORY_BYTES >> 20} MiB expected")
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as e:
            raise InputError(source, None, f"damaged zip: {e}") from None
        if len(zf.infolist()) > MAX_MEMBERS:  # the declared count can lie
            zf.close()
            raise InputError(source, "central directory", f"more than {MAX_MEMBERS} entries")
        return zf

    def source(self, name: str) -> str:
        """How errors name bundle file ``name``: ``ZIP:MEMBER``."""
        return f"{self.path}:{self.prefix}{name}"

    def has(self, name: str) -> bool:
        """Whether bundle file ``name`` is in the zip."""
        return self.prefix + name in self.members

    def chunks(self, name: str, size: int) -> Iterator[bytes]:
        """The content of bundle file ``name``, which must inflate to exactly ``size`` bytes
        (what manifest.json lists); never more than ``size + 1`` bytes are inflated."""
        member = self.prefix + name
        if size > MAX_MEMBER_BYTES:
            raise InputError(str(self.path), f"member {member!r}", f"listed as {size} bytes; "
                             f"at most {MAX_MEMBER_BYTES >> 30} GiB accepted")
        got = 0
        for chunk in self._inflate(member, size, "the size manifest.json lists"):
            got += len(chunk)
            yield chunk
        if got != size:
            raise InputError(str(self.path), f"member {member!r}",
                             f"inflates to {got} bytes, not the {size} manifest.json lists")

    def read(self, name: str, size: int) -> bytes:
        """The whole content of bundle file ``name`` (see chunks)."""
        return b"".join(self.chunks(name, size))

    def read_manifest(self, name: str, limit: int) -> bytes:
        """The manifest, refused beyond ``limit`` bytes."""
        return b"".join(self._inflate(self.prefix + name, limit, f"{limit >> 20} MiB"))

    def _inflate(self, member: str, limit: int, what: str) -> Iterator[bytes]:
        # Counts the bytes the inflater really produced: the header's size may lie.
        got = 0
        try:
            with self._zip.open(self.members[member]) as stream:
                while chunk := stream.read(min(_CHUNK, limit + 1 - got)):
                    got += len(chunk)
                    if got > limit:
                        raise InputError(str(self.path), f"member {member!r}",
                                         f"inflates to more than {what} ({limit} bytes)")
                    yield chunk
        except _MEMBER_ERRORS as e:
            raise InputError(str(self.path), f"member {member!r}", f"cannot read: {e}") from None

    def close(self) -> None:
        """Close the zip file."""
        self._zip.close()


def write_zip(directory: Path, names: Iterable[str], out: Path, folder: str) -> None:
    """Zip the bundle files ``names`` of ``directory`` (the manifest last) into ``out``,
    inside ``folder``, atomically: a temporary file is renamed into place when whole."""
    tmp = out.with_name(f".{out.name}.part")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in names:
                # gzipped profiles do not shrink further: store them as they are
                method = zipfile.ZIP_STORED if name.endswith(".gz") else zipfile.ZIP_DEFLATED
                zf.write(directory / name, f"{folder}/{name}", compress_type=method)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
