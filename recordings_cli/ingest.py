"""`recordings ingest`: upload a file and register it as a recording, as the platform does."""

from pathlib import Path

import click

from recordings_cli.common import db_session, fail, minio_client, parse_start, s3_settings


@click.command()
@click.argument("audio_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", "tenant_id", required=True, help="Tenant id.")
@click.option("--conversation", "conversation_id", required=True, help="Conversation id.")
@click.option("--session", "session_id", required=True, help="Session id within it.")
@click.option("--recording", "recording_id", help="Recording id [default: derived from session].")
@click.option("--start", "start", required=True, help="UTC start time, e.g. 2025-12-12T13:05Z.")
@click.option(
    "--allow-unreadable",
    is_flag=True,
    help="Register a file the archive will not be able to decode (to exercise failures).",
)
def ingest(
    audio_file: Path,
    tenant_id: str,
    conversation_id: str,
    session_id: str,
    recording_id: str | None,
    start: str,
    allow_unreadable: bool,
) -> None:
    """Upload AUDIO_FILE and register it as a recording, as the conversation platform does."""
    from sqlalchemy.exc import IntegrityError

    from recordings.archive.verify import file_sha256
    from recordings.audio.convert import SourceAudioError, probe_source
    from recordings.catalog import CatalogError, register_recording
    from recordings.keys import InvalidIdentifierError, source_key
    from recordings.storage import ensure_bucket, object_exists, remove_object, upload_file

    started_at = parse_start(start)
    recording_id = recording_id or f"{session_id}-r1"
    try:
        info = probe_source(audio_file)
        audio_format, channels, rate, seconds = (
            info.format,
            info.channels,
            info.sample_rate,
            info.duration_seconds,
        )
    except SourceAudioError as exc:
        if not allow_unreadable:
            raise fail(
                f"{audio_file} cannot be archived ({exc.reason}: {exc.detail}); "
                "pass --allow-unreadable to register it anyway"
            ) from None
        audio_format = audio_file.suffix.lstrip(".").upper() or "UNKNOWN"
        channels, rate, seconds = 1, None, 0.0
    settings = s3_settings()
    # Registered with the file, so the archive can prove it read the same object.
    size, sha256 = audio_file.stat().st_size, file_sha256(audio_file)
    client = minio_client()
    uploaded_key: str | None = None
    try:
        key = source_key(
            tenant_id, conversation_id, session_id, recording_id, audio_file.suffix or ".bin"
        )
        ensure_bucket(client, settings.source_bucket)
        with db_session(exclusive=True) as session:
            # The registration comes first, inside the transaction: it claims the recording id
            # (primary key) and the object key (unique), so a second ingest of the same
            # recording is refused here, before anything is uploaded; a concurrent one waits
            # for this transaction (SQLite's write lock, taken at its start; PostgreSQL's lock
            # on the new row) and is refused when this one commits.
            register_recording(
                session,
                tenant_id=tenant_id,
                conversation_id=conversation_id,
                session_id=session_id,
                recording_id=recording_id,
                bucket=settings.source_bucket,
                object_key=key,
                started_at=started_at,
                duration_seconds=seconds,
                audio_format=audio_format,
                channels=channels,
                sample_rate=rate,
                size_bytes=size,
                sha256=sha256,
            )
            # An object already at the key belongs to someone (a recording registered under
            # another id, the platform's own upload): never replace it.
            if object_exists(client, settings.source_bucket, key):
                raise CatalogError(
                    f"an object already exists at s3://{settings.source_bucket}/{key} "
                    "(use another recording id)"
                )
            upload_file(client, settings.source_bucket, key, audio_file, "application/octet-stream")
            uploaded_key = key
    except BaseException as exc:
        # Refused or failed after the upload (the commit): leave nothing behind.
        if uploaded_key is not None:
            remove_object(client, settings.source_bucket, uploaded_key)
        if isinstance(exc, CatalogError | InvalidIdentifierError):
            raise fail(f"{exc}; nothing was uploaded") from None
        if isinstance(exc, IntegrityError):
            raise fail(
                f"recording {recording_id!r} or its object was registered by another ingest "
                "meanwhile; nothing was uploaded"
            ) from None
        raise
    click.echo(
        f"ingested {audio_file.name} as {tenant_id}/{conversation_id}/{session_id}/{recording_id} "
        f"({audio_format}, {channels} ch, {seconds:.1f} s) at s3://{settings.source_bucket}/{key}"
        f" (SHA-256 {sha256})"
    )
