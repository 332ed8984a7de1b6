"""Run the nightly path outside the daemon: the CLI's `materialize` and the demo use it.

It builds the run requests exactly as the schedules do (`nightly_run_requests`: tenant-days
packed into runs by expected audio, shard by shard) and executes each as a run of its shard's
archive job (`hourly_archives_shard_07`) on the persistent instance, so the runs, their per-hour
materializations and failures appear in the Dagster UI like scheduled ones.
"""

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import dagster as dg

from recordings.keys import parse_archive_partition_key
from recordings.packing import PackLimits
from recordings_dagster.schedules import TenantOrder, nightly_run_requests, tenants_covered

HOURS_PER_DAY = 24

# The terminal shows warnings and errors only; every event is still in the instance (the UI).
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def hourly_archives_job_def(job_name: str) -> dg.JobDefinition:
    """A shard's archive job with its resources bound, as the code location serves it."""
    from recordings_dagster.definitions import defs

    return defs.resolve_job_def(job_name)


# The two functions below return Dagster's ReconstructableJob, which Dagster does not export:
# their return type is inferred rather than imported from a private module.
def reconstructable_archives_job(job_name: str):
    """The archive job `job_name` (`hourly_archives_shard_07`) as `dg.execute_job` takes it:
    rebuilt by name in the run's process (the form of `dg.reconstructable` for a job that
    needs an argument)."""
    return dg.build_reconstructable_job(
        __name__, hourly_archives_job_def.__name__, reconstructable_args=(job_name,)
    )


def run_request_job(request: dg.RunRequest):
    """The archive job a run request of the schedules or sensors names, reconstructable."""
    if request.job_name is None:
        raise ValueError("an archive run request names its shard's job")
    return reconstructable_archives_job(request.job_name)


@dataclass(frozen=True)
class TenantDayOutcome:
    tenant_id: str
    run_id: str
    success: bool
    hours_archived: int
    failure: str | None


def materialize_day(
    instance: dg.DagsterInstance,
    day: date,
    tenant_ids: Sequence[str],
    *,
    expected_audio_seconds: Mapping[str, float] | None = None,
    limits: PackLimits | None = None,
    on_progress: Callable[[int, int, TenantDayOutcome], None] | None = None,
) -> list[TenantDayOutcome]:
    """Execute the day's runs as the schedule packs them; return what happened to each
    tenant-day (a tenant whose 24 hours were archived succeeded even if another tenant of its
    run failed)."""
    requests = nightly_run_requests(instance, tenant_ids, day, expected_audio_seconds, limits)
    order = TenantOrder(instance)
    outcomes: list[TenantDayOutcome] = []
    for request in requests:
        tenants = tenants_covered(request.tags, order)
        with dg.execute_job(
            run_request_job(request), instance=instance, tags=request.tags, run_config=QUIET_CONSOLE
        ) as result:
            run_id = result.run_id
            success = result.success
        hours = Counter(
            parse_archive_partition_key(record.partition_key)[0]
            for record in instance.get_records_for_run(
                run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=1_000_000
            ).records
            if record.partition_key
        )
        failure = None
        if not success:
            run = instance.get_run_by_id(run_id)
            failure = run_failure_message(instance, run_id) or (
                run.status.value if run else "failed"
            )
        for tenant_id in tenants:
            done = success or hours[tenant_id] == HOURS_PER_DAY
            outcome = TenantDayOutcome(
                tenant_id, run_id, done, hours[tenant_id], None if done else failure
            )
            outcomes.append(outcome)
            if on_progress:
                on_progress(len(outcomes), len(tenant_ids), outcome)
    return outcomes


def run_failure_message(instance: dg.DagsterInstance, run_id: str) -> str | None:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is not None and event.step_failure_data is not None:
            error = event.step_failure_data.error
            user = event.step_failure_data.user_failure_data
            if user is not None and user.description:
                return user.description
            if error is not None:
                return error.message.strip()
    return None


def retention_job_def() -> dg.JobDefinition:
    from recordings_dagster.definitions import defs

    return defs.resolve_job_def("retention_job")


@dataclass(frozen=True)
class RetentionOutcome:
    run_id: str
    success: bool
    summary: dict[str, object]
    failure: str | None


def run_retention(instance: dg.DagsterInstance, today: date) -> RetentionOutcome:
    """Run the retention job for `today` on the persistent instance, as the schedule does."""
    run_config = {
        **QUIET_CONSOLE,
        "ops": {"apply_archive_retention": {"config": {"today": today.isoformat()}}},
    }
    with dg.execute_job(
        dg.reconstructable(retention_job_def),
        instance=instance,
        run_config=run_config,
        tags={"recordings/utc_day": today.isoformat()},
    ) as result:
        run_id, success = result.run_id, result.success
        summary: dict[str, object] = {}
        for event in result.all_events:
            if event.event_type == dg.DagsterEventType.STEP_OUTPUT and event.step_output_data:
                summary = {k: v.value for k, v in event.step_output_data.metadata.items()}
    return RetentionOutcome(
        run_id, success, summary, None if success else run_failure_message(instance, run_id)
    )
