"""The latest failed attempt per tenant-hour (`recordings/failures.py`): the latest replaces the
earlier one, rows of hours too old to matter are pruned, and a lookup reads only its tenant."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from recordings.db.engine import session_scope
from recordings.failures import HourFailure, hour_failures, record_hour_failures, recorded_by_run

HOUR = datetime(2026, 11, 30, 9, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 1, tzinfo=UTC)


def test_the_latest_failure_replaces_the_earlier_and_only_the_tenant_is_read(
    engine: sa.Engine,
) -> None:
    with session_scope(engine) as session:
        record_hour_failures(
            session,
            [
                HourFailure("acme", HOUR, "run-1", "S3 down"),
                HourFailure("acme", HOUR + timedelta(hours=1), "run-1", "S3 down"),
                HourFailure("globex", HOUR, "run-1", "S3 down"),
            ],
            NOW,
        )
    with session_scope(engine) as session:
        record_hour_failures(session, [HourFailure("acme", HOUR, "run-2", "x" * 5000)], NOW)
    with session_scope(engine) as session:
        found = hour_failures(
            session, "acme", [HOUR, HOUR + timedelta(hours=1), HOUR - timedelta(hours=1)]
        )
        assert set(found) == {HOUR, HOUR + timedelta(hours=1)}
        assert found[HOUR].run_id == "run-2" and found[HOUR].cause == "x" * 2000  # bounded
        assert found[HOUR + timedelta(hours=1)].run_id == "run-1"
        assert recorded_by_run(session, "run-1", [("acme", HOUR), ("globex", HOUR)]) == {
            ("globex", HOUR)
        }
        assert hour_failures(session, "acme", []) == {}


def test_rows_of_hours_older_than_any_retention_are_pruned(engine: sa.Engine) -> None:
    old = NOW - timedelta(days=10)
    with session_scope(engine) as session:
        record_hour_failures(session, [HourFailure("acme", old, "run-1", "old")], old)
    with session_scope(engine) as session:
        record_hour_failures(session, [HourFailure("acme", HOUR, "run-2", "new")], NOW)
    with session_scope(engine) as session:
        assert set(hour_failures(session, "acme", [old, HOUR])) == {HOUR}
