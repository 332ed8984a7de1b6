"""Failed hours are recorded so the API tells `failed` from `pending`: by the run for the hours
it saw fail (with their own cause), and by the archive-failures sensor for the hours of a run
that died before it could say (the run's failure message). The sensor never overwrites what
the run recorded."""

from datetime import datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import session_scope
from recordings.failures import hour_failures
from recordings.keys import day_hours
from recordings_api.archives.services import day_statuses
from recordings_dagster.execution import hourly_archives_job_def, run_request_job
from recordings_dagster.jobs import tenant_archives_job_name
from recordings_dagster.resources import DatabaseResource
from recordings_dagster.schedules import nightly_run_requests
from recordings_dagster.sensors import archive_failures_sensor
from tests.support import DAY, register_unreadable_source

pytestmark = [pytest.mark.integration]


def _enable(engine: sa.Engine, *tenants: str) -> None:
    with session_scope(engine) as session:
        for tenant in tenants:
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="test", enabled=True)


def _evaluate_sensor(instance: dg.DagsterInstance, run_id: str, database_url: str) -> None:
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
    (record,) = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    event = record.event_log_entry.dagster_event
    assert event is not None
    context = dg.build_run_status_sensor_context(
        sensor_name=archive_failures_sensor.name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"database": DatabaseResource(url=database_url)},
    )
    with context.for_run_failure() as failure_context:
        archive_failures_sensor(failure_context)


def _failures_of(engine: sa.Engine, tenant: str) -> dict[datetime, tuple[str, str]]:
    with session_scope(engine) as session:
        found = hour_failures(session, tenant, day_hours(DAY))
    return {hour: (f.run_id, f.cause) for hour, f in found.items()}


def test_the_hours_of_a_run_that_died_are_recorded_failed_and_reported_so(
    instance: dg.DagsterInstance,
    engine: sa.Engine,
    database_url: str,
    recordings_env: dict[str, str],
) -> None:
    """A packed run of two tenants whose worker was lost before it archived anything."""
    _enable(engine, "acme", "globex")
    (request,) = nightly_run_requests(instance, ["acme", "globex"], DAY)
    job = hourly_archives_job_def(tenant_archives_job_name("acme"))
    run = instance.create_run_for_job(job, tags=request.tags)
    instance.report_run_failed(run, "the run's worker was lost (node drained)")
    _evaluate_sensor(instance, run.run_id, database_url)

    for tenant in ("acme", "globex"):
        failures = _failures_of(engine, tenant)
        assert set(failures) == set(day_hours(DAY))
        run_id, cause = failures[day_hours(DAY)[0]]
        assert run_id == run.run_id
        assert cause.startswith("the run failed before this hour was archived: ")
        assert "node drained" in cause

    def lookup(hours: list[datetime]) -> dict:
        with session_scope(engine) as session:
            return hour_failures(session, "acme", hours)

    statuses = day_statuses(instance, "acme", DAY, 7, failures=lookup)
    assert {s.status for s in statuses} == {"failed"}
    # The daemon is going to retry it: pending, not failed.
    instance.add_run_tags(run.run_id, {"dagster/will_retry": "true"})
    statuses = day_statuses(instance, "acme", DAY, 7, failures=lookup)
    assert {s.status for s in statuses} == {"pending"}


def test_the_sensor_keeps_the_cause_the_run_recorded_and_skips_archived_hours(
    instance: dg.DagsterInstance,
    engine: sa.Engine,
    database_url: str,
    recordings_env: dict[str, str],
) -> None:
    _enable(engine, "acme")
    failing = day_hours(DAY)[9]
    register_unreadable_source(engine, "acme", failing, recordings_env["RECORDINGS_SOURCE_BUCKET"])
    (request,) = nightly_run_requests(instance, ["acme"], DAY)
    with dg.execute_job(
        run_request_job(request),
        instance=instance,
        tags=request.tags,
        raise_on_error=False,
    ) as result:
        assert not result.success
        run_id = result.run_id
    recorded = _failures_of(engine, "acme")
    assert set(recorded) == {failing}
    assert recorded[failing][0] == run_id
    cause = recorded[failing][1]
    assert not cause.startswith("the run failed before")

    _evaluate_sensor(instance, run_id, database_url)
    assert _failures_of(engine, "acme") == recorded  # nothing overwritten, nothing added


def test_a_dead_run_of_another_shards_job_has_its_own_hours_recorded(
    instance: dg.DagsterInstance,
    engine: sa.Engine,
    database_url: str,
    recordings_env: dict[str, str],
) -> None:
    """initech's run is on shard 2's job: the sensor reads its range in that shard's
    partitions."""
    _enable(engine, "initech")
    (request,) = nightly_run_requests(instance, ["initech"], DAY)
    job_name = tenant_archives_job_name("initech")
    assert job_name == request.job_name == "hourly_archives_shard_02"
    run = instance.create_run_for_job(hourly_archives_job_def(job_name), tags=request.tags)
    instance.report_run_failed(run, "the run's worker was lost (node drained)")
    _evaluate_sensor(instance, run.run_id, database_url)
    assert set(_failures_of(engine, "initech")) == set(day_hours(DAY))
