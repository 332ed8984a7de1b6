"""A tenant-day end to end through Dagster: the nightly run's shape, a failing hour, a retry.

Runs execute the tenant's shard job (`hourly_archives_shard_13` for acme) with the schedule's
own run request on a real Dagster instance, real SeaweedFS and a real database; the per-hour
materialization metadata is read back the way the API will read it.
"""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.execution.job_execution_result import JobExecutionResult
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry
from minio import Minio

from recordings.catalog import ensure_tenant, register_recording, set_recording_settings
from recordings.db.engine import session_scope
from recordings.keys import archive_key, archive_partition_key, day_hours, tenant_shard
from recordings.storage import ensure_bucket
from recordings_cli.synth import FORMATS, write_conversation
from recordings_dagster.execution import (
    materialize_day,
    reconstructable_archives_job,
    run_request_job,
)
from recordings_dagster.jobs import tenant_archives_job_name
from recordings_dagster.partitions import tenant_partitions_name
from recordings_dagster.schedules import nightly_run_requests
from recordings_instance.archives import archive_asset_key
from tests.support import DAY

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.run_retries]

METADATA_KEYS = {
    "object_key",
    "size_bytes",
    "sha256",
    "recording_count",
    "conversation_count",
    "failed_recording_count",
    "audio_seconds",
}


def _yesterday() -> date:
    return (datetime.now(UTC) - timedelta(days=1)).date()


def _seed(
    engine: sa.Engine, client: Minio, bucket: str, tmp_path: Path, day: date, tenant: str
) -> None:
    """Two conversations in hour 3, one in hour 17, a missing object in hour 17."""
    hours = day_hours(day)
    plan = [
        ("c1", "s1", "r1", hours[3] + timedelta(minutes=5), "wav-ulaw", 8000, 1),
        ("c1", "s2", "r2", hours[3] + timedelta(minutes=9), "flac", 16000, 2),
        ("c2", "s1", "r3", hours[3] + timedelta(minutes=30), "ogg-vorbis", 44100, 2),
        ("c3", "s1", "r4", hours[17] + timedelta(minutes=1), "mp3", 48000, 1),
    ]
    with session_scope(engine) as session:
        ensure_tenant(session, tenant)
        set_recording_settings(session, tenant, changed_by="test", enabled=True)
        for conv, sess, rec, start, fmt_key, rate, channels in plan:
            fmt = FORMATS[fmt_key]
            path = tmp_path / f"{tenant}-{rec}{fmt.extension}"
            write_conversation(path, fmt, 4.0, rate, channels, seed=hash(rec) % 1000)
            key = f"tenants/{tenant}/{conv}/{sess}/{rec}{fmt.extension}"
            client.fput_object(bucket, key, str(path))
            register_recording(
                session,
                tenant_id=tenant,
                conversation_id=f"{tenant}-{conv}",
                session_id=f"{tenant}-{conv}-{sess}",
                recording_id=f"{tenant}-{rec}",
                bucket=bucket,
                object_key=key,
                started_at=start,
                duration_seconds=4.0,
                audio_format=fmt.format,
                channels=channels,
                sample_rate=rate,
            )
        register_recording(
            session,
            tenant_id=tenant,
            conversation_id=f"{tenant}-c3",
            session_id=f"{tenant}-c3-s9",
            recording_id=f"{tenant}-gone",
            bucket=bucket,
            object_key=f"tenants/{tenant}/never-uploaded.wav",
            started_at=hours[17] + timedelta(minutes=3),
            duration_seconds=4.0,
            audio_format="WAV",
            channels=1,
        )


def _run_day(instance: dg.DagsterInstance, tenant: str, day: date) -> JobExecutionResult:
    (request,) = nightly_run_requests(instance, [tenant], day)
    with dg.execute_job(run_request_job(request), instance=instance, tags=request.tags) as result:
        return result


def _materializations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict]:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=1000
    ).records
    out = {}
    for record in records:
        materialization = record.asset_materialization
        assert materialization is not None
        assert materialization.partition is not None
        out[materialization.partition] = {k: v.value for k, v in materialization.metadata.items()}
    return out


def test_a_tenant_day_gives_24_hours_each_with_its_own_evidence(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    engine: sa.Engine,
    s3_client: Minio,
    tmp_path: Path,
) -> None:
    day = _yesterday()
    source, archive_bucket = (
        recordings_env["RECORDINGS_SOURCE_BUCKET"],
        recordings_env["RECORDINGS_ARCHIVE_BUCKET"],
    )
    _seed(engine, s3_client, source, tmp_path, day, "acme")

    result = _run_day(instance, "acme", day)
    assert result.success
    hours = _materializations(instance, result.run_id)
    assert len(hours) == 24
    hour3 = hours[archive_partition_key("acme", day_hours(day)[3])]
    hour17 = hours[archive_partition_key("acme", day_hours(day)[17])]
    hour4 = hours[archive_partition_key("acme", day_hours(day)[4])]
    assert METADATA_KEYS <= set(hour3)
    assert (hour3["recording_count"], hour3["conversation_count"]) == (3, 2)
    assert hour3["failed_recording_count"] == 0
    assert hour3["audio_seconds"] == pytest.approx(12.0, abs=0.1)
    assert (hour17["recording_count"], hour17["failed_recording_count"]) == (1, 1)
    assert hour17["failure_reasons"] == {"missing": 1}
    assert hour4["recording_count"] == 0  # an empty hour still has its archive
    assert hour3["object_key"] == archive_key("acme", day_hours(day)[3])
    stat = s3_client.stat_object(archive_bucket, hour3["object_key"])
    assert stat.size == hour3["size_bytes"]


def test_a_failing_hour_does_not_stop_the_others_and_the_retry_redoes_only_it(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    engine: sa.Engine,
    s3_client: Minio,
    tmp_path: Path,
) -> None:
    day = _yesterday()
    source = recordings_env["RECORDINGS_SOURCE_BUCKET"]
    _seed(engine, s3_client, source, tmp_path, day, "acme")
    # Hour 9 references a bucket that is not there yet (an outage or a late migration): the
    # hour must fail, not be archived without that recording.
    late_bucket = source + "-late"
    failing_hour = day_hours(day)[9]
    with session_scope(engine) as session:
        register_recording(
            session,
            tenant_id="acme",
            conversation_id="acme-c9",
            session_id="acme-c9-s1",
            recording_id="acme-r9",
            bucket=late_bucket,
            object_key="tenants/acme/c9/r9.wav",
            started_at=failing_hour + timedelta(minutes=10),
            duration_seconds=4.0,
            audio_format="WAV",
            channels=1,
        )

    first = _run_day(instance, "acme", day)
    assert not first.success
    done = _materializations(instance, first.run_id)
    assert len(done) == 23
    assert archive_partition_key("acme", failing_hour) not in done
    failure = next(e for e in first.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert failure.step_failure_data is not None
    user_failure = failure.step_failure_data.user_failure_data
    assert user_failure is not None
    assert "1 of 24 hours failed" in (user_failure.description or "")
    assert "NoSuchBucket" in (user_failure.description or "")
    run = instance.get_run_by_id(first.run_id)
    assert run is not None
    assert should_retry(run, instance), "the daemon must retry this run"

    # The cause is fixed; the retry (as the daemon launches it: a re-execution of the failed
    # run with its tags) archives the missing hour and skips the 23 already archived.
    ensure_bucket(s3_client, late_bucket)
    wav = tmp_path / "r9.wav"
    write_conversation(wav, FORMATS["wav-pcm16"], 4.0, 8000, 1, seed=9)
    s3_client.fput_object(late_bucket, "tenants/acme/c9/r9.wav", str(wav))
    with dg.execute_job(
        reconstructable_archives_job(run.job_name),
        instance=instance,
        reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance),
        # The daemon re-executes with the parent's tags (its partition range) plus a retry number.
        tags={**run.tags, "dagster/retry_number": "1"},
    ) as retry:
        assert retry.success
        retried = _materializations(instance, retry.run_id)
    assert list(retried) == [archive_partition_key("acme", failing_hour)]
    assert retried[archive_partition_key("acme", failing_hour)]["recording_count"] == 1

    latest = instance.get_latest_storage_id_by_partition(
        archive_asset_key("acme"),
        dg.DagsterEventType.ASSET_MATERIALIZATION,
        {archive_partition_key("acme", h) for h in day_hours(day)},
    )
    assert len(latest) == 24


def test_disabled_tenants_produce_nothing(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    engine: sa.Engine,
    s3_client: Minio,
    tmp_path: Path,
) -> None:
    day = _yesterday()
    _seed(engine, s3_client, recordings_env["RECORDINGS_SOURCE_BUCKET"], tmp_path, day, "acme")
    with session_scope(engine) as session:
        set_recording_settings(session, "acme", changed_by="test", enabled=False)
    result = _run_day(instance, "acme", day)
    assert result.success
    assert _materializations(instance, result.run_id) == {}
    objects = list(
        s3_client.list_objects(recordings_env["RECORDINGS_ARCHIVE_BUCKET"], recursive=True)
    )
    assert objects == []


def test_a_backfill_shaped_range_across_tenants_and_hours(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    engine: sa.Engine,
    s3_client: Minio,
    tmp_path: Path,
) -> None:
    """UI backfills split selections their own way (e.g. one hour x many tenants per run)."""
    day = _yesterday()
    source = recordings_env["RECORDINGS_SOURCE_BUCKET"]
    for tenant in ("acme", "globex"):
        _seed(engine, s3_client, source, tmp_path, day, tenant)
    instance.add_dynamic_partitions(
        tenant_partitions_name(tenant_shard("acme")), ["acme", "globex"]
    )
    hours = day_hours(day)
    tags = {
        "dagster/asset_partition_range_start": archive_partition_key("acme", hours[2]),
        "dagster/asset_partition_range_end": archive_partition_key("globex", hours[4]),
    }
    # acme and globex share a shard: a range never spans two.
    job = reconstructable_archives_job(tenant_archives_job_name("acme"))
    with dg.execute_job(job, instance=instance, tags=tags) as result:
        assert result.success
        done = _materializations(instance, result.run_id)
    expected = {archive_partition_key(t, h) for t in ("acme", "globex") for h in hours[2:5]}
    assert set(done) == expected
    assert done[archive_partition_key("globex", hours[3])]["recording_count"] == 3


def test_a_pack_archives_its_tenants_and_not_the_heavy_one_it_steps_over(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    engine: sa.Engine,
) -> None:
    """acme, globex (heavy: a run of its own) and wayne in partition order (all three of shard
    13): the pack ranges acme..wayne, archives their 48 hours and leaves globex to its own
    run."""
    with session_scope(engine) as session:
        for tenant in ("acme", "globex", "wayne"):
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="t", enabled=True)
        register_recording(
            session,
            tenant_id="globex",
            conversation_id="g-c",
            session_id="g-s",
            recording_id="g-r",
            bucket=recordings_env["RECORDINGS_SOURCE_BUCKET"],
            object_key="tenants/globex/long.wav",
            started_at=day_hours(DAY)[2],
            duration_seconds=3 * 86_400.0,  # more than a pack holds
            audio_format="WAV",
            channels=1,
        )
    requests = nightly_run_requests(
        instance, ["acme", "globex", "wayne"], DAY, {"globex": 3 * 86_400.0}
    )
    assert [r.tags.get("recordings/tenant") for r in requests] == ["globex", None]
    pack = requests[1]
    assert pack.tags["recordings/stepped_over"] == "globex"
    with dg.execute_job(run_request_job(pack), instance=instance, tags=pack.tags) as result:
        assert result.success
        archived = _materializations(instance, result.run_id)
    assert sorted(archived) == sorted(
        archive_partition_key(tenant, hour)
        for tenant in ("acme", "wayne")
        for hour in day_hours(DAY)
    )


def test_one_materialize_day_archives_tenants_of_two_shards_each_on_its_shards_job(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    engine: sa.Engine,
) -> None:
    """acme (shard 13) and initech (shard 2): a run each, on its shard's job, each hour
    recorded under its tenant's shard key."""
    assert tenant_shard("acme") != tenant_shard("initech")
    with session_scope(engine) as session:
        for tenant in ("acme", "initech"):
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="t", enabled=True)
    outcomes = materialize_day(instance, DAY, ["acme", "initech"])
    assert sorted((o.tenant_id, o.success, o.hours_archived) for o in outcomes) == [
        ("acme", True, 24),
        ("initech", True, 24),
    ]
    for outcome in outcomes:
        run = instance.get_run_by_id(outcome.run_id)
        assert run is not None
        assert run.job_name == tenant_archives_job_name(outcome.tenant_id)
        keys = {archive_partition_key(outcome.tenant_id, hour) for hour in day_hours(DAY)}
        latest = instance.get_latest_storage_id_by_partition(
            archive_asset_key(outcome.tenant_id), dg.DagsterEventType.ASSET_MATERIALIZATION, keys
        )
        assert set(latest) == keys
        assert instance.get_dynamic_partitions(
            tenant_partitions_name(tenant_shard(outcome.tenant_id))
        ) == [outcome.tenant_id]
