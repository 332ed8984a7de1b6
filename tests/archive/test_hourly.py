"""The hourly archive against a real S3 server: contents, evidence, failures, atomicity.

These tests read the ZIP back from the server and decode its Opus entries, because what a
compliance team receives is the object in storage, not what our code believed it wrote.
"""

import hashlib
import io
import json
import shutil
import subprocess
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
from minio import Minio
from minio.error import S3Error

from recordings.archive.hourly import HourArchive, HourJob, build_hour_archive, build_hour_archives
from recordings.catalog import SourceRecording
from recordings.keys import archive_key
from recordings.storage import MinioObjectStore
from recordings_cli.synth import FORMATS, write_conversation

pytestmark = pytest.mark.integration

HOUR = datetime(2025, 12, 12, 13, tzinfo=UTC)


def _upload_source(
    client: Minio,
    bucket: str,
    tmp_path: Path,
    recording_id: str,
    *,
    fmt: str = "wav-pcm16",
    rate: int = 16000,
    channels: int = 1,
    seconds: float = 6.0,
    payload: bytes | None = None,
    conversation: str = "c1",
    session: str = "s1",
    minute: int = 0,
) -> SourceRecording:
    key = f"tenants/acme/conversations/{conversation}/{session}/{recording_id}"
    if payload is None:
        path = tmp_path / f"{recording_id}{FORMATS[fmt].extension}"
        write_conversation(path, FORMATS[fmt], seconds, rate, channels, seed=len(recording_id))
    else:
        path = tmp_path / recording_id
        path.write_bytes(payload)
    client.fput_object(bucket, key, str(path))
    return SourceRecording(
        recording_id=recording_id,
        conversation_id=conversation,
        session_id=session,
        bucket=bucket,
        object_key=key,
        started_at=HOUR + timedelta(minutes=minute),
        duration_seconds=seconds,
        format=fmt,
        channels=channels,
        sample_rate=rate,
        size_bytes=path.stat().st_size,
    )


def _read_zip(client: Minio, bucket: str, key: str) -> zipfile.ZipFile:
    response = client.get_object(bucket, key)
    try:
        data = response.read()
    finally:
        response.close()
        response.release_conn()
    return zipfile.ZipFile(io.BytesIO(data))


def test_hour_archive_holds_every_recording_as_opus_with_metadata(
    s3_client: Minio, buckets: tuple[str, str], tmp_path: Path
) -> None:
    source_bucket, archive_bucket = buckets
    sources = [
        _upload_source(s3_client, source_bucket, tmp_path, "r-ulaw", fmt="wav-ulaw", rate=8000),
        _upload_source(
            s3_client,
            source_bucket,
            tmp_path,
            "r-flac",
            fmt="flac",
            rate=44100,
            channels=2,
            session="s2",
            minute=10,
        ),
        _upload_source(
            s3_client,
            source_bucket,
            tmp_path,
            "r-mp3",
            fmt="mp3",
            rate=48000,
            conversation="c2",
            minute=20,
        ),
    ]
    store = MinioObjectStore(s3_client, archive_bucket)
    result = build_hour_archive(
        tenant_id="acme", hour=HOUR, recordings=sources, store=store, run_id="run-1"
    )

    assert result.object_key == archive_key("acme", HOUR)
    assert (result.recording_count, result.conversation_count, result.failed_recording_count) == (
        3,
        2,
        0,
    )
    archive = _read_zip(s3_client, archive_bucket, result.object_key)
    assert archive.testzip() is None
    names = sorted(archive.namelist())
    assert names == ["c1/s1/r-ulaw.opus", "c1/s2/r-flac.opus", "c2/s1/r-mp3.opus", "metadata.json"]
    for info in archive.infolist():
        assert info.compress_type == zipfile.ZIP_STORED

    metadata = json.loads(archive.read("metadata.json"))
    assert metadata["tenantId"] == "acme"
    assert metadata["utcDay"] == "2025-12-12"
    assert metadata["hour"] == 13
    assert metadata["codec"]["bitrateBps"] == 24000
    assert metadata["counts"]["recordings"] == 3
    assert metadata["failedRecordings"] == []
    entries = {
        rec["path"]: rec
        for conv in metadata["conversations"]
        for sess in conv["sessions"]
        for rec in sess["recordings"]
    }
    expected_channels = {"c1/s1/r-ulaw.opus": 1, "c1/s2/r-flac.opus": 2, "c2/s1/r-mp3.opus": 1}
    for name, channels in expected_channels.items():
        payload = archive.read(name)
        assert entries[name]["opus"]["sha256"] == hashlib.sha256(payload).hexdigest()
        assert entries[name]["opus"]["sizeBytes"] == len(payload)
        decoded, rate = sf.read(io.BytesIO(payload))
        assert (decoded.ndim == 1 and channels == 1) or decoded.shape[1] == channels
        assert abs(len(decoded) / rate - 6.0) < 0.05  # MP3 decoders pad by a frame at most
        bitrate = len(payload) * 8 / 6.0
        assert 12_000 < bitrate < 36_000  # exact ±10 % is asserted on longer speech elsewhere
    # How each was coded: the band of its rate (stereo at 24 kb/s at most wideband), the rate
    # libopus ran at, and the channel layout.
    coded = {name: entries[name]["opus"] for name in expected_channels}
    assert {
        name: (c["layout"], c["bandwidth"], c["codedSampleRate"]) for name, c in coded.items()
    } == {
        "c1/s1/r-ulaw.opus": ("mono", "narrowband", 8000),
        "c1/s2/r-flac.opus": ("coupled", "wideband", 16000),
        "c2/s1/r-mp3.opus": ("mono", "fullband", 48000),
    }

    response = s3_client.get_object(archive_bucket, result.object_key)
    stored = response.read()
    response.close()
    response.release_conn()
    assert hashlib.sha256(stored).hexdigest() == result.sha256
    assert len(stored) == result.size_bytes


def test_unarchivable_recordings_are_listed_with_their_reason(
    s3_client: Minio, buckets: tuple[str, str], tmp_path: Path
) -> None:
    source_bucket, archive_bucket = buckets
    good = _upload_source(s3_client, source_bucket, tmp_path, "good")
    empty = _upload_source(s3_client, source_bucket, tmp_path, "empty", payload=b"", minute=1)
    corrupt = _upload_source(
        s3_client, source_bucket, tmp_path, "corrupt", payload=b"RIFF" + bytes(300), minute=2
    )
    m4a = _upload_source(
        s3_client,
        source_bucket,
        tmp_path,
        "m4a",
        payload=b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00" + bytes(400),
        minute=3,
    )
    missing = replace(good, recording_id="missing", object_key="tenants/acme/nothing-here.wav")
    result = build_hour_archive(
        tenant_id="acme",
        hour=HOUR,
        recordings=[good, empty, corrupt, m4a, missing],
        store=MinioObjectStore(s3_client, archive_bucket),
    )
    assert result.recording_count == 1
    assert result.failure_reasons() == {"empty": 1, "corrupt": 1, "unsupported": 1, "missing": 1}
    metadata = json.loads(
        _read_zip(s3_client, archive_bucket, result.object_key).read("metadata.json")
    )
    listed = {f["recordingId"]: f for f in metadata["failedRecordings"]}
    assert {k: v["reason"] for k, v in listed.items()} == {
        "empty": "empty",
        "corrupt": "corrupt",
        "m4a": "unsupported",
        "missing": "missing",
    }
    assert all(f["detail"] for f in listed.values())
    assert listed["missing"]["source"]["objectKey"] == "tenants/acme/nothing-here.wav"
    # What was read of each source is proven, even when it could not be archived.
    assert listed["missing"]["source"]["read"] is None
    corrupt_bytes = b"RIFF" + bytes(300)
    assert listed["corrupt"]["source"]["read"] == {
        "sizeBytes": len(corrupt_bytes),
        "sha256": hashlib.sha256(corrupt_bytes).hexdigest(),
    }
    assert metadata["counts"] == {
        "conversations": 1,
        "sessions": 1,
        "recordings": 1,
        "failedRecordings": 4,
        "sourceChanged": 0,
        "audioSeconds": pytest.approx(6.0, abs=0.05),
    }


def _recording_entries(metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["recordingId"]: r
        for c in metadata["conversations"]
        for s in c["sessions"]
        for r in s["recordings"]
    }


def test_a_source_replaced_after_registration_is_archived_and_flagged(
    s3_client: Minio, buckets: tuple[str, str], tmp_path: Path
) -> None:
    """The platform registered one object; by the night another sits at its key (replaced,
    truncated, re-encoded). The archive holds what is there, and says so with both values."""
    source_bucket, archive_bucket = buckets
    kept = _upload_source(s3_client, source_bucket, tmp_path, "kept")
    kept_bytes = (tmp_path / "kept.wav").read_bytes()
    kept = replace(kept, sha256=hashlib.sha256(kept_bytes).hexdigest().upper())  # case-blind
    replaced = _upload_source(s3_client, source_bucket, tmp_path, "replaced", minute=1)
    registered_sha = hashlib.sha256((tmp_path / "replaced.wav").read_bytes()).hexdigest()
    replaced = replace(replaced, sha256=registered_sha)
    # Same size, other audio: only the registered checksum can tell.
    other = tmp_path / "other.wav"
    write_conversation(other, FORMATS["wav-pcm16"], 6.0, 16000, 1, seed=99)
    assert other.stat().st_size == replaced.size_bytes
    s3_client.fput_object(source_bucket, replaced.object_key, str(other))
    # Cut short: the registered size tells, and no checksum was registered.
    truncated = _upload_source(s3_client, source_bucket, tmp_path, "cut", minute=2)
    cut_bytes = (tmp_path / "cut.wav").read_bytes()[:20_000]
    s3_client.put_object(source_bucket, truncated.object_key, io.BytesIO(cut_bytes), 20_000)

    result = build_hour_archive(
        tenant_id="acme",
        hour=HOUR,
        recordings=[kept, replaced, truncated],
        store=MinioObjectStore(s3_client, archive_bucket),
    )

    assert result.recording_count == 3 and not result.failed
    assert sorted(a.recording.recording_id for a in result.source_changed) == ["cut", "replaced"]
    metadata = json.loads(
        _read_zip(s3_client, archive_bucket, result.object_key).read("metadata.json")
    )
    assert metadata["counts"]["sourceChanged"] == 2
    entries = _recording_entries(metadata)
    assert entries["kept"]["sourceChanged"] is None
    assert entries["kept"]["source"]["read"] == {
        "sizeBytes": len(kept_bytes),
        "sha256": hashlib.sha256(kept_bytes).hexdigest(),
    }
    other_sha = hashlib.sha256(other.read_bytes()).hexdigest()
    assert entries["replaced"]["sourceChanged"] == {
        "registeredSizeBytes": replaced.size_bytes,
        "readSizeBytes": replaced.size_bytes,
        "registeredSha256": registered_sha,
        "readSha256": other_sha,
    }
    assert entries["cut"]["sourceChanged"] == {
        "registeredSizeBytes": truncated.size_bytes,
        "readSizeBytes": 20_000,
        "registeredSha256": None,
        "readSha256": hashlib.sha256(cut_bytes).hexdigest(),
    }
    assert entries["cut"]["source"]["truncated"] is True


def test_an_hour_without_recordings_still_gets_an_archive_that_says_so(
    s3_client: Minio, buckets: tuple[str, str]
) -> None:
    result = build_hour_archive(
        tenant_id="acme", hour=HOUR, recordings=[], store=MinioObjectStore(s3_client, buckets[1])
    )
    archive = _read_zip(s3_client, buckets[1], result.object_key)
    assert archive.namelist() == ["metadata.json"]
    metadata = json.loads(archive.read("metadata.json"))
    assert metadata["empty"] is True
    assert metadata["counts"]["recordings"] == 0


def test_a_storage_failure_fails_the_hour_and_leaves_nothing_at_the_key(
    s3_client: Minio, buckets: tuple[str, str], tmp_path: Path
) -> None:
    """A missing *bucket* is an outage or misconfiguration, not evidence the audio is gone."""
    source_bucket, archive_bucket = buckets
    good = _upload_source(s3_client, source_bucket, tmp_path, "good")
    unreachable = replace(good, recording_id="elsewhere", bucket="bucket-that-does-not-exist")
    with pytest.raises(S3Error, match="NoSuchBucket"):
        build_hour_archive(
            tenant_id="acme",
            hour=HOUR,
            recordings=[good, unreachable],
            store=MinioObjectStore(s3_client, archive_bucket),
        )
    with pytest.raises(S3Error, match="NoSuchKey"):
        s3_client.stat_object(archive_bucket, archive_key("acme", HOUR))


def test_rebuilding_an_hour_converges_to_the_same_audio(
    s3_client: Minio, buckets: tuple[str, str], tmp_path: Path
) -> None:
    source_bucket, archive_bucket = buckets
    sources = [
        _upload_source(s3_client, source_bucket, tmp_path, "r1", channels=2),
        _upload_source(s3_client, source_bucket, tmp_path, "r2", minute=5),
    ]
    store = MinioObjectStore(s3_client, archive_bucket)
    first = build_hour_archive(tenant_id="acme", hour=HOUR, recordings=sources, store=store)
    second = build_hour_archive(tenant_id="acme", hour=HOUR, recordings=sources, store=store)
    assert first.object_key == second.object_key
    first_hashes = [a.conversion.output_sha256 for a in first.archived]
    second_hashes = [a.conversion.output_sha256 for a in second.archived]
    assert first_hashes == second_hashes
    archive = _read_zip(s3_client, archive_bucket, second.object_key)
    metadata = json.loads(archive.read("metadata.json"))
    assert metadata["generatedAt"] == second.generated_at.isoformat().replace("+00:00", "Z")


def test_many_hours_come_back_in_order_and_a_failing_one_stops_nothing(
    s3_client: Minio, buckets: tuple[str, str], tmp_path: Path
) -> None:
    source_bucket, archive_bucket = buckets
    recording = _upload_source(s3_client, source_bucket, tmp_path, "r1")

    def broken() -> list[SourceRecording]:
        raise ConnectionError("database went away")

    jobs = [
        HourJob("acme", HOUR + timedelta(hours=offset), lambda: [recording]) for offset in range(4)
    ]
    jobs[1] = HourJob("acme", HOUR + timedelta(hours=1), broken)
    results = list(
        build_hour_archives(jobs, store=MinioObjectStore(s3_client, archive_bucket), workers=2)
    )
    assert [job.hour for job, _ in results] == [job.hour for job in jobs]
    outcomes = [outcome for _, outcome in results]
    assert isinstance(outcomes[1], ConnectionError)
    assert all(isinstance(o, HourArchive) and o.recording_count == 1 for o in outcomes[::2])
    assert isinstance(outcomes[3], HourArchive)
    keys = {o.object_name for o in s3_client.list_objects(archive_bucket, recursive=True)}
    assert archive_key("acme", HOUR + timedelta(hours=1)) not in keys
    assert len(keys) == 3


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg comes with make bench-deps")
def test_recordings_libsndfile_cannot_read_are_archived_and_say_who_decoded_them(
    s3_client: Minio, buckets: tuple[str, str], tmp_path: Path
) -> None:
    """A browser's WebM/Opus and a phone's M4A/AAC next to a WAV: all three in the ZIP, and
    metadata.json says which decoder read each and what it found."""
    source_bucket, archive_bucket = buckets
    wav = _upload_source(s3_client, source_bucket, tmp_path, "wav")
    made = {}
    for name, rate, channels, args in [
        ("webm", 48_000, 1, ("-c:a", "libopus", "-b:a", "32k", "-f", "webm")),
        ("m4a", 44_100, 2, ("-c:a", "aac", "-b:a", "64k")),
    ]:
        pcm = tmp_path / f"{name}-pcm.wav"
        write_conversation(pcm, FORMATS["wav-pcm16"], 4.0, rate, channels, seed=len(name))
        encoded = tmp_path / f"{name}.{name}"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(pcm), *args, str(encoded)], check=True
        )
        key = f"tenants/acme/conversations/c1/s1/{name}.{name}"
        s3_client.fput_object(source_bucket, key, str(encoded))
        made[name] = replace(
            wav,
            recording_id=name,
            object_key=key,
            channels=channels,
            sample_rate=rate,
            size_bytes=encoded.stat().st_size,
        )
    result = build_hour_archive(
        tenant_id="acme",
        hour=HOUR,
        recordings=[wav, *made.values()],
        store=MinioObjectStore(s3_client, archive_bucket),
    )
    assert result.recording_count == 3 and not result.failed
    archive = _read_zip(s3_client, archive_bucket, result.object_key)
    entries = _recording_entries(json.loads(archive.read("metadata.json")))
    found = {
        rid: (e["source"]["decoder"], e["source"]["detectedSubtype"], e["source"]["channels"])
        for rid, e in entries.items()
    }
    assert found == {
        "wav": ("libsndfile", "PCM_16", 1),
        "webm": ("ffmpeg", "opus", 1),
        "m4a": ("ffmpeg", "aac", 2),
    }
    assert "webm" in entries["webm"]["source"]["detectedFormat"]
    assert "mp4" in entries["m4a"]["source"]["detectedFormat"]
    for rid in ("webm", "m4a"):
        assert entries[rid]["source"]["decodedSeconds"] == pytest.approx(4.0, abs=0.02)
        audio, _ = sf.read(io.BytesIO(archive.read(entries[rid]["path"])), always_2d=True)
        assert audio.shape[1] == made[rid].channels
