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
    from recordings.audio.convert import SourceAudioError, probe_source
    from recordings.catalog import CatalogError, register_recording
    from recordings.keys import InvalidIdentifierError, source_key
    from recordings.storage import ensure_bucket, upload_file

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
    try:
        key = source_key(
            tenant_id, conversation_id, session_id, recording_id, audio_file.suffix or ".bin"
        )
        with db_session() as session:
            client = minio_client()
            ensure_bucket(client, settings.source_bucket)
            upload_file(client, settings.source_bucket, key, audio_file, "application/octet-stream")
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
                size_bytes=audio_file.stat().st_size,
            )
    except (CatalogError, InvalidIdentifierError) as exc:
        raise fail(str(exc)) from None
    click.echo(
        f"ingested {audio_file.name} as {tenant_id}/{conversation_id}/{session_id}/{recording_id} "
        f"({audio_format}, {channels} ch, {seconds:.1f} s) at s3://{settings.source_bucket}/{key}"
    )
