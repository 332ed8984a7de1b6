"""Object storage through the `minio` SDK: one code path for MinIO (production) and SeaweedFS."""

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, cast

import urllib3
from minio import Minio
from minio.error import S3Error

from recordings.settings import parse_endpoint

# The SDK buffers each part in memory (with a copy or two while signing and sending), so the part
# size bounds the upload's memory; 16 MiB keeps a multi-GB hour far below 10,000 parts. Parts are
# sent one at a time: minio's default of three in parallel would triple that buffer.
UPLOAD_PART_SIZE = 16 * 1024 * 1024
DOWNLOAD_CHUNK = 1024 * 1024
_MISSING_CODES = {"NoSuchKey", "NoSuchObject"}


class SourceObjectMissingError(LookupError):
    """The referenced source object does not exist (the recording is listed as missing)."""


class SourceObjectTooLargeError(ValueError):
    """The source object is larger than the configured limit (listed as too_large)."""


DEFAULT_MAX_SOURCE_BYTES = 4 * 1024**3
"""4 GiB: a four-hour stereo 48 kHz 16-bit WAV is 2.8 GB. Each recording in flight is copied
to local scratch whole, so this bounds the scratch space a build can need."""


@dataclass(frozen=True)
class S3Connection:
    """How to reach the object store; built from settings or a Dagster resource."""

    endpoint: str  # http(s)://host:port
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self) -> Minio:
        # Bounded retries with backoff on connection errors and 5xx; anything still failing
        # surfaces as an exception, and the hour fails instead of silently missing audio.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=10, read=120),
            retries=urllib3.Retry(
                total=3, backoff_factor=0.5, status_forcelist=[500, 502, 503, 504]
            ),
            maxsize=8,
        )
        host, secure = parse_endpoint(self.endpoint)
        return Minio(
            host,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=secure,
            region=self.region,
            http_client=http,
        )


def ensure_bucket(client: Minio, bucket: str) -> None:
    """Create `bucket` if it does not exist yet."""
    if not client.bucket_exists(bucket):
        try:
            client.make_bucket(bucket)
        except S3Error as exc:
            if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise


@dataclass(frozen=True)
class DownloadedObject:
    """What a download read: the proof of which object the archive was made from."""

    size_bytes: int
    sha256: str


def download_object(
    client: Minio, bucket: str, key: str, destination: Path, *, max_bytes: int | None = None
) -> DownloadedObject:
    """Stream `bucket/key` to `destination` in chunks, hashing it on the way; return its size
    and SHA-256 as read.

    Raises `SourceObjectMissingError` when the object does not exist and
    `SourceObjectTooLargeError` when it is bigger than `max_bytes` (checked against the
    announced length before anything is written, and again while streaming). Every other failure
    (outage, missing bucket, denied access) propagates: it is not evidence that the recording
    is gone, so the hour must fail and be retried rather than be archived without it.
    """
    try:
        response = client.get_object(bucket, key)
    except S3Error as exc:
        if exc.code in _MISSING_CODES:
            raise SourceObjectMissingError(f"s3://{bucket}/{key} does not exist") from exc
        raise
    written = 0
    digest = hashlib.sha256()
    try:
        announced = int(response.headers.get("content-length") or 0)
        if max_bytes is not None and announced > max_bytes:
            raise SourceObjectTooLargeError(
                f"s3://{bucket}/{key} is {announced} bytes, over the {max_bytes}-byte limit "
                "(RECORDINGS_MAX_SOURCE_BYTES)"
            )
        with destination.open("wb") as out:
            for chunk in response.stream(DOWNLOAD_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                if max_bytes is not None and written > max_bytes:
                    raise SourceObjectTooLargeError(
                        f"s3://{bucket}/{key} is over the {max_bytes}-byte limit "
                        "(RECORDINGS_MAX_SOURCE_BYTES)"
                    )
    finally:
        response.close()
        response.release_conn()
    return DownloadedObject(written, digest.hexdigest())


def upload_stream(
    client: Minio,
    bucket: str,
    key: str,
    stream: io.RawIOBase | BinaryIO,
    *,
    content_type: str = "application/zip",
    metadata: Mapping[str, str] | None = None,
) -> str:
    """Upload a stream of unknown length; return the ETag.

    The SDK uses a multipart upload, which S3 makes visible at `key` only when it completes,
    and aborts the upload if reading the stream raises: a failed hour never leaves a partial
    object at the archive key.
    """
    result = client.put_object(
        bucket,
        key,
        cast(BinaryIO, stream),
        length=-1,
        part_size=UPLOAD_PART_SIZE,
        num_parallel_uploads=1,
        content_type=content_type,
        metadata=dict(metadata or {}),
    )
    return result.etag or ""


def object_exists(client: Minio, bucket: str, key: str) -> bool:
    """Whether `bucket/key` exists; any failure but "no such object" propagates."""
    try:
        client.stat_object(bucket, key)
    except S3Error as exc:
        if exc.code in _MISSING_CODES:
            return False
        raise
    return True


def remove_object(client: Minio, bucket: str, key: str) -> None:
    """Delete `bucket/key` (S3 deletes are idempotent: an absent object is no error)."""
    client.remove_object(bucket, key)


def upload_file(client: Minio, bucket: str, key: str, path: Path, content_type: str) -> str:
    """Upload a local file (used by ingestion)."""
    result = client.fput_object(bucket, key, str(path), content_type=content_type)
    return result.etag or ""


@dataclass(frozen=True)
class MinioObjectStore:
    """The archive builder's view of S3: download sources, upload one archive stream."""

    client: Minio
    archive_bucket: str
    max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES

    def download(self, bucket: str, key: str, destination: Path) -> DownloadedObject:
        return download_object(
            self.client, bucket, key, destination, max_bytes=self.max_source_bytes
        )

    def upload_archive(self, key: str, stream: io.RawIOBase) -> str:
        return upload_stream(self.client, self.archive_bucket, key, stream)


@dataclass(frozen=True)
class AbortedUpload:
    key: str
    upload_id: str
    initiated: datetime | None


def abort_stale_uploads(
    client: Minio, bucket: str, prefix: str, *, older_than: timedelta, now: datetime
) -> list[AbortedUpload]:
    """Abort the incomplete multipart uploads under `prefix` started before `now - older_than`.

    A worker killed in the middle of an archive upload (SIGKILL, a lost pod) cannot abort its
    multipart upload: the parts stay in the bucket, invisible at the key but stored (and paid
    for) until someone aborts them. Nothing is ever visible at the key, so this is housekeeping,
    not repair; `older_than` must exceed the longest possible hour build so that no upload in
    progress is aborted. minio-py has no public call for listing incomplete uploads, hence its
    `_list_multipart_uploads` / `_abort_multipart_upload` (the version is pinned).
    """
    cutoff = now - older_than
    aborted: list[AbortedUpload] = []
    key_marker: str | None = None
    upload_marker: str | None = None
    while True:
        page = client._list_multipart_uploads(
            bucket, prefix=prefix, key_marker=key_marker, upload_id_marker=upload_marker
        )
        for upload in page.uploads:
            initiated = upload.initiated_time
            if upload.object_name and upload.upload_id and initiated and initiated < cutoff:
                client._abort_multipart_upload(bucket, upload.object_name, upload.upload_id)
                aborted.append(AbortedUpload(upload.object_name, upload.upload_id, initiated))
        if not page.is_truncated:
            return aborted
        key_marker, upload_marker = page.next_key_marker, page.next_upload_id_marker
