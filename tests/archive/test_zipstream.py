"""Why this exists: the hourly ZIP is the legal evidence tenants download, and it is written by our
own streaming ZIP writer rather than :mod:`zipfile` (which sets data descriptors on non-seekable
streams, rejected by Java's ZipInputStream for STORED entries). These tests prove the archives
are read by Python's zipfile, Info-ZIP's unzip and Java's ZipInputStream, including the ZIP64
paths a multi-GB hour takes, and that the writer refuses to emit a header that lies.
"""

import hashlib
import io
import os
import shutil
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from minio.helpers import read_part_data

from recordings.archive.zipstream import (
    IteratorReader,
    MemberChangedError,
    ZipMember,
    stream_zip,
)

MODIFIED = datetime(2024, 5, 6, 13, 7, 59, tzinfo=UTC)
LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
DATA_DESCRIPTOR_FLAG = 1 << 3
UTF8_FLAG = 1 << 11

JAVA_READER = """
import java.io.*;
import java.util.zip.*;

public class ReadZip {
    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        try (ZipInputStream zip = new ZipInputStream(
                new BufferedInputStream(new FileInputStream(args[0])))) {
            ZipEntry entry;
            byte[] buffer = new byte[65536];
            while ((entry = zip.getNextEntry()) != null) {
                CRC32 crc = new CRC32();
                long size = 0;
                int read;
                while ((read = zip.read(buffer)) > 0) {
                    crc.update(buffer, 0, read);
                    size += read;
                }
                out.println(entry.getName() + "\\t" + size + "\\t" + crc.getValue());
            }
        }
    }
}
"""


def tool(name: str) -> str:
    """The path of a required external reader; a missing reader fails rather than skips."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is required by this test (e.g. apt-get install -y {name})")
    return found


def write_file(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def sample_members(tmp_path: Path) -> tuple[list[ZipMember], dict[str, bytes]]:
    """A metadata payload, files of several sizes (one empty, one precomputed), unicode names."""
    contents = {
        "metadata.json": b'{"tenant": "acme", "hour": "2024-05-06T13"}',
        "conv-1/sess-1/rec-1.opus": os.urandom(10_000),
        "conv-1/sess-1/empty.opus": b"",
        "conv-2/sess-9/rec-2.opus": os.urandom(3_333),
        "Gespräch/Sitzung/Aufnahme-ü.opus": b"umlaut",
        "会話/セッション/録音🎧.opus": b"cjk and emoji",
    }
    members = [ZipMember("metadata.json", MODIFIED, data=contents["metadata.json"])]
    for index, (name, content) in enumerate(list(contents.items())[1:]):
        path = write_file(tmp_path / "src" / f"{index}.opus", content)
        if name == "conv-2/sess-9/rec-2.opus":
            members.append(
                ZipMember(name, MODIFIED, path=path, crc32=zlib.crc32(content), size=len(content))
            )
        else:
            members.append(ZipMember(name, MODIFIED, path=path))
    return members, contents


def build(members: list[ZipMember], **kwargs: int) -> bytes:
    return b"".join(stream_zip(members, **kwargs))


def zip64_fields(extra: bytes) -> int:
    """How many 64-bit values the ZIP64 extra field (0x0001) in ``extra`` holds, 0 if absent."""
    position = 0
    while position + 4 <= len(extra):
        field_id, length = struct.unpack_from("<HH", extra, position)
        if field_id == 0x0001:
            return length // 8
        position += 4 + length
    return 0


def test_round_trip_with_zipfile(tmp_path: Path) -> None:
    members, contents = sample_members(tmp_path)
    archive = build(members, chunk_size=4096)

    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == list(contents)
        for info in zf.infolist():
            assert zf.read(info) == contents[info.filename]
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.flag_bits & DATA_DESCRIPTOR_FLAG == 0
            assert info.flag_bits & UTF8_FLAG
            assert info.date_time == (2024, 5, 6, 13, 7, 58)  # DOS time has 2-second resolution
            # The local header itself carries the real CRC and sizes (zipfile only checks the
            # central directory), which is what streaming readers rely on.
            fields = LOCAL_HEADER.unpack_from(archive, info.header_offset)
            crc, compressed, uncompressed = fields[6:9]
            assert (crc, compressed, uncompressed) == (info.CRC, info.file_size, info.file_size)
            assert fields[2] & DATA_DESCRIPTOR_FLAG == 0


def test_dates_are_stored_as_utc_wall_clock(tmp_path: Path) -> None:
    plus_two = timezone(timedelta(hours=2))
    member = ZipMember("a.txt", datetime(2024, 1, 1, 1, 30, 10, tzinfo=plus_two), data=b"a")
    with zipfile.ZipFile(io.BytesIO(build([member]))) as zf:
        assert zf.getinfo("a.txt").date_time == (2023, 12, 31, 23, 30, 10)


@pytest.mark.parametrize("zip64_threshold", [0xFFFFFFFF, 1], ids=["classic", "forced-zip64"])
def test_unzip_tests_the_archive(tmp_path: Path, zip64_threshold: int) -> None:
    unzip = tool("unzip")
    members, contents = sample_members(tmp_path)
    archive = tmp_path / "hour.zip"
    archive.write_bytes(build(members, zip64_threshold=zip64_threshold))

    result = subprocess.run([unzip, "-t", str(archive)], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No errors detected" in result.stdout
    assert result.stdout.count(" OK") == len(contents)


def test_unzip_restores_exact_utc_mtime_from_extended_timestamp(tmp_path: Path) -> None:
    unzip = tool("unzip")
    archive = tmp_path / "hour.zip"
    archive.write_bytes(build([ZipMember("c/s/r.opus", MODIFIED, data=b"opus")]))

    subprocess.run(
        [unzip, "-q", str(archive), "-d", str(tmp_path / "out")],
        check=True,
        env={**os.environ, "TZ": "America/New_York"},
    )

    extracted = tmp_path / "out" / "c" / "s" / "r.opus"
    assert extracted.read_bytes() == b"opus"
    assert extracted.stat().st_mtime == MODIFIED.timestamp()  # odd second kept, zone ignored


@pytest.mark.parametrize("zip64_threshold", [0xFFFFFFFF, 1], ids=["classic", "forced-zip64"])
def test_java_zipinputstream_reads_every_entry(tmp_path: Path, zip64_threshold: int) -> None:
    """The reason this writer exists: ZipInputStream rejects STORED entries with descriptors."""
    java = tool("java")
    members, contents = sample_members(tmp_path)
    archive = tmp_path / "hour.zip"
    archive.write_bytes(build(members, zip64_threshold=zip64_threshold))
    source = tmp_path / "ReadZip.java"
    source.write_text(JAVA_READER)

    result = subprocess.run(
        [java, str(source), str(archive)], capture_output=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stderr.decode()
    expected = [f"{name}\t{len(data)}\t{zlib.crc32(data)}" for name, data in contents.items()]
    assert result.stdout.decode("utf-8").splitlines() == expected


def test_empty_archive_is_a_valid_zip() -> None:
    archive = build([])

    reference = io.BytesIO()
    with zipfile.ZipFile(reference, "w"):
        pass
    assert archive == reference.getvalue()  # the 22-byte end of central directory record
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.namelist() == []
        assert zf.testzip() is None


def test_unicode_names_round_trip(tmp_path: Path) -> None:
    names = ["Gespräch/Sitzung/Aufnahme-ü.opus", "会話/セッション/録音🎧.opus", "ascii/only.opus"]
    archive = build([ZipMember(name, MODIFIED, data=name.encode()) for name in names])

    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.namelist() == names
        assert all(zf.getinfo(name).flag_bits & UTF8_FLAG for name in names)
        assert [zf.read(name).decode() for name in names] == names


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/etc/passwd",
        "../escape.opus",
        "a/../../b.opus",
        "a/..",
        "a\\b.opus",
        "a//b.opus",
        "./a.opus",
        "a/./b.opus",
        "directory/",
        "C:/windows.opus",
        "nul\x00byte.opus",
    ],
)
def test_bad_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="ZIP member name"):
        ZipMember(name, MODIFIED, data=b"x")


def test_duplicate_names_are_rejected_before_the_duplicate_is_written() -> None:
    members = [
        ZipMember("c/s/r.opus", MODIFIED, data=b"first"),
        ZipMember("c/s/r.opus", MODIFIED, data=b"second"),
    ]
    emitted: list[bytes] = []

    with pytest.raises(ValueError, match=r"duplicate ZIP member name 'c/s/r\.opus'"):
        emitted.extend(stream_zip(members))

    assert b"".join(emitted).count(b"PK\x03\x04") == 1
    assert b"second" not in b"".join(emitted)


def test_member_needs_exactly_one_source_and_an_aware_time(tmp_path: Path) -> None:
    path = write_file(tmp_path / "a.opus", b"a")
    with pytest.raises(ValueError, match="exactly one of path and data"):
        ZipMember("a.opus", MODIFIED)
    with pytest.raises(ValueError, match="exactly one of path and data"):
        ZipMember("a.opus", MODIFIED, path=path, data=b"a")
    with pytest.raises(TypeError, match="data must be bytes"):
        ZipMember("a.opus", MODIFIED, data=bytearray(b"a"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        ZipMember("a.opus", datetime(2024, 5, 6, 13), data=b"a")  # noqa: DTZ001 - the point
    with pytest.raises(ValueError, match="DOS"):
        ZipMember("a.opus", datetime(1979, 12, 31, tzinfo=UTC), data=b"a")


def test_declared_size_that_disagrees_with_the_file_fails_before_its_header(
    tmp_path: Path,
) -> None:
    path = write_file(tmp_path / "a.opus", b"12345")
    members = [
        ZipMember("ok.json", MODIFIED, data=b"{}"),
        ZipMember("a.opus", MODIFIED, path=path, size=6),
    ]
    emitted: list[bytes] = []

    with pytest.raises(MemberChangedError, match="declared size 6"):
        emitted.extend(stream_zip(members))

    assert b"".join(emitted).count(b"PK\x03\x04") == 1


def test_declared_data_size_or_crc_that_disagrees_is_rejected() -> None:
    with pytest.raises(MemberChangedError, match="declared size"):
        build([ZipMember("a.json", MODIFIED, data=b"{}", size=3)])
    with pytest.raises(MemberChangedError, match="declared CRC-32"):
        build([ZipMember("a.json", MODIFIED, data=b"{}", crc32=zlib.crc32(b"[]"))])


def test_file_grown_past_declared_size_fails_before_the_extra_bytes(tmp_path: Path) -> None:
    content = b"a" * 100
    path = write_file(tmp_path / "a.opus", content + b"tail")
    member = ZipMember("a.opus", MODIFIED, path=path, size=100, crc32=zlib.crc32(content))
    emitted: list[bytes] = []

    with pytest.raises(MemberChangedError, match="grew past its declared size of 100"):
        emitted.extend(stream_zip([member], chunk_size=30))

    assert b"tail" not in b"".join(emitted)


def test_file_shrunk_below_declared_size_is_detected(tmp_path: Path) -> None:
    path = write_file(tmp_path / "a.opus", b"a" * 50)
    member = ZipMember("a.opus", MODIFIED, path=path, size=60, crc32=zlib.crc32(b"a" * 60))

    with pytest.raises(MemberChangedError, match="has 50 bytes, but 60 were declared"):
        build([member], chunk_size=16)


def test_changed_content_never_completes_the_entry(tmp_path: Path) -> None:
    """A CRC mismatch is only known at end of file, so the last chunk is held back until then."""
    original = bytes(range(256)) * 4
    path = write_file(tmp_path / "a.opus", original[:-1] + b"X")  # changed after declaring
    member = ZipMember(
        "a.opus", MODIFIED, path=path, size=len(original), crc32=zlib.crc32(original)
    )
    emitted: list[bytes] = []

    with pytest.raises(MemberChangedError, match="CRC-32"):
        emitted.extend(stream_zip([member], chunk_size=100))

    body = b"".join(emitted)
    header_length = LOCAL_HEADER.size + len(b"a.opus")
    assert len(body) < header_length + len(original)
    assert not body.endswith(b"X")


def test_zip64_structures_where_fields_overflow(tmp_path: Path) -> None:
    """With a 1000-byte threshold: a classic entry, an entry whose sizes overflow, and an entry
    whose offset overflows, as in a real multi-GB hour (sizes per entry, offsets after 4 GiB)."""
    big = os.urandom(2000)
    members = [
        ZipMember("small-first.opus", MODIFIED, data=b"s" * 10),
        ZipMember("big.opus", MODIFIED, path=write_file(tmp_path / "big.opus", big)),
        ZipMember("small-after.opus", MODIFIED, data=b"t" * 10),
    ]
    archive = build(members, zip64_threshold=1000)

    assert b"PK\x06\x06" in archive  # ZIP64 end of central directory record
    assert b"PK\x06\x07" in archive  # and its locator
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.testzip() is None
        first, large, after = zf.infolist()
        assert zf.read(large) == big
        assert (zip64_fields(first.extra), zip64_fields(large.extra)) == (0, 2)
        assert zip64_fields(after.extra) == 1  # only the local header offset
        assert after.header_offset > 1000
        assert zf.read(after) == b"t" * 10
    for info in (first, large, after):
        version_needed = LOCAL_HEADER.unpack_from(archive, info.header_offset)[1]
        assert version_needed == (20 if info is first else 45)


def test_more_than_65535_entries_use_the_zip64_end_records() -> None:
    count = 65_536
    members = (ZipMember(f"c/{index}.opus", MODIFIED, data=b"") for index in range(count))
    archive = build(members)  # type: ignore[arg-type]

    eocd = archive[-22:]
    assert struct.unpack("<HH", eocd[8:12]) == (0xFFFF, 0xFFFF)
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        names = zf.namelist()
    assert len(names) == count
    assert names[-1] == f"c/{count - 1}.opus"


def test_members_are_consumed_lazily() -> None:
    pulled: list[str] = []

    def producer() -> Iterator[ZipMember]:
        for name in ("a.opus", "b.opus", "c.opus"):
            pulled.append(name)
            yield ZipMember(name, MODIFIED, data=name.encode())

    stream = stream_zip(producer())
    first_header = next(stream)
    first_body = next(stream)

    assert first_header.startswith(b"PK\x03\x04")
    assert first_body == b"a.opus"
    assert pulled == ["a.opus"]
    rest = list(stream)
    assert pulled == ["a.opus", "b.opus", "c.opus"]
    with zipfile.ZipFile(io.BytesIO(first_header + first_body + b"".join(rest))) as zf:
        assert zf.testzip() is None


def test_file_data_is_yielded_in_chunks_of_at_most_chunk_size(tmp_path: Path) -> None:
    content = os.urandom(300_000)
    member = ZipMember("a.opus", MODIFIED, path=write_file(tmp_path / "a.opus", content))

    chunks = list(stream_zip([member], chunk_size=65_536))

    assert max(len(chunk) for chunk in chunks) == 65_536
    assert len(chunks) >= len(content) // 65_536


def sparse_sink(chunks: Iterator[bytes], path: Path) -> int:
    """Write chunks to ``path``, seeking over all-zero chunks so gigabytes of zeros cost no disk."""
    position = 0
    with path.open("wb") as out:
        for chunk in chunks:
            if chunk.count(0) == len(chunk):
                out.seek(len(chunk), os.SEEK_CUR)
            else:
                out.write(chunk)
            position += len(chunk)
        out.truncate(position)
    return position


@pytest.mark.slow
def test_real_zip64_archive_over_4_gib(tmp_path: Path) -> None:
    """No threshold trick: a sparse file just over 4 GiB, streamed for real (reads 8 GiB)."""
    big_size = (1 << 32) + 10
    big = tmp_path / "big.opus"
    with big.open("wb") as handle:
        handle.truncate(big_size)
    members = [
        ZipMember("metadata.json", MODIFIED, data=b"{}"),
        ZipMember("c/s/big.opus", MODIFIED, path=big),
        ZipMember("c/s/after.opus", MODIFIED, data=b"after"),
    ]
    archive = tmp_path / "hour.zip"

    total = sparse_sink(stream_zip(members), archive)

    assert total == archive.stat().st_size > big_size
    with zipfile.ZipFile(archive) as zf:
        assert zf.getinfo("c/s/big.opus").file_size == big_size
        after = zf.getinfo("c/s/after.opus")
        assert after.header_offset > 0xFFFFFFFF
        assert zf.read(after) == b"after"
        assert zf.read("metadata.json") == b"{}"
    result = subprocess.run(
        [tool("unzip"), "-t", str(archive), "metadata.json", "c/s/after.opus"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def chunks_of(*chunks: bytes) -> Iterator[bytes]:
    yield from chunks


def test_iterator_reader_read_sizes_span_and_split_chunks() -> None:
    reader = IteratorReader(chunks_of(b"abc", b"", b"defgh", b"ij"))

    assert reader.read(2) == b"ab"
    assert reader.read(4) == b"cdef"  # spans a chunk boundary and skips the empty chunk
    assert reader.read(0) == b""
    assert reader.read(100) == b"ghij"  # short only at the end
    assert reader.read(5) == b""
    assert reader.read() == b""
    assert reader.bytes_read == 10


@pytest.mark.parametrize("size", [-1, None])
def test_iterator_reader_read_all(size: int | None) -> None:
    reader = IteratorReader([b"ab", b"cd"])
    assert reader.read(1) == b"a"
    assert reader.read(size) == b"bcd"
    assert reader.read(size) == b""


def test_iterator_reader_hashes_and_counts_what_was_read() -> None:
    chunks = [os.urandom(1000) for _ in range(7)]
    whole = b"".join(chunks)
    reader = IteratorReader(iter(chunks))

    first = reader.read(1234)
    assert reader.sha256_hexdigest == hashlib.sha256(first).hexdigest()
    while reader.read(333):
        pass

    assert reader.bytes_read == len(whole)
    assert reader.sha256_hexdigest == hashlib.sha256(whole).hexdigest()


def test_iterator_reader_pulls_chunks_only_as_needed() -> None:
    pulled = 0

    def chunks() -> Iterator[bytes]:
        nonlocal pulled
        for _ in range(5):
            pulled += 1
            yield b"x" * 100

    reader = IteratorReader(chunks())
    assert reader.read(10) == b"x" * 10
    assert pulled == 1
    assert len(reader.read(150)) == 150
    assert pulled == 2


def test_iterator_reader_is_a_non_seekable_binary_file() -> None:
    reader = IteratorReader([bytearray(b"ab"), memoryview(b"cd")])  # type: ignore[list-item]

    assert reader.readable()
    assert not reader.seekable()
    with pytest.raises(OSError):
        reader.seek(0)
    data = reader.read(3)
    assert type(data) is bytes  # minio rejects anything but bytes
    assert data == b"abc"
    assert io.BufferedReader(reader).read() == b"d"


def test_iterator_reader_close_closes_the_generator() -> None:
    finished: list[bool] = []

    def chunks() -> Iterator[bytes]:
        try:
            yield b"a"
            yield b"b"
        finally:
            finished.append(True)

    reader = IteratorReader(chunks())
    reader.read(1)
    reader.close()

    assert finished == [True]
    with pytest.raises(ValueError):
        reader.read(1)


def test_minio_part_reader_gets_full_parts_of_a_streamed_zip(tmp_path: Path) -> None:
    """minio's put_object(length=-1) reads parts with this helper; parts must come out full."""
    members, contents = sample_members(tmp_path)
    expected = build(members)
    reader = IteratorReader(stream_zip(members, chunk_size=1000))

    parts = []
    while part := read_part_data(reader, 4096):
        parts.append(part)

    assert all(len(part) == 4096 for part in parts[:-1])
    assert b"".join(parts) == expected
    assert reader.bytes_read == len(expected)
    assert reader.sha256_hexdigest == hashlib.sha256(expected).hexdigest()
    with zipfile.ZipFile(io.BytesIO(b"".join(parts))) as zf:
        assert {info.filename: zf.read(info) for info in zf.infolist()} == contents
