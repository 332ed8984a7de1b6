"""Late recordings: registered for an hour after its archive was made, they are detected by the
sensor and the hour is rebuilt; the new archive replaces the old one at the same key and its
materialization records the SHA-256 it replaces. Outside retention, or for a tenant with the
feature off, nothing is rebuilt."""

import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from minio import Minio

from recordings.catalog import ensure_tenant, register_recording, set_recording_settings
from recordings.db.engine import session_scope
from recordings.keys import (
    archive_key,
    archive_partition_key,
    day_hours,
    parse_archive_partition_key,
)
from recordings_cli.synth import FORMATS, write_conversation
from recordings_dagster.execution import hourly_archives_job_def, run_request_job
from recordings_dagster.jobs import tenant_archives_job_name
from recordings_dagster.resources import DatabaseResource
from recordings_dagster.schedules import nightly_run_requests
from recordings_dagster.sensors import late_recordings_sensor
from recordings_instance.archives import archive_asset_key
from tests.dagster.test_pipeline import _run_day
from tests.support import DAY

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _register(
    engine: sa.Engine,
    client: Minio,
    bucket: str,
    tmp_path: Path,
    tenant: str,
    rec: str,
    start: datetime,
) -> None:
    path = tmp_path / f"{rec}.wav"
    write_conversation(path, FORMATS["wav-ulaw"], 2.0, 8000, 1, seed=len(rec))
    key = f"tenants/{tenant}/{rec}.wav"
    client.fput_object(bucket, key, str(path))
    with session_scope(engine) as session:
        register_recording(
            session,
            tenant_id=tenant,
            conversation_id=f"{rec}-c",
            session_id=f"{rec}-s",
            recording_id=rec,
            bucket=bucket,
            object_key=key,
            started_at=start,
            duration_seconds=2.0,
            audio_format="WAV",
            channels=1,
        )


def _evaluate(
    instance: dg.DagsterInstance, database_url: str, cursor: str | None = None
) -> dg.SensorResult:
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"database": DatabaseResource(url=database_url)}
    ) as context:
        result = late_recordings_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def _latest_metadata(instance: dg.DagsterInstance, key: str) -> dict[str, object]:
    asset_key = archive_asset_key(parse_archive_partition_key(key)[0])
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[key]), limit=1
    ).records[0]
    assert record.asset_materialization is not None
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_a_late_recording_rebuilds_its_hour_and_the_change_is_recorded(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    database_url: str,
    engine: sa.Engine,
    s3_client: Minio,
    tmp_path: Path,
) -> None:
    source = recordings_env["RECORDINGS_SOURCE_BUCKET"]
    hour = day_hours(DAY)[3]
    with session_scope(engine) as session:
        for tenant in ("acme", "initech"):
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="t", enabled=True, retention_days=1)
    _register(engine, s3_client, source, tmp_path, "acme", "r-on-time", hour + timedelta(minutes=5))
    assert _run_day(instance, "acme", DAY).success
    partition = archive_partition_key("acme", hour)
    before = _latest_metadata(instance, partition)
    assert before["recording_count"] == 1

    # Nothing is late yet.
    first = _evaluate(instance, database_url)
    assert not first.run_requests

    # Late: acme's hour 3; initech (its feature then turned off); an hour beyond retention.
    _register(engine, s3_client, source, tmp_path, "acme", "r-late", hour + timedelta(minutes=40))
    _register(engine, s3_client, source, tmp_path, "initech", "r-off", hour + timedelta(minutes=1))
    old_hour = day_hours(DAY - timedelta(days=3))[3]
    _register(engine, s3_client, source, tmp_path, "acme", "r-old", old_hour)
    with session_scope(engine) as session:
        set_recording_settings(session, "initech", changed_by="t", enabled=False)
    second = _evaluate(instance, database_url, first.cursor)
    assert [r.partition_key for r in second.run_requests] == [partition]
    (request,) = second.run_requests
    assert request.tags["recordings/reason"] == "late_recordings"
    # The rebuild runs on acme's shard's job, the one whose asset holds the hour.
    assert request.job_name == tenant_archives_job_name("acme") == "hourly_archives_shard_13"

    with dg.execute_job(
        run_request_job(request),
        instance=instance,
        tags={**request.tags, "dagster/partition": partition},
    ) as result:
        assert result.success
    after = _latest_metadata(instance, partition)
    assert after["recording_count"] == 2
    assert after["replaces_sha256"] == before["sha256"] != after["sha256"]
    path = tmp_path / "rebuilt.zip"
    s3_client.fget_object(
        recordings_env["RECORDINGS_ARCHIVE_BUCKET"], archive_key("acme", hour), str(path)
    )
    with zipfile.ZipFile(path) as archive:
        assert sum(name.endswith(".opus") for name in archive.namelist()) == 2

    # The rebuilt archive contains the late recording: nothing more to do.
    assert not _evaluate(instance, database_url, second.cursor).run_requests


def test_a_late_recording_waits_while_a_run_covering_its_tenant_is_unfinished(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    database_url: str,
    engine: sa.Engine,
    s3_client: Minio,
    tmp_path: Path,
) -> None:
    """One tenant's runs never overlap: a rebuild is not requested while a packed run that
    covers the tenant has not finished, and is requested once that run has. (acme, globex and
    wayne share shard 13, so one run packs them.)"""
    source = recordings_env["RECORDINGS_SOURCE_BUCKET"]
    hour = day_hours(DAY)[3]
    with session_scope(engine) as session:
        for tenant in ("acme", "globex", "wayne"):
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="t", enabled=True)
    _register(engine, s3_client, source, tmp_path, "globex", "g-on-time", hour)
    (pack,) = nightly_run_requests(instance, ["acme", "globex", "wayne"], DAY)
    with dg.execute_job(run_request_job(pack), instance=instance, tags=pack.tags) as result:
        assert result.success
    first = _evaluate(instance, database_url)
    _register(engine, s3_client, source, tmp_path, "globex", "g-late", hour + timedelta(minutes=9))

    # A run of the pack (acme..wayne) is created, not finished: globex, inside it, waits.
    job = hourly_archives_job_def(tenant_archives_job_name("acme"))
    queued = instance.create_run_for_job(job, tags=pack.tags)
    waiting = _evaluate(instance, database_url, first.cursor)
    assert not waiting.run_requests
    assert waiting.skip_reason is not None and "wait for their tenant's run" in str(
        waiting.skip_reason
    )

    instance.report_run_canceled(queued, "the operator canceled the retry")
    after = _evaluate(instance, database_url, waiting.cursor)
    (request,) = after.run_requests
    assert request.partition_key == archive_partition_key("globex", hour)
    assert request.tags["recordings/tenant"] == "globex"
