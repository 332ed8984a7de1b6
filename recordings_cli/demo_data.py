"""Demo data: a few tenants with a realistic day of synthetic conversations.

The mix matches what the conversation platform produces — telephony WAVs in u-law and A-law at
8 kHz, wideband FLAC, Ogg Vorbis and MP3 at CD and studio rates, mono and stereo, and what
libsndfile cannot read: a browser's WebM/Opus and a phone's M4A/AAC, and a conference bridge's
four-channel WAV — plus the
problems a real day has: a recording whose object never arrived, an empty upload, a corrupt file
and an M4A the archive cannot decode. Each must show up in the hour's `metadata.json`.
"""

import random
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import soundfile as sf
from minio import Minio
from sqlalchemy.orm import Session

from recordings.archive.verify import file_sha256
from recordings.catalog import ensure_tenant, register_recording, set_recording_settings
from recordings.db.models import AudioFile
from recordings.keys import day_hours, source_key
from recordings.storage import ensure_bucket, upload_file
from recordings_cli.synth import FORMATS, PLATFORM_FORMATS, conversation, write_conversation


@dataclass(frozen=True)
class DemoTenant:
    tenant_id: str
    name: str
    enabled: bool
    retention_days: int


DEMO_TENANTS = (
    DemoTenant("acme", "Acme Contact Center", enabled=True, retention_days=7),
    DemoTenant("globex", "Globex Support", enabled=True, retention_days=3),
    DemoTenant("initech", "Initech (feature off)", enabled=False, retention_days=7),
)

# (format key, sample rate, channels): every row is a source the archive must handle.
SOURCE_MIX = (
    ("wav-ulaw", 8000, 1),
    ("wav-alaw", 8000, 2),
    ("wav-pcm16", 8000, 1),
    ("flac", 16000, 2),
    ("wav-pcm16", 22050, 2),
    ("ogg-vorbis", 44100, 2),
    ("mp3", 48000, 1),
    ("flac", 48000, 1),
)

# Recordings libsndfile cannot read, decoded through FFmpeg: one of each per tenant-day, in the
# hour given, so the demo always shows them archived: (format key, rate, channels, hour).
PLATFORM_RECORDINGS = (
    ("webm-opus", 48000, 1, 12),  # a browser's MediaRecorder (web agent desktop, voice bot)
    ("m4a-aac", 44100, 2, 13),  # a phone app or a meeting export
    ("wav-pcm16", 16000, 4, 16),  # a conference bridge, one participant per channel
)


@dataclass(frozen=True)
class SeedSummary:
    tenants: int
    recordings: int
    broken_recordings: int
    audio_seconds: float
    skipped_tenants: tuple[str, ...]


def _uuid(rng: random.Random) -> str:
    """A deterministic UUID: the platform's ids are UUIDs, and a seeded day is reproducible."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _has_recordings_on(session: Session, tenant_id: str, day: date) -> bool:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return (
        session.query(AudioFile.id)
        .filter(
            AudioFile.tenant_id == tenant_id,
            AudioFile.started_at >= start,
            AudioFile.started_at < start + timedelta(days=1),
        )
        .first()
        is not None
    )


def seed_demo(
    session: Session,
    client: Minio,
    source_bucket: str,
    day: date,
    *,
    changed_by: str = "demo-seed",
    conversations_per_hour: tuple[int, int] = (1, 2),
    seconds_range: tuple[float, float] = (15.0, 45.0),
    tenants: tuple[DemoTenant, ...] = DEMO_TENANTS,
    on_progress: Callable[[str], None] | None = None,
) -> SeedSummary:
    """Create the demo tenants and upload and register a day of conversations for each.

    Idempotent per tenant-day: a tenant that already has recordings on `day` is left alone.
    """
    ensure_bucket(client, source_bucket)
    recordings = broken = 0
    audio_seconds = 0.0
    skipped: list[str] = []
    for tenant in tenants:
        ensure_tenant(session, tenant.tenant_id, tenant.name)
        set_recording_settings(
            session,
            tenant.tenant_id,
            changed_by=changed_by,
            enabled=tenant.enabled,
            retention_days=tenant.retention_days,
        )
        if _has_recordings_on(session, tenant.tenant_id, day):
            skipped.append(tenant.tenant_id)
            continue
        with tempfile.TemporaryDirectory(prefix="demo-seed-") as scratch:
            seeder = _TenantDaySeeder(
                session, client, source_bucket, tenant.tenant_id, day, Path(scratch), seconds_range
            )
            for hour in day_hours(day):
                for _conversation in range(seeder.rng.randint(*conversations_per_hour)):
                    seeder.conversation(hour)
                if on_progress and hour.hour % 6 == 5:
                    on_progress(f"{tenant.tenant_id}: hours up to {hour:%H}:59 seeded")
            for fmt_key, rate, channels, hour_of_day in PLATFORM_RECORDINGS:
                seeder.conversation(day_hours(day)[hour_of_day], (fmt_key, rate, channels))
            broken += _seed_broken_recordings(
                session, client, source_bucket, tenant.tenant_id, day, seeder.rng, Path(scratch)
            )
        recordings += seeder.recordings
        audio_seconds += seeder.audio_seconds
        session.flush()
    return SeedSummary(
        tenants=len(tenants),
        recordings=recordings + broken,
        broken_recordings=broken,
        audio_seconds=round(audio_seconds, 1),
        skipped_tenants=tuple(skipped),
    )


@dataclass
class _TenantDaySeeder:
    """Uploads and registers one tenant's conversations of one day, counting what it seeded.

    Its random numbers are seeded by tenant and day, so a seeded day is always the same.
    """

    session: Session
    client: Minio
    bucket: str
    tenant_id: str
    day: date
    scratch: Path
    seconds_range: tuple[float, float]
    recordings: int = 0
    audio_seconds: float = 0.0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.tenant_id}:{self.day.isoformat()}")  # noqa: S311 - demo

    def conversation(self, hour: datetime, source: tuple[str, int, int] | None = None) -> None:
        """One conversation starting in `hour`: one or two sessions, one after the other, each
        recorded in `source` (format key, rate, channels) or one drawn from the mix."""
        rng = self.rng
        conversation_id = _uuid(rng)
        start = hour + timedelta(minutes=rng.randint(0, 55), seconds=rng.randint(0, 59))
        for _session in range(rng.choice((1, 1, 2))):
            seconds = self._recording(conversation_id, start, source)
            self.recordings += 1
            self.audio_seconds += seconds
            start += timedelta(seconds=seconds + rng.randint(5, 40))

    def _recording(
        self, conversation_id: str, start: datetime, source: tuple[str, int, int] | None
    ) -> float:
        """Synthesise, upload and register one session's recording; return its length."""
        rng = self.rng
        session_id = _uuid(rng)
        fmt_key, rate, channels = source or rng.choice(SOURCE_MIX)
        fmt = FORMATS.get(fmt_key) or PLATFORM_FORMATS[fmt_key]
        seconds = round(rng.uniform(*self.seconds_range), 2)
        recording_id = _uuid(rng)
        path = self.scratch / f"{recording_id}{fmt.extension}"
        if channels > 2:
            _write_bridge(path, seconds, rate, channels, seed=rng.randrange(2**31))
        else:
            write_conversation(path, fmt, seconds, rate, channels, seed=rng.randrange(2**31))
        key = source_key(self.tenant_id, conversation_id, session_id, recording_id, fmt.extension)
        upload_file(self.client, self.bucket, key, path, "application/octet-stream")
        register_recording(
            self.session,
            tenant_id=self.tenant_id,
            conversation_id=conversation_id,
            session_id=session_id,
            recording_id=recording_id,
            bucket=self.bucket,
            object_key=key,
            started_at=start,
            duration_seconds=seconds,
            audio_format=fmt.format,
            channels=channels,
            sample_rate=rate,
            size_bytes=path.stat().st_size,
            sha256=file_sha256(path),  # as platforms with checksums do
        )
        path.unlink()
        return seconds


def _write_bridge(path: Path, seconds: float, rate: int, channels: int, *, seed: int) -> None:
    """A conference bridge's WAV, one participant per channel: two-party calls side by side."""
    pairs = [conversation(seconds, rate, 2, seed=seed + pair) for pair in range(-(-channels // 2))]
    sf.write(path, np.concatenate(pairs, axis=1)[:, :channels], rate, subtype="PCM_16")


def _seed_broken_recordings(
    session: Session,
    client: Minio,
    bucket: str,
    tenant_id: str,
    day: date,
    rng: random.Random,
    scratch: Path,
) -> int:
    """One of each kind of bad source, in hours that also hold good recordings."""
    cases = (
        ("missing", b"", 9),
        ("empty", b"", 10),
        ("corrupt", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8, 14),
        ("unsupported", b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom" + b"\0" * 512, 15),
    )
    count = 0
    for kind, payload, hour_of_day in cases:
        hour = day_hours(day)[hour_of_day]
        conversation_id, session_id = _uuid(rng), _uuid(rng)
        recording_id = f"{_uuid(rng)}-{kind}"
        extension = "m4a" if kind == "unsupported" else "wav"
        key = source_key(tenant_id, conversation_id, session_id, recording_id, extension)
        if kind != "missing":
            path = scratch / f"{recording_id}.{extension}"
            path.write_bytes(payload)
            upload_file(client, bucket, key, path, "application/octet-stream")
        register_recording(
            session,
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            session_id=session_id,
            recording_id=recording_id,
            bucket=bucket,
            object_key=key,
            started_at=hour + timedelta(minutes=47),
            duration_seconds=30.0,
            audio_format="M4A" if kind == "unsupported" else "WAV",
            channels=1,
            sample_rate=8000,
            size_bytes=len(payload),
        )
        count += 1
    return count
