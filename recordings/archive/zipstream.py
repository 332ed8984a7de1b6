"""A streaming ZIP writer for STORED entries whose sizes and CRCs are known up front.

Why not :mod:`zipfile`: on a non-seekable stream it always sets general-purpose flag bit 3 and
writes a data descriptor after each entry, and STORED + data descriptor is rejected by some
readers (Java's ``ZipInputStream`` among them). The hourly archive's members are ``.opus`` files
already on local disk plus a small ``metadata.json``, so their CRC-32 and size can be known before
the local header is written. This module writes honest local headers (real CRC and sizes, no data
descriptor) and yields the archive as bytes chunks, so it can feed an S3 multipart upload without
ever holding an entry, let alone the archive, in memory.

Guarantees:

* Members are pulled lazily from the iterable, one at a time, so a producer can still be
  converting later recordings while earlier ones stream out.
* Memory is bounded by ``chunk_size`` (at most two chunks of one file are alive) plus a small
  central-directory record per entry.
* A header never lies: if a file's bytes disagree with its declared (or first-pass) size or CRC,
  :class:`MemberChangedError` is raised *before* the entry's last chunk is yielded, so the yielded
  bytes never contain a complete entry whose data contradicts its header.
* ZIP64 structures are written exactly where the classic fields overflow (sizes or offsets of
  ``0xFFFFFFFF`` and above, ``0xFFFF`` entries and above), so a multi-GB hour is a valid archive.

The bytes of each record are laid out in :mod:`recordings.archive.ziprecords`; this module decides
what streams out in which order and checks the data against its header.
"""

import hashlib
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from recordings.archive.ziprecords import (
    DOS_MAX_YEAR,
    DOS_MIN_YEAR,
    ZIP64_LIMIT,
    StoredEntry,
    end_records,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "IteratorReader",
    "MemberChangedError",
    "ZipMember",
    "stream_zip",
]


class MemberChangedError(ValueError):
    """A member's bytes disagree with the size or CRC-32 its header declares (or will declare).

    Raised rather than writing an archive whose headers lie: the caller must abort the upload.
    """


@dataclass(frozen=True)
class ZipMember:
    """One archive entry: either a file streamed from disk (``path``) or a small ``data`` payload.

    ``crc32`` and ``size`` may be given when the producer already computed them (e.g. while
    converting); otherwise a first pass over the file computes them. Either way the bytes are
    checked again while they stream.
    """

    name: str
    modified: datetime
    path: Path | None = None
    data: bytes | None = None
    crc32: int | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        _validate_name(self.name)
        if (self.path is None) == (self.data is None):
            raise ValueError(f"ZIP member {self.name!r}: give exactly one of path and data")
        if self.data is not None and not isinstance(self.data, bytes):
            raise TypeError(f"ZIP member {self.name!r}: data must be bytes")
        if self.modified.tzinfo is None or self.modified.utcoffset() is None:
            raise ValueError(f"ZIP member {self.name!r}: modified must be timezone-aware")
        year = self.modified.astimezone(UTC).year
        if not DOS_MIN_YEAR <= year <= DOS_MAX_YEAR:
            raise ValueError(
                f"ZIP member {self.name!r}: modified year {year} is outside the ZIP (DOS) date "
                f"range {DOS_MIN_YEAR}-{DOS_MAX_YEAR}"
            )
        if self.crc32 is not None and not 0 <= self.crc32 <= 0xFFFFFFFF:
            raise ValueError(f"ZIP member {self.name!r}: crc32 {self.crc32} is not a 32-bit value")
        if self.size is not None and self.size < 0:
            raise ValueError(f"ZIP member {self.name!r}: size {self.size} is negative")


def _validate_name(name: str) -> None:
    """Reject names that would extract outside the target folder or mean different things to
    different tools (backslashes are separators on Windows, plain characters elsewhere)."""
    if not name:
        raise ValueError("ZIP member name is empty")
    if "\\" in name:
        raise ValueError(f"ZIP member name {name!r} contains a backslash; use forward slashes")
    if "\x00" in name:
        raise ValueError(f"ZIP member name {name!r} contains a NUL character")
    if name.startswith("/"):
        raise ValueError(f"ZIP member name {name!r} is absolute")
    if len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        raise ValueError(f"ZIP member name {name!r} starts with a drive letter")
    parts = name.split("/")
    if ".." in parts:
        raise ValueError(f"ZIP member name {name!r} contains a '..' component")
    if any(part in ("", ".") for part in parts):
        raise ValueError(
            f"ZIP member name {name!r} has an empty or '.' component (or ends with '/': "
            "directory entries are not supported)"
        )
    if len(name.encode("utf-8")) > 0xFFFF:
        raise ValueError(f"ZIP member name {name[:40]!r}... is longer than 65535 bytes")


def _source(member: ZipMember) -> Path | bytes:
    if member.data is not None:
        return member.data
    if member.path is not None:
        return member.path
    raise AssertionError("unreachable: ZipMember.__post_init__ requires path or data")


def _file_crc_and_size(path: Path, chunk_size: int) -> tuple[int, int]:
    crc = 0
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(chunk_size):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return crc, size


def _resolve_crc_and_size(member: ZipMember, chunk_size: int) -> tuple[int, int]:
    """The CRC-32 and size the headers will declare, checked against whatever was declared."""
    source = _source(member)
    if isinstance(source, bytes):
        crc, size = zlib.crc32(source), len(source)
    elif member.crc32 is not None and member.size is not None:
        return member.crc32, member.size
    elif member.crc32 is not None:
        # Cheap: the streaming pass verifies the CRC anyway.
        return member.crc32, source.stat().st_size
    else:
        crc, size = _file_crc_and_size(source, chunk_size)
    if member.size is not None and member.size != size:
        raise MemberChangedError(
            f"ZIP member {member.name!r}: declared size {member.size} but the content has {size} "
            "bytes"
        )
    if member.crc32 is not None and member.crc32 != crc:
        raise MemberChangedError(
            f"ZIP member {member.name!r}: declared CRC-32 {member.crc32:08x} but the content has "
            f"{crc:08x}"
        )
    return crc, size


def _stream_file(name: str, path: Path, size: int, crc: int, chunk_size: int) -> Iterator[bytes]:
    """Yield the file's bytes, holding the last chunk back until size and CRC are verified.

    Growth is caught as soon as the file exceeds its declared size, before the extra bytes are
    yielded; shrinkage and content changes are caught at end of file, before its last chunk.
    """
    pending: bytes | None = None
    actual_size = 0
    actual_crc = 0
    with path.open("rb") as file:
        while chunk := file.read(chunk_size):
            actual_size += len(chunk)
            if actual_size > size:
                raise MemberChangedError(
                    f"ZIP member {name!r}: {path} grew past its declared size of {size} bytes "
                    "while streaming"
                )
            actual_crc = zlib.crc32(chunk, actual_crc)
            if pending is not None:
                yield pending
            pending = chunk
    if actual_size != size:
        raise MemberChangedError(
            f"ZIP member {name!r}: {path} has {actual_size} bytes, but {size} were declared"
        )
    if actual_crc != crc:
        raise MemberChangedError(
            f"ZIP member {name!r}: {path} has CRC-32 {actual_crc:08x}, but {crc:08x} was declared"
        )
    if pending is not None:
        yield pending


def _stream_data(data: bytes, chunk_size: int) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), chunk_size):
        yield bytes(view[start : start + chunk_size])


def stream_zip(
    members: Iterable[ZipMember],
    *,
    chunk_size: int = 1 << 20,
    zip64_threshold: int = ZIP64_LIMIT,
) -> Iterator[bytes]:
    """Yield the bytes of a ZIP archive with every member STORED and no data descriptors.

    Each local header carries the real CRC-32 and sizes, names are flagged UTF-8 (bit 11), and
    modification times are stored as DOS UTC wall-clock time plus an extended timestamp.
    Duplicate names raise :class:`ValueError` before the duplicate's header is yielded.

    ``zip64_threshold`` exists for tests: sizes and offsets at or above it use ZIP64 fields, so
    the ZIP64 paths can be exercised with a few bytes instead of 4 GiB. Keep the default in
    production (lower values still produce valid archives, only less widely readable ones).
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if not 0 < zip64_threshold <= ZIP64_LIMIT:
        raise ValueError(f"zip64_threshold must be in 1..{ZIP64_LIMIT}, got {zip64_threshold}")

    offset = 0
    central_records: list[bytes] = []
    seen_names: set[str] = set()

    for member in members:
        if member.name in seen_names:
            raise ValueError(f"duplicate ZIP member name {member.name!r}")
        seen_names.add(member.name)

        crc, size = _resolve_crc_and_size(member, chunk_size)
        entry = StoredEntry(member.name, member.modified, crc, size, offset, zip64_threshold)
        local_header = entry.local_header()
        yield local_header

        source = _source(member)
        if isinstance(source, bytes):
            yield from _stream_data(source, chunk_size)
        else:
            yield from _stream_file(member.name, source, size, crc, chunk_size)

        central_records.append(entry.central_record())
        offset += len(local_header) + size

    yield from _central_directory(central_records, offset, chunk_size, zip64_threshold)


def _central_directory(
    records: list[bytes], offset: int, chunk_size: int, zip64_threshold: int
) -> Iterator[bytes]:
    """Yield the central directory in chunk-sized batches, then the end records."""
    batch: list[bytes] = []
    batch_size = 0
    directory_size = 0
    for record in records:
        batch.append(record)
        batch_size += len(record)
        directory_size += len(record)
        if batch_size >= chunk_size:
            yield b"".join(batch)
            batch, batch_size = [], 0

    batch.append(end_records(len(records), directory_size, offset, zip64_threshold))
    yield b"".join(batch)


class IteratorReader(io.RawIOBase):
    """A read()-able, non-seekable file object over an iterator of bytes chunks.

    Why: minio's ``put_object(length=-1, part_size=...)`` wants a file object with ``read`` that
    returns ``bytes``, while :func:`stream_zip` is a generator. ``read(n)`` fills up to ``n``
    bytes (fewer only at the end; ``b""`` at the end) so the uploader's part loop does not
    degrade into many tiny reads. Only one partly consumed chunk is kept pending. Everything read
    is counted and hashed, so the caller gets the object's size and SHA-256 without a second pass.
    Closing the reader closes the underlying iterator (a generator releases its open file).
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = b""
        self._position = 0
        self._exhausted = False
        self._bytes_read = 0
        self._sha256 = hashlib.sha256()

    @property
    def bytes_read(self) -> int:
        """How many bytes have been returned by ``read`` so far."""
        return self._bytes_read

    @property
    def sha256_hexdigest(self) -> str:
        """SHA-256 of every byte returned so far (of the whole stream once it is exhausted)."""
        return self._sha256.hexdigest()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def _refill(self) -> bool:
        """Make a non-empty chunk pending; False at the end (empty chunks are not the end)."""
        while not self._exhausted:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._exhausted = True
                break
            if chunk:
                self._pending = chunk if type(chunk) is bytes else bytes(chunk)
                self._position = 0
                return True
        self._pending = b""
        self._position = 0
        return False

    def _take(self, limit: int | None) -> bytes:
        """Up to ``limit`` bytes (all remaining when None), pulling chunks as needed."""
        parts: list[bytes] = []
        wanted = limit
        while wanted is None or wanted > 0:
            available = len(self._pending) - self._position
            if available == 0:
                if not self._refill():
                    break
                available = len(self._pending)
            count = available if wanted is None else min(available, wanted)
            if self._position == 0 and count == len(self._pending):
                parts.append(self._pending)
            else:
                parts.append(self._pending[self._position : self._position + count])
            self._position += count
            if self._position == len(self._pending):
                self._pending, self._position = b"", 0
            if wanted is not None:
                wanted -= count
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._bytes_read += len(data)
        self._sha256.update(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed IteratorReader")
        if size is None or size < 0:
            return self._take(None)
        if size == 0:
            return b""
        return self._take(size)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: "WriteableBuffer") -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
            self._pending = b""
        super().close()
