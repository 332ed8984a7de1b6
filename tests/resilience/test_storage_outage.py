"""The S3 server dies in the middle of a tenant-day run, then comes back.

The hours in flight and after fail with a message that names the object store; the run fails
and the daemon would retry it; the retry archives exactly the hours that failed. In the end
every hour is archived exactly once, and nothing but complete archives was ever visible.
"""

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from minio import Minio

from recordings.keys import archive_partition_key, day_hours, tenant_archive_prefix
from recordings_cli.local_s3 import LocalS3Server
from recordings_dagster.execution import run_failure_message
from tests.resilience.support import (
    ArchiveWatcher,
    assert_latest_evidence_matches_objects,
    materializations,
    range_tags,
    retry_like_the_daemon,
    run_id_of,
    seed_hours,
    start_run_process,
    wait_for,
    wait_until_serving,
)
from tests.support import DAY

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.resilience,
    pytest.mark.run_retries,
]


def test_an_s3_outage_mid_run_is_retried_and_every_hour_lands_exactly_once(
    dagster_instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    own_s3: tuple[LocalS3Server, Minio],
    engine: sa.Engine,
    tmp_path: Path,
) -> None:
    server, client = own_s3
    archive_bucket = recordings_env["RECORDINGS_ARCHIVE_BUCKET"]
    seed_hours(
        engine, client, recordings_env["RECORDINGS_SOURCE_BUCKET"], tmp_path, tenant="acme",
        day=DAY, hours=range(24), per_hour=2, seconds=60.0, sample_rate=16000,
    )  # fmt: skip
    partitions = [archive_partition_key("acme", hour) for hour in day_hours(DAY)]

    with ArchiveWatcher(client, archive_bucket, tenant_archive_prefix("acme")) as watcher:
        worker = start_run_process(dagster_instance, range_tags(dagster_instance, "acme", DAY),
                                   tmp_path, "nightly")  # fmt: skip
        first_run = run_id_of(worker[1])
        wait_for(
            lambda: len(materializations(dagster_instance, [first_run])) >= 3,
            300,
            "three archived hours",
            worker,
        )
        server.stop(timeout=0)  # SIGKILL: the server vanishes mid-upload, mid-download
        assert worker[0].wait(timeout=600) == 1, worker[1].read_text()
        first_pass = materializations(dagster_instance, [first_run])
        assert 3 <= len(first_pass) < 24

        message = run_failure_message(dagster_instance, first_run) or ""
        assert f"{24 - len(first_pass)} of 24 hours failed" in message
        assert "the object store is unreachable or failing" in message
        assert "RECORDINGS_S3_ENDPOINT" in message
        assert recordings_env["RECORDINGS_S3_SECRET_KEY"] not in message

        server.start()
        wait_until_serving(client, archive_bucket)
        retry = retry_like_the_daemon(dagster_instance, first_run)
        assert retry.status == dg.DagsterRunStatus.SUCCESS, run_failure_message(
            dagster_instance, retry.run_id
        )
        retry_run = retry.run_id
        wait_for(lambda: watcher.polls > 0 and len(watcher.seen) >= 24, 60, "every archive")

    retried = materializations(dagster_instance, [retry_run])
    assert set(retried) == set(partitions) - set(first_pass), "the retry redid only the failures"
    every = materializations(dagster_instance)
    assert sorted(every) == sorted(partitions)
    assert all(len(records) == 1 for records in every.values()), "each hour archived once"
    assert_latest_evidence_matches_objects(
        dagster_instance, client, archive_bucket, partitions, tmp_path
    )
    # What the watcher saw while the server died and came back: only complete archives, one
    # version per hour (nothing was uploaded twice).
    assert all(seen.complete for seen in watcher.seen.values()), [
        s.problem for s in watcher.seen.values() if not s.complete
    ]
    assert sorted(key for key, _ in watcher.seen) == sorted(
        str(r[-1].asset_materialization.metadata["object_key"].value)  # type: ignore[union-attr]
        for r in every.values()
    )
    assert watcher.errors > 0, "the watcher must have seen the outage too"
    assert not client._list_multipart_uploads(archive_bucket).uploads
