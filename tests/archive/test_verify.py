"""The archive verifier catches each way an archive can disagree with its record."""

import hashlib
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from recordings.archive.verify import file_sha256, verify_archive

HOUR = datetime(2026, 3, 19, 7, tzinfo=UTC)
OPUS = b"OggS-fake-opus-bytes"


def _metadata(**overrides: object) -> dict[str, object]:
    recording = {
        "path": "c1/s1/r1.opus",
        "opus": {"sizeBytes": len(OPUS), "sha256": hashlib.sha256(OPUS).hexdigest()},
    }
    metadata: dict[str, object] = {
        "tenantId": "acme",
        "utcDay": "2026-03-19",
        "hour": 7,
        "counts": {"recordings": 1, "failedRecordings": 0},
        "conversations": [{"sessions": [{"recordings": [recording]}]}],
        "failedRecordings": [],
    }
    metadata.update(overrides)
    return metadata


def _zip(path: Path, metadata: dict[str, object], extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("c1/s1/r1.opus", OPUS)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
        archive.writestr("metadata.json", json.dumps(metadata))
    return path


def _problems(path: Path, **kwargs: object) -> list[str]:
    expected = {"expected_sha256": file_sha256(path), "expected_size": path.stat().st_size}
    expected.update(kwargs)  # type: ignore[arg-type]
    return verify_archive(path, tenant_id="acme", hour=HOUR, **expected)  # type: ignore[arg-type]


def test_an_intact_archive_has_no_problems(tmp_path: Path) -> None:
    assert _problems(_zip(tmp_path / "a.zip", _metadata())) == []


def test_each_disagreement_is_named(tmp_path: Path) -> None:
    path = _zip(tmp_path / "a.zip", _metadata())
    assert "SHA-256 differs" in _problems(path, expected_sha256="0" * 64)[0]
    assert "size is" in _problems(path, expected_size=1)[0]
    other = _zip(tmp_path / "b.zip", _metadata(tenantId="globex"))
    assert "names tenant 'globex'" in _problems(other)[0]
    unlisted = _zip(tmp_path / "c.zip", _metadata(), {"c9/s9/r9.opus": b"x"})
    assert "not listed" in _problems(unlisted)[0]
    counts = _zip(tmp_path / "d.zip", _metadata(counts={"recordings": 2, "failedRecordings": 0}))
    assert "counts.recordings" in _problems(counts)[0]
    missing = _zip(tmp_path / "e.zip", _metadata(conversations=[]), {})
    assert any("not listed" in p for p in _problems(missing))


def test_a_corrupted_entry_fails_its_crc(tmp_path: Path) -> None:
    path = _zip(tmp_path / "a.zip", _metadata())
    data = bytearray(path.read_bytes())
    offset = data.find(OPUS)
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = _problems(path)
    assert any("CRC" in p for p in problems)


def test_something_that_is_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(b"hello")
    assert "not a readable ZIP" in _problems(path)[0]
