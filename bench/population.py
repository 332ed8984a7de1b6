"""A tenant population shaped like a conversation platform's, for the night's scale benchmarks.

Most tenants are small (a handful of recordings a day, and on a given day a fifth of all tenants
record nothing), some are medium (a small contact centre), a few are heavy (a large one). The
tiers below set the share of tenants and, per tenant-day, how many recordings and how long each
is; the draws are seeded, so a size always gets the same population.

Only the database rows are written (conversations, sessions, audio file references, in bulk):
what the schedule packs by, and what the tick, the sensors and the API read. No audio object is
uploaded: at 10,000 tenants the day holds tens of thousands of hours of audio, which no benchmark
on 2 cores encodes; the audio's cost is measured on a sample (bench/tenant_day_overhead.py,
bench/encoder.py) and projected.
"""

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa

from recordings.db.engine import create_db_engine, session_scope
from recordings.db.models import AudioFile, Conversation, ConversationSession


@dataclass(frozen=True)
class Tier:
    name: str
    share: float  # of all tenants
    recordings: tuple[int, int]  # per tenant-day, inclusive
    minutes: tuple[float, float]  # per recording


TIERS = (
    Tier("quiet", 0.20, (0, 0), (0.0, 0.0)),
    Tier("small", 0.60, (1, 8), (1.0, 6.0)),
    Tier("medium", 0.17, (20, 120), (2.0, 8.0)),
    Tier("heavy", 0.03, (400, 1500), (3.0, 10.0)),
)

INSERT_BATCH = 5_000


@dataclass(frozen=True)
class Population:
    tenants_by_tier: dict[str, int]
    recordings_by_tier: dict[str, int]
    audio_hours_by_tier: dict[str, float]

    @property
    def recordings(self) -> int:
        return sum(self.recordings_by_tier.values())

    @property
    def audio_hours(self) -> float:
        return sum(self.audio_hours_by_tier.values())

    def describe(self) -> str:
        parts = [
            f"{tier.name} {self.tenants_by_tier.get(tier.name, 0):,} "
            f"({self.recordings_by_tier.get(tier.name, 0):,} recordings, "
            f"{self.audio_hours_by_tier.get(tier.name, 0.0):,.0f} h)"
            for tier in TIERS
        ]
        return (
            f"{sum(self.tenants_by_tier.values()):,} tenants: " + "; ".join(parts) + f". In all "
            f"{self.recordings:,} recordings, {self.audio_hours:,.0f} hours of audio."
        )


def tier_of_each(names: Sequence[str], rng: random.Random) -> dict[str, Tier]:
    """Each tenant's tier, drawn by the tiers' shares."""
    weights = [tier.share for tier in TIERS]
    return {name: rng.choices(TIERS, weights)[0] for name in names}


@dataclass(frozen=True)
class TenantDay:
    """One tenant's drawn day: its tier and its recordings (start, seconds)."""

    tier: Tier
    recordings: tuple[tuple[datetime, float], ...]

    @property
    def audio_seconds(self) -> float:
        return sum(seconds for _, seconds in self.recordings)


def draw_day(names: Sequence[str], day: date, seed: str = "population") -> dict[str, TenantDay]:
    """Each tenant's tier and recordings of `day`, drawn (seeded: a size always gets the same
    population); nothing is written."""
    rng = random.Random(f"{seed}:{len(names)}:{day.isoformat()}")  # noqa: S311 - bench data
    tiers = tier_of_each(names, rng)
    midnight = datetime.combine(day, time(), UTC)
    days: dict[str, TenantDay] = {}
    for name in names:
        tier = tiers[name]
        recordings = []
        for _ in range(rng.randint(*tier.recordings)):
            seconds = rng.uniform(*tier.minutes) * 60
            started = midnight + timedelta(seconds=rng.uniform(0, 86_400 - seconds))
            recordings.append((started, seconds))
        days[name] = TenantDay(tier, tuple(recordings))
    return days


def summarize(days: dict[str, TenantDay]) -> Population:
    """How many tenants, recordings and hours of audio each tier has in `days`."""
    tenants: Counter[str] = Counter()
    recordings: Counter[str] = Counter()
    hours: dict[str, float] = {}
    for tenant_day in days.values():
        name = tenant_day.tier.name
        tenants[name] += 1
        recordings[name] += len(tenant_day.recordings)
        hours[name] = hours.get(name, 0.0) + tenant_day.audio_seconds / 3600
    return Population(dict(tenants), dict(recordings), hours)


def register_population(
    database_url: str, names: Sequence[str], day: date, bucket: str, seed: str = "population"
) -> Population:
    """Register every tenant's recordings of `day` (the tenants exist already), in bulk."""
    days = draw_day(names, day, seed)
    conversations: list[dict[str, object]] = []
    sessions: list[dict[str, object]] = []
    files: list[dict[str, object]] = []
    engine = create_db_engine(database_url)

    def flush() -> None:
        with session_scope(engine) as session:
            for table, rows in (
                (Conversation, conversations),
                (ConversationSession, sessions),
                (AudioFile, files),
            ):
                if rows:
                    session.execute(sa.insert(table), rows)
        for rows in (conversations, sessions, files):
            rows.clear()

    for name, tenant_day in days.items():
        for number, (started, seconds) in enumerate(tenant_day.recordings):
            ident = f"{name}-{number:05d}"
            conversations.append(
                {"id": f"c-{ident}", "tenant_id": name, "started_at": started, "channel": "voice"}
            )
            sessions.append(
                {
                    "id": f"s-{ident}",
                    "conversation_id": f"c-{ident}",
                    "tenant_id": name,
                    "started_at": started,
                }
            )
            files.append(
                {
                    "id": f"r-{ident}",
                    "tenant_id": name,
                    "conversation_id": f"c-{ident}",
                    "session_id": f"s-{ident}",
                    "bucket": bucket,
                    "object_key": f"tenants/{name}/{day.isoformat()}/{ident}.wav",
                    "started_at": started,
                    "duration_seconds": seconds,
                    "format": "WAV",
                    "sample_rate": 8000,
                    "channels": 1,
                    "size_bytes": int(seconds * 16_000),
                    "registered_at": started + timedelta(seconds=seconds),
                }
            )
        if len(files) >= INSERT_BATCH:
            flush()
    flush()
    engine.dispose()
    return summarize(days)
