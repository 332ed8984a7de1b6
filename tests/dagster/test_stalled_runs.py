"""The stalled-runs sensor fails a started run whose hour leases went silent, and nothing else:
not a run that refreshed between two looks (a database blip), not a finished run."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from recordings.db.engine import session_scope
from recordings.db.models import ArchiveHourLease
from recordings_dagster.resources import ArchiveBuildResource, DatabaseResource
from recordings_dagster.sensors import stalled_archive_runs_sensor

pytestmark = [pytest.mark.integration, pytest.mark.resilience]

HOUR = datetime(2026, 11, 25, 5, tzinfo=UTC)


def _run(instance: dg.DagsterInstance, status: dg.DagsterRunStatus) -> str:
    run = instance.add_run(dg.DagsterRun(job_name="hourly_archives_shard_13", status=status))
    return run.run_id


def _lease(engine: sa.Engine, holder: str, tenant: str, renewed_at: datetime) -> None:
    with session_scope(engine) as session:
        row = session.get(ArchiveHourLease, (tenant, HOUR))
        if row is None:
            session.add(
                ArchiveHourLease(
                    tenant_id=tenant,
                    hour=HOUR,
                    holder=holder,
                    acquired_at=renewed_at,
                    renewed_at=renewed_at,
                )
            )
        else:
            row.renewed_at = renewed_at


def test_only_runs_silent_at_two_looks_in_a_row_and_still_started_are_failed(
    dagster_instance: dg.DagsterInstance, engine: sa.Engine, database_url: str
) -> None:
    long_ago = datetime.now(UTC) - timedelta(minutes=30)
    dead = _run(dagster_instance, dg.DagsterRunStatus.STARTED)
    blip = _run(dagster_instance, dg.DagsterRunStatus.STARTED)
    finished = _run(dagster_instance, dg.DagsterRunStatus.FAILURE)
    alive = _run(dagster_instance, dg.DagsterRunStatus.STARTED)
    _lease(engine, dead, "acme", long_ago)
    _lease(engine, blip, "globex", long_ago)
    _lease(engine, finished, "initech", long_ago)
    _lease(engine, alive, "umbrella", datetime.now(UTC))
    resources = {
        "database": DatabaseResource(url=database_url),
        "archive_build": ArchiveBuildResource(hour_lease_seconds=300),
    }
    with dg.build_sensor_context(instance=dagster_instance, resources=resources) as context:
        first = stalled_archive_runs_sensor(context)
        assert isinstance(first, dg.SkipReason)
        assert first.skip_message == "no stalled run (3 silent lease holder(s) being watched)"
        # Between the looks the blip's worker refreshes again (its database came back).
        _lease(engine, blip, "globex", long_ago + timedelta(minutes=1))
        second = stalled_archive_runs_sensor(context)
    assert isinstance(second, dg.SkipReason)
    assert second.skip_message == f"failed 1 stalled run(s): {dead}"

    statuses = {
        run_id: run.status
        for run_id in (dead, blip, finished, alive)
        if (run := dagster_instance.get_run_by_id(run_id)) is not None
    }
    assert statuses == {
        dead: dg.DagsterRunStatus.FAILURE,
        blip: dg.DagsterRunStatus.STARTED,
        finished: dg.DagsterRunStatus.FAILURE,
        alive: dg.DagsterRunStatus.STARTED,
    }
    failure = dagster_instance.get_records_for_run(
        dead, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    assert len(failure) == 1
    assert "stopped refreshing its 1 hour lease(s)" in failure[0].event_log_entry.message
