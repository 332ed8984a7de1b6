"""Fixtures of the fault scenarios: an S3 server of the test's own, which it may stop."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from minio import Minio

from recordings.storage import S3Connection, ensure_bucket
from recordings_cli.local_s3 import LocalS3Ports, LocalS3Server, new_credentials
from tests.api.conftest import api_settings  # noqa: F401 - the API tests' fixture, shared


@pytest.fixture
def own_s3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recordings_env: dict[str, str]
) -> Iterator[tuple[LocalS3Server, Minio]]:
    """A SeaweedFS server for this test alone (the session's is shared), with the test's
    source and archive buckets, and the RECORDINGS_S3_* environment pointed at it."""
    access_key, secret_key = new_credentials()
    server = LocalS3Server(
        data_dir=tmp_path / "own-s3",
        access_key=access_key,
        secret_key=secret_key,
        ports=LocalS3Ports.free(),
    )
    server.start()
    connection = S3Connection(f"http://{server.endpoint}", access_key, secret_key)
    client = connection.client()
    for bucket in (
        recordings_env["RECORDINGS_SOURCE_BUCKET"],
        recordings_env["RECORDINGS_ARCHIVE_BUCKET"],
    ):
        ensure_bucket(client, bucket)
    monkeypatch.setenv("RECORDINGS_S3_ENDPOINT", connection.endpoint)
    monkeypatch.setenv("RECORDINGS_S3_ACCESS_KEY", access_key)
    monkeypatch.setenv("RECORDINGS_S3_SECRET_KEY", secret_key)
    try:
        yield server, client
    finally:
        server.stop(timeout=0)
