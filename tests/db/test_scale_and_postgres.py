"""The schema on PostgreSQL (production) and the hour query at millions of rows.

The nightly job runs one query per tenant-hour; at millions of recordings it must stay an index
range scan on both databases. Plans are asserted, not timings: the machines are shared.
"""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from recordings.catalog import (
    ensure_tenant,
    recordings_in_hour,
    register_recording,
    set_recording_settings,
)
from recordings.db.engine import create_db_engine, session_scope

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOUR = datetime(2025, 12, 12, 13, tzinfo=UTC)
ROWS = 1_000_000
# Rows are spread over 100 tenants and 10,000 minutes (about a week): ~1,000 per tenant-day.
BULK_INSERT = {
    "sqlite": """
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :rows - 1)
        INSERT INTO audio_files (id, tenant_id, conversation_id, session_id, bucket, object_key,
            started_at, duration_seconds, format, channels, registered_at)
        SELECT 'bulk-' || i, 'tenant-' || (i % 100), 'bulk-conv', 'bulk-sess', 'src',
            'k/' || i, datetime('2025-12-08 00:00:00', '+' || (i % 10000) || ' minutes'),
            30.0, 'WAV', 1, datetime('now')
        FROM n
    """,
    "postgresql": """
        INSERT INTO audio_files (id, tenant_id, conversation_id, session_id, bucket, object_key,
            started_at, duration_seconds, format, channels, registered_at)
        SELECT 'bulk-' || i, 'tenant-' || (i % 100), 'bulk-conv', 'bulk-sess', 'src',
            'k/' || i, timestamptz '2025-12-08 00:00:00+00' + (i % 10000) * interval '1 minute',
            30.0, 'WAV', 1, now()
        FROM generate_series(0, :rows - 1) AS i
    """,
}


def _fill(url: str) -> sa.Engine:
    engine = create_db_engine(url)
    with session_scope(engine) as session:
        for index in range(100):
            ensure_tenant(session, f"tenant-{index}")
        register_recording(
            session,
            tenant_id="tenant-7",
            conversation_id="bulk-conv",
            session_id="bulk-sess",
            recording_id="seed",
            bucket="src",
            object_key="seed.wav",
            started_at=HOUR,
            duration_seconds=1.0,
            audio_format="WAV",
            channels=1,
        )
    with engine.begin() as conn:
        conn.execute(sa.text(BULK_INSERT[engine.dialect.name]), {"rows": ROWS})
        conn.execute(sa.text("ANALYZE"))
    return engine


def _plan(engine: sa.Engine) -> str:
    query = (
        "SELECT * FROM audio_files WHERE tenant_id = 'tenant-7' AND started_at >= :start "
        "AND started_at < :end ORDER BY started_at, id"
    )
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    start = HOUR.replace(tzinfo=None) if engine.dialect.name == "sqlite" else HOUR
    end = start.replace(hour=14)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(explain + query), {"start": start, "end": end})
        return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.sqlite_run_only
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_one_tenant_hour_among_a_million_rows_is_an_index_range_scan(
    dialect: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if dialect == "sqlite" else "postgres_url")
    engine = _fill(url)
    try:
        plan = _plan(engine)
        assert "ix_audio_files_tenant_started" in plan, plan
        assert "SCAN audio_files" not in plan and "Seq Scan" not in plan, plan
        with session_scope(engine) as session:
            found = recordings_in_hour(session, "tenant-7", HOUR)
        # tenant-7 owns every 100th minute; 13:00-13:59 of Dec 12 holds some, plus the seed.
        assert found[0].recording_id == "seed"
        assert all(r.started_at.hour == 13 and r.started_at.day == 12 for r in found)
        assert 1 <= len(found) <= 2
    finally:
        engine.dispose()


@pytest.mark.sqlite_run_only
def test_postgres_enforces_retention_range_and_keeps_utc(postgres_url: str) -> None:
    engine = create_db_engine(postgres_url)
    try:
        with session_scope(engine) as session:
            ensure_tenant(session, "acme")
            set_recording_settings(session, "acme", changed_by="ops", enabled=True)
            register_recording(
                session,
                tenant_id="acme",
                conversation_id="c1",
                session_id="s1",
                recording_id="r1",
                bucket="src",
                object_key="r1.wav",
                started_at=HOUR,
                duration_seconds=3.0,
                audio_format="WAV",
                channels=2,
            )
        with pytest.raises(IntegrityError, match="retention_days"), engine.begin() as conn:
            conn.execute(sa.text("UPDATE tenant_recording_settings SET retention_days = 0"))
        with session_scope(engine) as session:
            (found,) = recordings_in_hour(session, "acme", HOUR)
            assert found.started_at == HOUR
            assert found.started_at.tzinfo is not None
    finally:
        engine.dispose()
