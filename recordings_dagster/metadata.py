"""What each hour's materialization records: the archive's evidence for the API
(`recordings.archive.evidence`), and for operators the rest, with a table of the recordings
that could not be archived, were archived truncated, or whose source object differs from its
registration (`source_changed`)."""

from typing import Any

import dagster as dg

from recordings.archive.evidence import (
    AUDIO_SECONDS,
    BUCKET,
    ETAG,
    FAILED_RECORDINGS,
    FAILURE_REASONS,
    GENERATED_AT,
    HOUR_START,
    SOURCE_CHANGED_RECORDING_COUNT,
    TENANT_ID,
    TRUNCATED_RECORDING_COUNT,
    ArchiveEvidence,
)
from recordings.archive.hourly import HourArchive


def hour_metadata(archive: HourArchive, bucket: str) -> dict[str, Any]:
    """The per-hour materialization metadata; the API reads its `ArchiveEvidence`."""
    evidence = ArchiveEvidence(
        object_key=archive.object_key,
        size_bytes=archive.size_bytes,
        sha256=archive.sha256,
        recording_count=archive.recording_count,
        conversation_count=archive.conversation_count,
        failed_recording_count=archive.failed_recording_count,
    )
    metadata: dict[str, Any] = {
        **evidence.to_metadata(),
        BUCKET: bucket,
        ETAG: archive.etag,
        TRUNCATED_RECORDING_COUNT: len(archive.truncated),
        SOURCE_CHANGED_RECORDING_COUNT: len(archive.source_changed),
        AUDIO_SECONDS: dg.MetadataValue.float(archive.audio_seconds),
        TENANT_ID: archive.tenant_id,
        HOUR_START: archive.hour.isoformat(),
        GENERATED_AT: archive.generated_at.isoformat(),
        FAILURE_REASONS: dg.MetadataValue.json(archive.failure_reasons()),
    }
    if archive.failed or archive.truncated or archive.source_changed:
        metadata[FAILED_RECORDINGS] = dg.MetadataValue.md(_failed_recordings_table(archive))
    return metadata


def _failed_recordings_table(archive: HourArchive) -> str:
    """Markdown: each recording not archived, archived truncated or read from a changed source,
    with why."""
    rows = [
        (f.recording.recording_id, f.recording.conversation_id, f.reason, f.detail)
        for f in archive.failed
    ] + [
        (
            a.recording.recording_id,
            a.recording.conversation_id,
            "truncated (archived)",
            f"{a.conversion.encoded_seconds:.3f} s archived of "
            f"{a.conversion.source.duration_seconds:.3f} s; the file ends before its "
            "header says",
        )
        for a in archive.truncated
    ]
    for a in archive.source_changed:
        change = a.source_changed
        if change is None:  # the property selected only changed ones
            continue
        rows.append(
            (
                a.recording.recording_id,
                a.recording.conversation_id,
                "source_changed (archived)",
                f"registered {change.registered_size_bytes} bytes, SHA-256 "
                f"{change.registered_sha256 or 'not registered'}; read {change.read_size_bytes} "
                f"bytes, SHA-256 {change.read_sha256}",
            )
        )
    header = "| recording | conversation | reason | detail |\n| --- | --- | --- | --- |\n"
    return header + "\n".join(
        f"| {rec} | {conv} | {reason} | {detail.replace('|', '/')} |"
        for rec, conv, reason, detail in rows
    )
