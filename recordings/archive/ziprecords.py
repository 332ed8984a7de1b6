"""The byte layout of the ZIP records :mod:`recordings.archive.zipstream` writes (PKWARE's
APPNOTE.TXT): local file headers, central directory records and the end records, classic and
ZIP64, for STORED entries with UTF-8 names.

Kept apart from the streaming writer so each reads on its own: this module says which bytes a
record holds and where a field overflows into ZIP64; the writer says in which order records and
file data stream out and how the data is checked against its header. Everything here is a pure
function of its arguments.
"""

import struct
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["DOS_MAX_YEAR", "DOS_MIN_YEAR", "ZIP64_LIMIT", "StoredEntry", "end_records"]

ZIP64_LIMIT = 0xFFFFFFFF
"""Sizes and offsets at or above this do not fit a classic 32-bit field (the value itself is the
"see the ZIP64 extra field" sentinel)."""

_ZIP64_ENTRY_LIMIT = 0xFFFF
"""Entry counts at or above this need the ZIP64 end of central directory record."""

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
_END_OF_CENTRAL_DIRECTORY = struct.Struct("<IHHHHIIH")
_ZIP64_END_OF_CENTRAL_DIRECTORY = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<IIQI")

_LOCAL_SIGNATURE = 0x04034B50
_CENTRAL_SIGNATURE = 0x02014B50
_EOCD_SIGNATURE = 0x06054B50
_ZIP64_EOCD_SIGNATURE = 0x06064B50
_ZIP64_LOCATOR_SIGNATURE = 0x07064B50

_ZIP64_EXTRA_ID = 0x0001
_EXTENDED_TIMESTAMP_ID = 0x5455

_FLAG_UTF8 = 1 << 11
_STORED = 0
_VERSION_DEFAULT = 20  # 2.0: what every reader understands for STORED entries
_VERSION_ZIP64 = 45  # 4.5: ZIP64 format extensions
_MADE_BY = (3 << 8) | _VERSION_ZIP64  # host 3 = Unix, so external attributes carry a file mode
_EXTERNAL_ATTRIBUTES = 0o100644 << 16  # regular file, rw-r--r--, as unzip should recreate it

DOS_MIN_YEAR = 1980
DOS_MAX_YEAR = 2107
_UNIX_TIME_MAX = 2**31 - 1  # the extended-timestamp field is a signed 32-bit Unix time


def _dos_date_time(moment: datetime) -> tuple[int, int]:
    """DOS date and time fields (2-second resolution) of the UTC wall-clock time."""
    utc = moment.astimezone(UTC)
    date = ((utc.year - DOS_MIN_YEAR) << 9) | (utc.month << 5) | utc.day
    time = (utc.hour << 11) | (utc.minute << 5) | (utc.second // 2)
    return date, time


def _timestamp_extra(moment: datetime) -> bytes:
    """The 0x5455 extended-timestamp field: exact UTC seconds, which unzip restores as mtime.

    The same 9-byte form (flags + mtime) is valid in both local and central headers. Omitted past
    2038, where the signed 32-bit field cannot hold the time; the DOS fields still can.
    """
    seconds = int(moment.timestamp())
    if seconds > _UNIX_TIME_MAX:
        return b""
    return struct.pack("<HHBi", _EXTENDED_TIMESTAMP_ID, 5, 0x01, seconds)


def _zip64_extra(*values: int) -> bytes:
    """The ZIP64 extended-information field holding the given 64-bit values, in spec order."""
    if not values:
        return b""
    return struct.pack(f"<HH{len(values)}Q", _ZIP64_EXTRA_ID, 8 * len(values), *values)


@dataclass(frozen=True)
class StoredEntry:
    """One STORED entry's header fields: its local header and its central directory record are
    both packed from them, so the two cannot disagree.

    ``offset`` is where the entry's local header starts in the archive. Sizes and offsets at or
    above ``zip64_threshold`` go into ZIP64 fields (``stream_zip`` explains the threshold).
    """

    name: str
    modified: datetime
    crc: int
    size: int
    offset: int
    zip64_threshold: int

    @property
    def _sizes_zip64(self) -> bool:
        return self.size >= self.zip64_threshold

    @property
    def _offset_zip64(self) -> bool:
        return self.offset >= self.zip64_threshold

    @property
    def _version(self) -> int:
        return _VERSION_ZIP64 if self._sizes_zip64 or self._offset_zip64 else _VERSION_DEFAULT

    @property
    def _header_size(self) -> int:
        return ZIP64_LIMIT if self._sizes_zip64 else self.size

    def local_header(self) -> bytes:
        """The local file header, name and extra fields that precede the entry's data."""
        encoded_name = self.name.encode("utf-8")
        date, time = _dos_date_time(self.modified)
        # The local ZIP64 field, when present, must hold both sizes (APPNOTE 4.5.3).
        zip64 = _zip64_extra(self.size, self.size) if self._sizes_zip64 else b""
        extra = zip64 + _timestamp_extra(self.modified)
        header = _LOCAL_HEADER.pack(
            _LOCAL_SIGNATURE,
            self._version,
            _FLAG_UTF8,
            _STORED,
            time,
            date,
            self.crc,
            self._header_size,
            self._header_size,
            len(encoded_name),
            len(extra),
        )
        return header + encoded_name + extra

    def central_record(self) -> bytes:
        """The entry's central directory record, name and extra fields."""
        encoded_name = self.name.encode("utf-8")
        date, time = _dos_date_time(self.modified)
        # The central ZIP64 field holds only the values whose classic field overflowed, in order.
        zip64 = [self.size, self.size] if self._sizes_zip64 else []
        if self._offset_zip64:
            zip64.append(self.offset)
        extra = _zip64_extra(*zip64) + _timestamp_extra(self.modified)
        header = _CENTRAL_HEADER.pack(
            _CENTRAL_SIGNATURE,
            _MADE_BY,
            self._version,
            _FLAG_UTF8,
            _STORED,
            time,
            date,
            self.crc,
            self._header_size,
            self._header_size,
            len(encoded_name),
            len(extra),
            0,  # comment length
            0,  # disk number start
            0,  # internal attributes
            _EXTERNAL_ATTRIBUTES,
            ZIP64_LIMIT if self._offset_zip64 else self.offset,
        )
        return header + encoded_name + extra


def end_records(entries: int, directory_size: int, offset: int, zip64_threshold: int) -> bytes:
    """The records that close the archive after its central directory (which starts at
    ``offset``): the end of central directory record, preceded by the ZIP64 end record and its
    locator when the entry count, the directory's size or its offset overflow a classic field."""
    records: list[bytes] = []
    needs_zip64 = (
        entries >= _ZIP64_ENTRY_LIMIT
        or directory_size >= zip64_threshold
        or offset >= zip64_threshold
    )
    if needs_zip64:
        zip64_end_offset = offset + directory_size
        records.append(
            _ZIP64_END_OF_CENTRAL_DIRECTORY.pack(
                _ZIP64_EOCD_SIGNATURE,
                _ZIP64_END_OF_CENTRAL_DIRECTORY.size - 12,  # excludes signature and this field
                _MADE_BY,
                _VERSION_ZIP64,
                0,  # this disk
                0,  # disk with the central directory
                entries,
                entries,
                directory_size,
                offset,
            )
        )
        records.append(_ZIP64_LOCATOR.pack(_ZIP64_LOCATOR_SIGNATURE, 0, zip64_end_offset, 1))
    classic_entries = min(entries, _ZIP64_ENTRY_LIMIT)
    records.append(
        _END_OF_CENTRAL_DIRECTORY.pack(
            _EOCD_SIGNATURE,
            0,  # this disk
            0,  # disk with the central directory
            classic_entries,
            classic_entries,
            ZIP64_LIMIT if directory_size >= zip64_threshold else directory_size,
            ZIP64_LIMIT if offset >= zip64_threshold else offset,
            0,  # comment length
        )
    )
    return b"".join(records)
