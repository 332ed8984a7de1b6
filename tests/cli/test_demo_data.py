"""The demo day shows what platforms really store: a browser's WebM/Opus and a phone's M4A/AAC
recording (read by FFmpeg) and a conference bridge's four-channel WAV (mixed down) are seeded
for every tenant-day and archived. Seeded against the real S3 server and database, archived by the
archive builder itself."""

import io
import json
import zipfile
from datetime import date

import sqlalchemy as sa
from minio import Minio

from recordings.archive.hourly import build_hour_archive
from recordings.catalog import recordings_in_hour
from recordings.db.engine import session_scope
from recordings.db.models import AudioFile
from recordings.keys import day_hours
from recordings.storage import MinioObjectStore
from recordings_cli.demo_data import DEMO_TENANTS, PLATFORM_RECORDINGS, seed_demo

DAY = date(2026, 11, 30)
BROKEN_KINDS = ("missing", "empty", "corrupt", "unsupported")


def test_the_demo_day_archives_webm_m4a_and_four_channel_recordings(
    engine: sa.Engine, s3_client: Minio, buckets: tuple[str, str]
) -> None:
    source_bucket, archive_bucket = buckets
    with session_scope(engine) as session:
        summary = seed_demo(
            session,
            s3_client,
            source_bucket,
            DAY,
            conversations_per_hour=(0, 0),  # only the platform formats and the broken ones
            seconds_range=(3.0, 4.0),
            tenants=DEMO_TENANTS[:1],
        )
    assert summary.broken_recordings == 4
    for fmt_key, rate, channels, hour_of_day in PLATFORM_RECORDINGS:
        hour = day_hours(DAY)[hour_of_day]
        with session_scope(engine) as session:
            recordings = recordings_in_hour(session, "acme", hour)
            broken = [AudioFile.id.endswith(f"-{kind}") for kind in BROKEN_KINDS]
            seeded = sa.select(AudioFile).where(~sa.or_(*broken))
            assert all(row.sha256 for row in session.scalars(seeded))  # checksums registered
        assert recordings and all(r.sample_rate == rate for r in recordings), fmt_key
        result = build_hour_archive(
            tenant_id="acme",
            hour=hour,
            recordings=recordings,
            store=MinioObjectStore(s3_client, archive_bucket),
        )
        assert not result.failed and not result.source_changed, fmt_key
        assert result.recording_count == len(recordings)
        response = s3_client.get_object(archive_bucket, result.object_key)
        metadata = json.loads(zipfile.ZipFile(io.BytesIO(response.read())).read("metadata.json"))
        response.close()
        response.release_conn()
        sources = [
            r["source"]
            for c in metadata["conversations"]
            for s in c["sessions"]
            for r in s["recordings"]
        ]
        entries = [
            r for c in metadata["conversations"] for s in c["sessions"] for r in s["recordings"]
        ]
        decoder = "libsndfile" if fmt_key.startswith("wav") else "ffmpeg"
        assert {(s["decoder"], s["channels"]) for s in sources} == {(decoder, channels)}
        layouts = {(e["opus"]["channels"], e["opus"]["layout"]) for e in entries}
        assert layouts == ({(1, "downmix")} if channels > 2 else layouts - {(1, "downmix")})
        if decoder == "ffmpeg":
            assert {s["detectedSubtype"] for s in sources} == {fmt_key.split("-")[1]}
