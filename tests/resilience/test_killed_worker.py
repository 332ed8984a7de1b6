"""The run worker is killed (SIGKILL) halfway through an hour, in the middle of its upload.

Nothing is visible at the archive key; the incomplete multipart upload stays behind (a killed
process cannot abort it) until the daily cleanup aborts it; the next attempt, once run
monitoring has marked the dead run failed, takes the hour over and writes a correct archive.
"""

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from minio import Minio
from minio.error import S3Error

from recordings.db.models import ArchiveHourLease
from recordings.keys import archive_key, archive_partition_key, day_hours
from recordings.storage import abort_stale_uploads
from recordings_dagster.ops import STALE_UPLOAD_AGE
from recordings_dagster.resources import ArchiveBuildResource, DatabaseResource
from recordings_dagster.sensors import stalled_archive_runs_sensor
from tests.resilience.support import (
    assert_latest_evidence_matches_objects,
    materializations,
    range_tags,
    retry_like_the_daemon,
    run_id_of,
    seed_hours,
    start_run_process,
    wait_for,
)
from tests.support import DAY

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.resilience,
    pytest.mark.run_retries,
]


def test_a_worker_killed_mid_upload_leaves_nothing_visible_and_the_next_attempt_is_correct(
    dagster_instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    engine: sa.Engine,
    s3_client: Minio,
    tmp_path: Path,
) -> None:
    archive_bucket = recordings_env["RECORDINGS_ARCHIVE_BUCKET"]
    # Over 16 MiB of Opus (one upload part), so the upload is a multipart one: 4 x 25 minutes.
    seed_hours(
        engine, s3_client, recordings_env["RECORDINGS_SOURCE_BUCKET"], tmp_path, tenant="acme",
        day=DAY, hours=[7], per_hour=4, seconds=1500.0, sample_rate=8000,
    )  # fmt: skip
    hour = day_hours(DAY)[7]
    key = archive_key("acme", hour)

    def upload_in_progress() -> bool:
        uploads = s3_client._list_multipart_uploads(archive_bucket, prefix=key).uploads
        return any(upload.object_name == key for upload in uploads)

    worker = start_run_process(
        dagster_instance, range_tags(dagster_instance, "acme", DAY, 7, 7), tmp_path, "killed"
    )
    killed_run = run_id_of(worker[1])
    wait_for(upload_in_progress, 600, "the archive's multipart upload to start", worker)
    os.killpg(worker[0].pid, signal.SIGKILL)  # the worker and its step process, at once
    worker[0].wait(timeout=30)

    with pytest.raises(S3Error, match="NoSuchKey"):
        s3_client.stat_object(archive_bucket, key)
    assert upload_in_progress(), "a killed worker cannot abort its upload"
    assert materializations(dagster_instance, [killed_run]) == {}
    with engine.connect() as connection:
        holder = connection.execute(sa.select(ArchiveHourLease.holder)).scalar()
    assert holder == killed_run, "the dead run still holds the hour"

    # Dagster still shows the run started (the default run launcher cannot check a worker's
    # health). The stalled-runs sensor sees its leases go unrefreshed at two evaluations in a
    # row (lease lifetime 1 s here, 300 s in production) and fails it; the daemon then retries
    # it, and the retry takes the dead run's lease over at once (its holder has finished).
    run = dagster_instance.get_run_by_id(killed_run)
    assert run is not None and run.status == dg.DagsterRunStatus.STARTED
    resources = {
        "database": DatabaseResource(url=recordings_env["RECORDINGS_DATABASE_URL"]),
        "archive_build": ArchiveBuildResource(hour_lease_seconds=1),
    }
    time.sleep(1.5)
    with dg.build_sensor_context(instance=dagster_instance, resources=resources) as context:
        first_look = stalled_archive_runs_sensor(context)
        assert "1 silent lease holder" in str(first_look.skip_message)  # type: ignore[union-attr]
        second_look = stalled_archive_runs_sensor(context)
    assert str(second_look.skip_message) == f"failed 1 stalled run(s): {killed_run}"  # type: ignore[union-attr]
    run = dagster_instance.get_run_by_id(killed_run)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
    retry = retry_like_the_daemon(dagster_instance, killed_run)
    assert retry.status == dg.DagsterRunStatus.SUCCESS
    retry_run = retry.run_id
    partition = archive_partition_key("acme", hour)
    assert list(materializations(dagster_instance)) == [partition]
    assert [r.run_id for r in materializations(dagster_instance)[partition]] == [retry_run]
    assert_latest_evidence_matches_objects(
        dagster_instance, s3_client, archive_bucket, [partition], tmp_path
    )

    # The orphan is still there (the retry's upload completed, the dead one's did not) until
    # the daily retention pass aborts uploads older than a day.
    assert upload_in_progress()
    assert (
        abort_stale_uploads(
            s3_client, archive_bucket, "tenants/", older_than=STALE_UPLOAD_AGE,
            now=datetime.now(UTC),
        )
        == []
    ), "an upload younger than a day may still be in progress: it is kept"  # fmt: skip
    aborted = abort_stale_uploads(
        s3_client, archive_bucket, "tenants/", older_than=STALE_UPLOAD_AGE,
        now=datetime.now(UTC) + STALE_UPLOAD_AGE + timedelta(minutes=1),
    )  # fmt: skip
    assert [upload.key for upload in aborted] == [key]
    assert not upload_in_progress()
    assert_latest_evidence_matches_objects(
        dagster_instance, s3_client, archive_bucket, [partition], tmp_path
    )
