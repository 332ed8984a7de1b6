"""The retention job through Dagster: deletions become one observation per tenant-day on the
archive asset of the tenant's shard (also for archives recorded before the shards), listing every
deleted hour with the SHA-256 its materialization recorded, and run metadata; the
API then says `expired` (also after retention is raised again), the schedule asks for today's
cleanup, a cleanup that cannot reach its bucket fails the run, and an archive S3 refuses to
delete is neither observed nor reported expired."""

import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from minio import Minio
from minio.deleteobjects import DeleteError, DeleteObject

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import session_scope
from recordings.keys import (
    SHARD_COUNT,
    archive_key,
    archive_partition_key,
    day_hours,
    parse_archive_partition_key,
)
from recordings.retention import deleted_hours
from recordings_api.archives.services import day_statuses
from recordings_dagster.definitions import defs
from recordings_dagster.schedules import retention_schedule
from recordings_instance.archives import (
    LEGACY_ARCHIVE_ASSET_KEY,
    archive_asset_key,
    shard_asset_key,
)

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()
SHA = "5a" * 32


def _archive(
    instance: dg.DagsterInstance,
    client: Minio,
    bucket: str,
    age: int,
    tenant: str = "acme",
    hour_of_day: int = 7,
    asset_key: dg.AssetKey | None = None,
) -> str:
    """An archive in S3 and its materialization (under the tenant's shard key by default)."""
    hour = day_hours(TODAY - timedelta(days=age))[hour_of_day]
    key = archive_key(tenant, hour)
    client.put_object(bucket, key, io.BytesIO(b"PK-zip"), 6)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key or archive_asset_key(tenant),
            partition=archive_partition_key(tenant, hour),
            metadata={"object_key": key, "sha256": SHA, "size_bytes": 6},
        )
    )
    return key


def _run(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("retention_job").execute_in_process(
        instance=instance,
        run_config={"ops": {"apply_archive_retention": {"config": {"today": TODAY.isoformat()}}}},
        raise_on_error=False,
    )


def test_deletions_are_observed_reported_and_stay_expired(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    engine: sa.Engine,
    s3_client: Minio,
) -> None:
    bucket = recordings_env["RECORDINGS_ARCHIVE_BUCKET"]
    with session_scope(engine) as session:
        ensure_tenant(session, "acme")
        set_recording_settings(session, "acme", changed_by="t", enabled=True, retention_days=2)
    keys = {age: _archive(instance, s3_client, bucket, age) for age in range(5)}

    result = _run(instance)
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
    assert output.step_output_data is not None
    metadata = output.step_output_data.metadata
    assert metadata["deleted"].value == 2 and metadata["kept"].value == 3
    observations = [
        event.asset_observation_data.asset_observation
        for event in result.all_events
        if event.event_type == dg.DagsterEventType.ASSET_OBSERVATION
    ]
    # One observation per expired day, each listing its one deleted hour.
    assert sorted(o.metadata["day"].value for o in observations) == sorted(
        (TODAY - timedelta(days=age)).isoformat() for age in (3, 4)
    )
    hours = _deleted_hours(observations)
    assert sorted(hours) == sorted(
        archive_partition_key("acme", day_hours(TODAY - timedelta(days=age))[7]) for age in (3, 4)
    )
    assert {row["sha256"] for row in hours.values()} == {SHA}  # as recorded
    assert {row["object_key"] for row in hours.values()} == {keys[3], keys[4]}
    remaining = {o.object_name for o in s3_client.list_objects(bucket, recursive=True)}
    assert remaining == {keys[age] for age in range(3)}

    # Raising the retention resurrects nothing: the API still says expired for the deleted hour.
    with session_scope(engine) as session:
        set_recording_settings(session, "acme", changed_by="t", retention_days=7)
    day = TODAY - timedelta(days=3)
    statuses = day_statuses(
        instance, "acme", day, 7, deleted=deleted_hours(engine, "acme", day_hours(day))
    )
    assert statuses[7].status == "expired"
    assert {s.status for i, s in enumerate(statuses) if i != 7} == {"pending"}
    assert _run(instance).success  # nothing more to delete, nothing resurrected


def _deleted_hours(observations: Iterable[dg.AssetObservation]) -> dict[str, dict[str, str]]:
    """The deleted hours the observations list, by partition key: each observation is one
    tenant-day on its tenant's shard asset, expired, with a row per hour of that day."""
    found: dict[str, dict[str, str]] = {}
    for observation in observations:
        metadata = observation.metadata
        tenant, day = metadata["tenant"].value, metadata["day"].value
        assert observation.asset_key == archive_asset_key(tenant)
        assert observation.partition is None and metadata["status"].value == "expired"
        rows = [dict(record.data) for record in metadata["deleted_hours"].value.records]
        assert metadata["hours_deleted"].value == len(rows) > 0
        for row in rows:
            row_tenant, hour = parse_archive_partition_key(row["partition"])
            assert (row_tenant, hour.date().isoformat()) == (tenant, day)
            assert row["partition"] not in found
            found[row["partition"]] = row
    return found


def _observed(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, str]]:
    """The deleted hours the run's observations list in the instance (a failed step's are
    there too), by partition key."""
    observations: list[dg.AssetObservation] = []
    for shard in range(SHARD_COUNT):
        records = instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=shard_asset_key(shard)), limit=1000
        ).records
        observations += [
            r.asset_observation for r in records if r.run_id == run_id and r.asset_observation
        ]
    days = [(o.metadata["tenant"].value, o.metadata["day"].value) for o in observations]
    assert len(days) == len(set(days)), "one observation per tenant-day"
    return _deleted_hours(observations)


def test_whole_expired_days_are_observed_once_a_tenant_day_except_what_s3_refused(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    engine: sa.Engine,
    s3_client: Minio,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = recordings_env["RECORDINGS_ARCHIVE_BUCKET"]
    tenants = ("acme", "globex", "initech")
    with session_scope(engine) as session:
        for tenant in tenants:
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="t", enabled=True, retention_days=2)
    day = TODAY - timedelta(days=3)
    keys = {
        (tenant, hour): _archive(instance, s3_client, bucket, 3, tenant, hour)
        for tenant in tenants
        for hour in range(24)
    }
    refused = keys[("globex", 5)]

    def remove_objects(
        self: Minio, bucket_name: str, objects: Iterable[DeleteObject]
    ) -> Iterator[DeleteError]:
        names = [o.name for o in objects]
        errors = remove(self, bucket_name, [DeleteObject(n) for n in names if n != refused])
        return iter([*errors, *[DeleteError("AccessDenied", "no", refused, None)]])

    remove = Minio.remove_objects
    monkeypatch.setattr(Minio, "remove_objects", remove_objects)
    result = _run(instance)
    assert not result.success  # the refusal fails the run, for the retries to try again
    observed = _observed(instance, result.run_id)
    expected = {
        archive_partition_key(tenant, day_hours(day)[hour])
        for tenant, hour in keys
        if (tenant, hour) != ("globex", 5)
    }
    assert set(observed) == expected
    assert {row["object_key"] for row in observed.values()} == set(keys.values()) - {refused}
    remaining = {o.object_name for o in s3_client.list_objects(bucket, recursive=True)}
    assert remaining == {refused}
    for tenant in tenants:
        statuses = day_statuses(
            instance, tenant, day, 7, deleted=deleted_hours(engine, tenant, day_hours(day))
        )
        expired = {i for i, s in enumerate(statuses) if s.status == "expired"}
        assert expired == (set(range(24)) - {5} if tenant == "globex" else set(range(24)))

    monkeypatch.setattr(Minio, "remove_objects", remove)
    again = _run(instance)  # the retry: settles and deletes the refused archive
    assert again.success and set(_observed(instance, again.run_id)) == {
        archive_partition_key("globex", day_hours(day)[5])
    }
    assert not list(s3_client.list_objects(bucket, recursive=True))


def test_an_archive_recorded_before_the_shards_is_deleted_with_its_recorded_evidence(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    engine: sa.Engine,
    s3_client: Minio,
) -> None:
    bucket = recordings_env["RECORDINGS_ARCHIVE_BUCKET"]
    with session_scope(engine) as session:
        ensure_tenant(session, "acme")
        set_recording_settings(session, "acme", changed_by="t", enabled=True, retention_days=2)
    _archive(instance, s3_client, bucket, 3, asset_key=LEGACY_ARCHIVE_ASSET_KEY)
    result = _run(instance)
    assert result.success
    ((partition, observed),) = _observed(instance, result.run_id).items()
    assert partition == archive_partition_key("acme", day_hours(TODAY - timedelta(3))[7])
    assert observed["sha256"] == SHA  # as recorded under the legacy key
    assert not list(s3_client.list_objects(bucket, recursive=True))


def test_the_schedule_asks_for_todays_cleanup(instance: dg.DagsterInstance) -> None:
    moment = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=moment)
    request = retention_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert request.run_config["ops"]["apply_archive_retention"]["config"]["today"] == "2026-03-20"
    assert request.run_key == "retention|2026-03-20"


def test_a_cleanup_that_cannot_list_fails_the_run_with_the_cause(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    engine: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with session_scope(engine) as session:
        ensure_tenant(session, "acme")
        set_recording_settings(session, "acme", changed_by="t", enabled=True)
    monkeypatch.setenv("RECORDINGS_ARCHIVE_BUCKET", "no-such-bucket-for-retention")
    result = _run(instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert failure.step_failure_data is not None
    user_failure = failure.step_failure_data.user_failure_data
    assert user_failure is not None
    assert "could not be deleted" in (user_failure.description or "")
    assert "NoSuchBucket" in (user_failure.description or "")


def test_the_daily_pass_aborts_uploads_a_killed_worker_left_behind(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    s3_client: Minio,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import recordings_dagster.ops

    bucket = recordings_env["RECORDINGS_ARCHIVE_BUCKET"]
    key = archive_key("acme", day_hours(TODAY - timedelta(days=1))[2])
    s3_client._create_multipart_upload(bucket, key, {})  # a worker died mid-upload
    monkeypatch.setattr(recordings_dagster.ops, "STALE_UPLOAD_AGE", timedelta(0))
    result = _run(instance)
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
    assert output.step_output_data is not None
    assert output.step_output_data.metadata["stale_uploads_aborted"].value == 1
    assert s3_client._list_multipart_uploads(bucket, prefix="tenants/").uploads == []


def test_the_cleanup_thread_hands_its_error_to_the_op_and_stops_when_the_op_does() -> None:
    from recordings_dagster.ops import _ahead

    def failing() -> Iterator[int]:
        yield 1
        raise RuntimeError("S3 gone")

    seen = []
    with pytest.raises(RuntimeError, match="S3 gone"):
        seen.extend(_ahead(failing(), 1))
    assert seen == [1]
    produced = []

    def endless() -> Iterator[int]:
        while True:
            produced.append(len(produced))
            yield produced[-1]

    reports = _ahead(endless(), 2)
    assert next(reports) == 0
    reports.close()  # the op stopped (its event write failed): the thread stops too
    assert len(produced) <= 5
