"""The application database: constraints hold at the database level, queries use the index.

Retention is a compliance setting: a value outside 1..7 must be impossible even for code that
bypasses our validation, so the CHECK constraint is tested with raw SQL.
"""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from recordings.catalog import (
    CatalogError,
    UnknownTenantError,
    enabled_tenant_ids,
    ensure_tenant,
    recordings_in_hour,
    register_recording,
    retention_days_if_enabled,
    set_recording_settings,
)
from recordings.db.engine import create_db_engine, session_scope
from recordings.db.models import TenantRecordingSettingsChange

HOUR = datetime(2025, 12, 12, 13, tzinfo=UTC)


def _register(session, tenant: str, rec: str, started_at: datetime) -> None:
    register_recording(
        session,
        tenant_id=tenant,
        conversation_id=f"c-{rec}",
        session_id=f"s-{rec}",
        recording_id=rec,
        bucket="src",
        object_key=f"{tenant}/{rec}.wav",
        started_at=started_at,
        duration_seconds=12.5,
        audio_format="WAV",
        channels=2,
        sample_rate=8000,
    )


def test_retention_out_of_range_is_refused_in_code(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        ensure_tenant(session, "acme")
        for days in (0, 8, -1):
            with pytest.raises(CatalogError, match="choose 1 to 7 days"):
                set_recording_settings(session, "acme", changed_by="ops", retention_days=days)


def test_retention_out_of_range_is_refused_by_the_database(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        ensure_tenant(session, "acme")
        set_recording_settings(session, "acme", changed_by="ops", enabled=True, retention_days=3)
    with pytest.raises(IntegrityError, match="retention_days"), engine.begin() as conn:
        conn.execute(sa.text("UPDATE tenant_recording_settings SET retention_days = 30"))
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT retention_days FROM tenant_recording_settings")) == 3


def test_settings_changes_record_who_and_when(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        ensure_tenant(session, "acme", "Acme")
        set_recording_settings(session, "acme", changed_by="alice", enabled=True)
        set_recording_settings(session, "acme", changed_by="bob", retention_days=2)
    with session_scope(engine) as session:
        changes = session.scalars(
            sa.select(TenantRecordingSettingsChange).order_by(TenantRecordingSettingsChange.id)
        ).all()
        assert [(c.changed_by, c.enabled_after, c.retention_days_after) for c in changes] == [
            ("alice", True, 7),
            ("bob", True, 2),
        ]
        assert changes[1].retention_days_before == 7
        assert changes[1].changed_at.tzinfo is not None
        assert enabled_tenant_ids(session) == ["acme"]


def test_settings_for_an_unknown_tenant_say_how_to_create_it(engine: sa.Engine) -> None:
    with session_scope(engine) as session, pytest.raises(UnknownTenantError, match="tenant set"):
        set_recording_settings(session, "ghost", changed_by="ops", enabled=True)


def test_retention_is_read_only_while_the_feature_is_enabled(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        ensure_tenant(session, "acme")
        assert retention_days_if_enabled(session, "acme") is None  # no settings yet
        assert retention_days_if_enabled(session, "ghost") is None  # no such tenant
        set_recording_settings(session, "acme", changed_by="ops", enabled=True, retention_days=3)
        assert retention_days_if_enabled(session, "acme") == 3
        set_recording_settings(session, "acme", changed_by="ops", enabled=False)
        assert retention_days_if_enabled(session, "acme") is None


def test_recordings_in_hour_selects_one_tenant_and_one_half_open_hour(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        for tenant in ("acme", "globex"):
            ensure_tenant(session, tenant)
        _register(session, "acme", "before", HOUR - timedelta(microseconds=1))
        _register(session, "acme", "first", HOUR)
        _register(session, "acme", "last", HOUR + timedelta(minutes=59, seconds=59))
        _register(session, "acme", "next", HOUR + timedelta(hours=1))
        _register(session, "globex", "other-tenant", HOUR + timedelta(minutes=5))
    with session_scope(engine) as session:
        found = recordings_in_hour(session, "acme", HOUR)
    assert [r.recording_id for r in found] == ["first", "last"]
    assert found[0].started_at == HOUR


def test_naive_datetimes_are_refused(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        ensure_tenant(session, "acme")
        with pytest.raises(CatalogError, match="time zone"):
            _register(session, "acme", "naive", HOUR.replace(tzinfo=None))


def test_a_conversation_cannot_move_between_tenants(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        ensure_tenant(session, "acme")
        ensure_tenant(session, "globex")
        _register(session, "acme", "r1", HOUR)
        with pytest.raises(CatalogError, match="another tenant"):
            register_recording(
                session,
                tenant_id="globex",
                conversation_id="c-r1",
                session_id="s-x",
                recording_id="r-x",
                bucket="src",
                object_key="globex/x.wav",
                started_at=HOUR,
                duration_seconds=1.0,
                audio_format="WAV",
                channels=1,
            )


@pytest.mark.sqlite_run_only
def test_hour_query_uses_the_tenant_started_index(sqlite_url: str) -> None:
    """SQLite's plan on an empty table; PostgreSQL (rightly) scans a table this small, so its
    plan is checked at a million rows (test_scale_and_postgres.py)."""
    engine = create_db_engine(sqlite_url)
    query = (
        "EXPLAIN QUERY PLAN SELECT * FROM audio_files WHERE tenant_id = 'acme' "
        "AND started_at >= '2025-12-12 13:00:00' AND started_at < '2025-12-12 14:00:00' "
        "ORDER BY started_at, id"
    )
    with engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(sa.text(query)))
    engine.dispose()
    assert "ix_audio_files_tenant_started" in plan
    assert "SCAN audio_files" not in plan
