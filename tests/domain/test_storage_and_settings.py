"""Object-store atomicity against the real server, and settings errors that tell what to fix."""

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from minio import Minio
from minio.error import S3Error

from recordings.archive.zipstream import IteratorReader
from recordings.settings import S3Settings, SettingsError, load_dotenv, parse_endpoint
from recordings.storage import UPLOAD_PART_SIZE, upload_stream


def _chunks_then_failure(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"z" * (1 << 20)
        sent += 1 << 20
    raise ConnectionError("source stream broke")


@pytest.mark.integration
def test_a_failed_multipart_upload_leaves_the_previous_object_intact(
    s3_client: Minio, buckets: tuple[str, str]
) -> None:
    bucket = buckets[1]
    key = "tenants/acme/daily-conversation-audio-recordings/2025/12/12/13.zip"
    upload_stream(s3_client, bucket, key, io.BytesIO(b"version 1"))
    # More than two parts go out before the stream fails: a real multipart upload is under way.
    failing = IteratorReader(_chunks_then_failure(2 * UPLOAD_PART_SIZE + (1 << 20)))
    with pytest.raises(ConnectionError, match="source stream broke"):
        upload_stream(s3_client, bucket, key, failing)
    response = s3_client.get_object(bucket, key)
    try:
        assert response.read() == b"version 1"
    finally:
        response.close()
        response.release_conn()


@pytest.mark.integration
def test_a_failed_first_upload_leaves_nothing_at_the_key(
    s3_client: Minio, buckets: tuple[str, str]
) -> None:
    bucket = buckets[1]
    failing = IteratorReader(_chunks_then_failure(UPLOAD_PART_SIZE + (1 << 20)))
    with pytest.raises(ConnectionError):
        upload_stream(s3_client, bucket, "tenants/acme/x.zip", failing)
    with pytest.raises(S3Error, match="NoSuchKey"):
        s3_client.stat_object(bucket, "tenants/acme/x.zip")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8333", ("127.0.0.1:8333", False)),
        ("https://minio.internal:9000/", ("minio.internal:9000", True)),
        ("minio:9000", ("minio:9000", False)),
    ],
)
def test_endpoints_parse(url: str, expected: tuple[str, bool]) -> None:
    assert parse_endpoint(url) == expected


@pytest.mark.parametrize("url", ["ftp://host:21", "http://host:9000/bucket", "http://"])
def test_bad_endpoints_say_what_is_expected(url: str) -> None:
    with pytest.raises(SettingsError, match="use http://host:port"):
        parse_endpoint(url)


def test_missing_credentials_say_how_to_get_them(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("RECORDINGS_"):
            monkeypatch.delenv(key)
    with pytest.raises(SettingsError, match=r"RECORDINGS_S3_ACCESS_KEY is not set.*s3 start"):
        S3Settings.from_env()


def test_dotenv_never_overrides_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nRECORDINGS_TEST_A=from-file\nexport RECORDINGS_TEST_B='quoted'\nnot a line\n"
    )
    monkeypatch.setenv("RECORDINGS_TEST_A", "from-env")
    monkeypatch.delenv("RECORDINGS_TEST_B", raising=False)
    loaded = load_dotenv(env_file)
    assert os.environ["RECORDINGS_TEST_A"] == "from-env"
    assert os.environ["RECORDINGS_TEST_B"] == "quoted"
    assert loaded == {"RECORDINGS_TEST_B": "quoted"}
    monkeypatch.delenv("RECORDINGS_TEST_B")


def test_stale_incomplete_uploads_are_aborted_and_fresh_ones_kept(
    s3_client: Minio, buckets: tuple[str, str]
) -> None:
    from datetime import UTC, datetime, timedelta

    from recordings.storage import abort_stale_uploads

    archive = buckets[1]
    stale_key = "tenants/acme/daily-conversation-audio-recordings/2026/01/01/00.zip"
    other_key = "sources/acme/call.wav"  # outside the prefix: never touched
    stale = s3_client._create_multipart_upload(archive, stale_key, {})
    outside = s3_client._create_multipart_upload(archive, other_key, {})
    now = datetime.now(UTC)
    # Nothing is old enough yet: an upload in progress is never aborted.
    assert (
        abort_stale_uploads(s3_client, archive, "tenants/", older_than=timedelta(hours=24), now=now)
        == []
    )
    later = now + timedelta(hours=25)
    aborted = abort_stale_uploads(
        s3_client, archive, "tenants/", older_than=timedelta(hours=24), now=later
    )
    assert [(a.key, a.upload_id) for a in aborted] == [(stale_key, stale)]
    remaining = s3_client._list_multipart_uploads(archive).uploads
    assert [(u.object_name, u.upload_id) for u in remaining] == [(other_key, outside)]
    s3_client._abort_multipart_upload(archive, other_key, outside)
