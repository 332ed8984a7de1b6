"""Build one tenant's hourly archive: fetch, convert to Opus in parallel, stream a ZIP to S3.

The flow is a pipeline with bounded state at every stage:

    source objects --(threads: download to a temp file, decode in blocks, encode Opus)-->
    temp .opus files --(in order, one at a time)--> stored ZIP entries --> multipart upload

At most `workers * 2` recordings are in flight, each as files on local disk (never whole in
memory), and the upload buffers one 16 MiB part at a time. A recording that cannot be archived
(missing, too large, empty, corrupt, unsupported) is listed in `metadata.json` with the reason,
and so is one the builder refuses to touch: ids that are unsafe as ZIP entry names
(`invalid_id`) or a source object outside the tenant's own prefix (`foreign_source`): recording
rows come from another system's database, and one bad row must neither leak another tenant's
audio into this archive, nor write outside the work folder, nor fail the whole hour again at
every retry. Any other failure (object store or database outage) fails the hour: an archive
silently missing audio because of a transient error would be worse than no archive, and the hour
is retried.
"""

import hashlib
import io
import json
import logging
import shutil
import tempfile
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from recordings import __version__
from recordings.archive.window import run_in_window
from recordings.archive.zipstream import IteratorReader, ZipMember, stream_zip
from recordings.audio.convert import ConversionResult, SourceAudioError, convert_to_opus
from recordings.catalog import SourceRecording
from recordings.keys import (
    InvalidIdentifierError,
    archive_key,
    hour_start,
    is_tenant_source_key,
    tenant_source_prefix,
    zip_entry_name,
)
from recordings.storage import (
    DownloadedObject,
    SourceObjectMissingError,
    SourceObjectTooLargeError,
)

log = logging.getLogger(__name__)

OPUS_BITRATE = 24_000
METADATA_NAME = "metadata.json"
METADATA_SCHEMA_VERSION = 1
GENERATOR_NAME = "daily-conversation-audio-recordings"


class ObjectStore(Protocol):
    """What the builder needs from S3 (a real client in production and tests)."""

    def download(self, bucket: str, key: str, destination: Path) -> DownloadedObject:
        """Copy an object to a local file, returning its size and SHA-256 as read; raise
        SourceObjectMissingError if it is absent and SourceObjectTooLargeError if it is over
        the size limit."""
        ...

    def upload_archive(self, key: str, stream: io.RawIOBase) -> str:
        """Upload the archive stream to `key` atomically; return the ETag."""
        ...


@dataclass(frozen=True)
class SourceChange:
    """A source whose object is not the one registered: its size (or the SHA-256 the platform
    registered) differs from what the archive read. The recording is archived as read, and
    flagged, so a replaced or truncated recording never passes unnoticed."""

    registered_size_bytes: int | None
    read_size_bytes: int
    registered_sha256: str | None
    read_sha256: str

    def as_json(self) -> dict[str, Any]:
        return {
            "registeredSizeBytes": self.registered_size_bytes,
            "readSizeBytes": self.read_size_bytes,
            "registeredSha256": self.registered_sha256,
            "readSha256": self.read_sha256,
        }


def source_change(recording: SourceRecording, read: DownloadedObject) -> SourceChange | None:
    """How the object read differs from the registration, or None when nothing registered
    disagrees (a registration without a size or checksum cannot disagree on it)."""
    size_differs = recording.size_bytes is not None and recording.size_bytes != read.size_bytes
    sha_differs = recording.sha256 is not None and recording.sha256.lower() != read.sha256
    if not (size_differs or sha_differs):
        return None
    return SourceChange(recording.size_bytes, read.size_bytes, recording.sha256, read.sha256)


@dataclass(frozen=True)
class ArchivedRecording:
    recording: SourceRecording
    entry_name: str
    conversion: ConversionResult
    source_read: DownloadedObject | None = None
    """The source object's size and SHA-256 as the builder read it."""

    @property
    def source_changed(self) -> SourceChange | None:
        return None if self.source_read is None else source_change(self.recording, self.source_read)


@dataclass(frozen=True)
class FailedRecording:
    recording: SourceRecording
    reason: str  # missing | too_large | empty | corrupt | unsupported | invalid_id | foreign_source
    detail: str
    source_read: DownloadedObject | None = None
    """Set when the source was read but could not be archived (empty, corrupt, unsupported)."""


@dataclass(frozen=True)
class HourArchive:
    """What was written for one tenant-hour: the evidence Dagster records and the API serves."""

    tenant_id: str
    hour: datetime
    object_key: str
    size_bytes: int
    sha256: str
    etag: str
    generated_at: datetime
    archived: tuple[ArchivedRecording, ...]
    failed: tuple[FailedRecording, ...]

    @property
    def recording_count(self) -> int:
        return len(self.archived)

    @property
    def failed_recording_count(self) -> int:
        return len(self.failed)

    @property
    def conversation_count(self) -> int:
        return len({a.recording.conversation_id for a in self.archived})

    @property
    def audio_seconds(self) -> float:
        return round(float(sum(a.conversion.encoded_seconds for a in self.archived)), 3)

    @property
    def truncated(self) -> tuple[ArchivedRecording, ...]:
        """Recordings archived with less audio than their header declared (cut off in
        transfer): what was there is in the ZIP, flagged `truncated` in metadata.json."""
        return tuple(a for a in self.archived if a.conversion.truncated)

    @property
    def source_changed(self) -> tuple[ArchivedRecording, ...]:
        """Recordings whose object differs from its registration (size or SHA-256): archived
        as read, flagged `sourceChanged` in metadata.json."""
        return tuple(a for a in self.archived if a.source_changed is not None)

    def failure_reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for failure in self.failed:
            counts[failure.reason] = counts.get(failure.reason, 0) + 1
        return counts


@dataclass
class _Prepared:
    outcome: ArchivedRecording | FailedRecording
    opus_path: Path | None = None
    cleanup: list[Path] = field(default_factory=list)


def _isoformat(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ogg_serial(recording_id: str) -> int:
    """A stable Ogg stream serial number for a recording, so re-runs give identical bytes."""
    return int.from_bytes(hashlib.sha256(recording_id.encode()).digest()[:4], "big", signed=True)


def _refusal(tenant_id: str, recording: SourceRecording) -> FailedRecording | None:
    """Why the builder must not touch `recording` at all, if it must not."""
    try:
        zip_entry_name(recording.conversation_id, recording.session_id, recording.recording_id)
    except InvalidIdentifierError as exc:
        return FailedRecording(recording, "invalid_id", f"not archived: {exc}")
    if not is_tenant_source_key(tenant_id, recording.object_key):
        return FailedRecording(
            recording,
            "foreign_source",
            f"not read: source object {recording.object_key!r} is not inside the tenant's own "
            f"prefix {tenant_source_prefix(tenant_id)!r} (or has an empty, '.' or '..' segment, "
            "a backslash or a control character)",
        )
    return None


def _prepare(
    tenant_id: str, sequence: int, recording: SourceRecording, store: ObjectStore, workdir: Path
) -> _Prepared:
    """Download and convert one recording; expected source problems become a FailedRecording.

    Work files are named by the recording's place in the hour, never by its id."""
    refused = _refusal(tenant_id, recording)
    if refused is not None:
        return _Prepared(refused)
    source_path = workdir / f"{sequence}.src"
    opus_path = workdir / f"{sequence}.opus"
    try:
        try:
            read = store.download(recording.bucket, recording.object_key, source_path)
        except SourceObjectMissingError as exc:
            return _Prepared(FailedRecording(recording, "missing", str(exc)))
        except SourceObjectTooLargeError as exc:
            return _Prepared(FailedRecording(recording, "too_large", str(exc)))
        try:
            conversion = convert_to_opus(
                source_path,
                opus_path,
                bitrate=OPUS_BITRATE,
                serial=ogg_serial(recording.recording_id),
            )
        except SourceAudioError as exc:
            opus_path.unlink(missing_ok=True)
            return _Prepared(FailedRecording(recording, exc.reason, exc.detail, read))
    finally:
        source_path.unlink(missing_ok=True)
    entry = zip_entry_name(recording.conversation_id, recording.session_id, recording.recording_id)
    archived = ArchivedRecording(recording, entry, conversion, read)
    return _Prepared(archived, opus_path=opus_path)


def _recording_json(recording: SourceRecording) -> dict[str, Any]:
    return {
        "recordingId": recording.recording_id,
        "conversationId": recording.conversation_id,
        "sessionId": recording.session_id,
        "startedAt": _isoformat(recording.started_at),
        "endedAt": _isoformat(recording.started_at + timedelta(seconds=recording.duration_seconds)),
        "durationSeconds": round(recording.duration_seconds, 3),
        "source": {
            "bucket": recording.bucket,
            "objectKey": recording.object_key,
            "format": recording.format,
            "channels": recording.channels,
            "sampleRate": recording.sample_rate,
            "sizeBytes": recording.size_bytes,
            "sha256": recording.sha256,
        },
    }


def _read_json(read: DownloadedObject | None) -> dict[str, Any] | None:
    return None if read is None else {"sizeBytes": read.size_bytes, "sha256": read.sha256}


def build_metadata(
    *,
    tenant_id: str,
    hour: datetime,
    generated_at: datetime,
    archived: Sequence[ArchivedRecording],
    failed: Sequence[FailedRecording],
    run_id: str | None,
) -> dict[str, Any]:
    """The `metadata.json` document: what the hour contains and what could not be archived."""
    conversations: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for item in archived:
        rec = item.recording
        conv = item.conversion
        entry = _recording_json(rec)
        entry["path"] = item.entry_name
        entry["source"].update(
            {
                "decoder": conv.source.decoder,
                "detectedFormat": conv.source.format,
                "detectedSubtype": conv.source.subtype,
                "sampleRate": conv.source.sample_rate,
                "channels": conv.source.channels,
                "decodedSeconds": round(conv.encoded_seconds, 3),
                "truncated": conv.truncated,
                "read": _read_json(item.source_read),
            }
        )
        change = item.source_changed
        entry["sourceChanged"] = None if change is None else change.as_json()
        entry["opus"] = {
            "sizeBytes": conv.output_bytes,
            "sha256": conv.output_sha256,
            "channels": conv.output_channels,
            "durationSeconds": round(conv.encoded_seconds, 3),
            "layout": conv.opus_layout,
            "bandwidth": conv.opus_bandwidth,
            "codedSampleRate": conv.coded_sample_rate,
        }
        sessions = conversations.setdefault(rec.conversation_id, {})
        sessions.setdefault(rec.session_id, []).append(entry)
    failures = []
    for failure in failed:
        entry = _recording_json(failure.recording)
        entry["source"]["read"] = _read_json(failure.source_read)
        entry["reason"] = failure.reason
        entry["detail"] = failure.detail
        failures.append(entry)
    start = hour_start(hour)
    return {
        "schemaVersion": METADATA_SCHEMA_VERSION,
        "tenantId": tenant_id,
        "utcDay": start.date().isoformat(),
        "hour": start.hour,
        "hourStart": _isoformat(start),
        "hourEnd": _isoformat(start + timedelta(hours=1)),
        "generatedAt": _isoformat(generated_at),
        "generator": {"name": GENERATOR_NAME, "version": __version__, "runId": run_id},
        "codec": {
            "name": "opus",
            "container": "ogg",
            "bitrateBps": OPUS_BITRATE,
            "application": "voip",
        },
        "counts": {
            "conversations": len(conversations),
            "sessions": sum(len(s) for s in conversations.values()),
            "recordings": len(archived),
            "failedRecordings": len(failed),
            "sourceChanged": sum(1 for a in archived if a.source_changed is not None),
            "audioSeconds": round(sum(a.conversion.encoded_seconds for a in archived), 3),
        },
        "empty": not archived and not failed,
        "conversations": [
            {
                "conversationId": conversation_id,
                "sessions": [
                    {"sessionId": session_id, "recordings": recordings}
                    for session_id, recordings in sessions.items()
                ],
            }
            for conversation_id, sessions in conversations.items()
        ],
        "failedRecordings": failures,
    }


def _archive_order(recordings: Sequence[SourceRecording]) -> list[SourceRecording]:
    # Grouping by conversation and session makes the ZIP browse like the metadata reads.
    return sorted(
        recordings,
        key=lambda r: (r.conversation_id, r.session_id, r.started_at, r.recording_id),
    )


@contextmanager
def _own_pool_unless(shared: Executor | None, workers: int) -> Iterator[Executor]:
    if shared is not None:
        yield shared
        return
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="opus") as pool:
        yield pool


def _recording_members(
    prepared_in_order: Iterable[_Prepared],
    archived: list[ArchivedRecording],
    failed: list[FailedRecording],
) -> Iterator[ZipMember]:
    """The ZIP entries of the prepared recordings, in order; each outcome goes into `archived`
    or `failed` as it streams, so both are complete once the last entry is written."""
    for prepared in prepared_in_order:
        outcome = prepared.outcome
        if isinstance(outcome, FailedRecording):
            log.warning(
                "recording %s not archived (%s): %s",
                outcome.recording.recording_id,
                outcome.reason,
                outcome.detail,
            )
            failed.append(outcome)
            continue
        if prepared.opus_path is None:
            raise RuntimeError(f"no Opus file for {outcome.entry_name}")
        archived.append(outcome)
        yield ZipMember(
            name=outcome.entry_name,
            modified=outcome.recording.started_at,
            path=prepared.opus_path,
            crc32=outcome.conversion.output_crc32,
            size=outcome.conversion.output_bytes,
        )
        # stream_zip asks for the next member only after writing this one.
        prepared.opus_path.unlink(missing_ok=True)


def _metadata_member(metadata: dict[str, Any], generated_at: datetime) -> ZipMember:
    """The `metadata.json` entry: written last, once every recording's outcome is known."""
    payload = json.dumps(metadata, indent=2, ensure_ascii=False).encode("utf-8")
    return ZipMember(
        name=METADATA_NAME,
        modified=generated_at,
        data=payload,
        crc32=zlib.crc32(payload),
        size=len(payload),
    )


def build_hour_archive(
    *,
    tenant_id: str,
    hour: datetime,
    recordings: Sequence[SourceRecording],
    store: ObjectStore,
    workers: int = 2,
    temp_dir: Path | None = None,
    run_id: str | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    conversions: Executor | None = None,
) -> HourArchive:
    """Convert the hour's recordings and upload `tenants/{t}/.../{HH}.zip`; return the evidence.

    Raises on failures that are not about a single bad recording (storage outage and the like);
    in that case nothing is visible at the archive key (the multipart upload is aborted).
    `conversions` is a thread pool shared with other hours (see `build_hour_archives`); without
    one the hour uses its own pool of `workers` threads.
    """
    start = hour_start(hour)
    key = archive_key(tenant_id, start)
    ordered = _archive_order(recordings)
    archived: list[ArchivedRecording] = []
    failed: list[FailedRecording] = []
    workdir = Path(tempfile.mkdtemp(prefix=f"hour-{tenant_id}-{start:%Y%m%d%H}-", dir=temp_dir))
    generated_at = now()
    window = max(1, workers) * 2

    def prepare(job: tuple[int, SourceRecording]) -> _Prepared:
        sequence, recording = job
        return _prepare(tenant_id, sequence, recording, store, workdir)

    def members() -> Iterator[ZipMember]:
        # The recordings as they are converted, in archive order; then what each one became.
        with (
            _own_pool_unless(conversions, workers) as pool,
            closing(run_in_window(pool, prepare, enumerate(ordered), window)) as prepared_in_order,
        ):
            yield from _recording_members(
                (prepared for _, prepared in prepared_in_order), archived, failed
            )
        metadata = build_metadata(
            tenant_id=tenant_id,
            hour=start,
            generated_at=generated_at,
            archived=archived,
            failed=failed,
            run_id=run_id,
        )
        yield _metadata_member(metadata, generated_at)

    try:
        reader = IteratorReader(stream_zip(members()))
        etag = store.upload_archive(key, reader)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return HourArchive(
        tenant_id=tenant_id,
        hour=start,
        object_key=key,
        size_bytes=reader.bytes_read,
        sha256=reader.sha256_hexdigest,
        etag=etag,
        generated_at=generated_at,
        archived=tuple(archived),
        failed=tuple(failed),
    )


@dataclass(frozen=True)
class HourJob:
    """One tenant-hour to build; `load` reads its recordings (in the builder's thread), after
    `claim` (if any) returns: the caller's chance to wait for another run of the same hour."""

    tenant_id: str
    hour: datetime
    load: Callable[[], Sequence[SourceRecording]]
    claim: Callable[[], None] | None = None
    selected_at: datetime | None = None
    """When `load`'s recordings were selected, if before the build (a bulk read); None: now."""


HOURS_IN_FLIGHT = 2


def build_hour_archives(
    jobs: Iterable[HourJob],
    *,
    store: ObjectStore,
    workers: int = 2,
    temp_dir: Path | None = None,
    run_id: str | None = None,
    hours_in_flight: int = HOURS_IN_FLIGHT,
) -> Generator[tuple[HourJob, HourArchive | Exception]]:
    """Build many hours, yielding `(job, archive or the exception that failed it)` in job order.

    Two hours are in flight at once over one shared pool of conversion threads: while an hour
    finishes its last (longest) file and its upload, the next hour's files already keep the
    other core busy. Built one after another, the tail of every hour leaves a core idle (the
    tenant-day benchmark measured 0.60 of the serial encode time that way, 0.58 at best).
    A failed hour does not stop the others; memory stays bounded per hour in flight.
    """
    with (
        ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="opus") as conversions,
        ThreadPoolExecutor(max_workers=max(1, hours_in_flight), thread_name_prefix="hour") as hours,
    ):

        def build(job: HourJob) -> HourArchive | Exception:
            # A failed hour is an outcome to hand back in order, not a reason to stop the others.
            try:
                if job.claim is not None:
                    job.claim()
                # `generated_at` is when the hour's recordings were selected: a recording
                # registered later is not in this archive (the late-recordings sensor's test).
                selected_at = job.selected_at or datetime.now(UTC)
                return build_hour_archive(
                    tenant_id=job.tenant_id,
                    hour=job.hour,
                    recordings=job.load(),
                    now=lambda: selected_at,
                    store=store,
                    workers=workers,
                    temp_dir=temp_dir,
                    run_id=run_id,
                    conversions=conversions,
                )
            except Exception as exc:
                return exc

        with closing(run_in_window(hours, build, jobs, hours_in_flight)) as outcomes:
            yield from outcomes
