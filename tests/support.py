"""Values and helpers several test modules share that are not fixtures."""

import itertools
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from recordings.catalog import register_recording
from recordings.db.engine import session_scope
from recordings.keys import tenant_shard

# Yesterday in UTC when the run started: a whole day in the past, which the pipeline archives and
# the API serves, and inside every retention window the tests set.
DAY = (datetime.now(UTC) - timedelta(days=1)).date()


def register_unreadable_source(
    engine: sa.Engine, tenant: str, hour: datetime, source_bucket: str
) -> None:
    """A recording of `tenant` in `hour` whose bucket does not exist: the hour's build fails
    (the S3 error is not a per-recording problem), so the run fails naming that hour."""
    with session_scope(engine) as session:
        register_recording(
            session,
            tenant_id=tenant,
            conversation_id=f"{tenant}-c{hour:%H}",
            session_id=f"{tenant}-c{hour:%H}-s1",
            recording_id=f"{tenant}-c{hour:%H}-r1",
            bucket=source_bucket + "-missing",
            object_key=f"tenants/{tenant}/c{hour:%H}.wav",
            started_at=hour + timedelta(minutes=1),
            duration_seconds=2.0,
            audio_format="WAV",
            channels=1,
        )


def tenants_of_shard(shard: int, count: int, prefix: str = "tenant") -> list[str]:
    """The first `count` ids `{prefix}-0000`, `{prefix}-0001`, ... that `tenant_shard` puts in
    `shard`: tenants a test needs in one shard (a run never spans shards)."""
    ids = (f"{prefix}-{index:04d}" for index in itertools.count())
    return list(itertools.islice((t for t in ids if tenant_shard(t) == shard), count))
