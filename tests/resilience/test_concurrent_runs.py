"""Two runs of the same hour at once (a backfill overlapping the nightly run): one correct
archive, and the evidence Dagster holds last is the archive at the key, never a mix."""

from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from minio import Minio

from recordings.db.models import ArchiveHourLease
from recordings.keys import archive_partition_key, day_hours, tenant_archive_prefix
from tests.resilience.support import (
    ArchiveWatcher,
    assert_latest_evidence_matches_objects,
    materializations,
    metadata_of,
    range_tags,
    run_id_of,
    seed_hours,
    start_run_process,
    wait_for,
)
from tests.support import DAY

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.resilience]


def _lease_holder(engine: sa.Engine, hour: datetime) -> str | None:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(ArchiveHourLease.holder).where(ArchiveHourLease.hour == hour)
        ).scalar()


def test_two_runs_of_one_hour_take_turns_and_leave_one_consistent_archive(
    dagster_instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    engine: sa.Engine,
    s3_client: Minio,
    tmp_path: Path,
) -> None:
    source = recordings_env["RECORDINGS_SOURCE_BUCKET"]
    archive_bucket = recordings_env["RECORDINGS_ARCHIVE_BUCKET"]
    # The nightly run covers hours 4 and 5 and builds them together; hour 4 is long, so the
    # nightly run holds hour 5 (built, not yet recorded: hours are recorded in order) while
    # the backfill of hour 5 alone starts.
    seed_hours(
        engine, s3_client, source, tmp_path, tenant="acme", day=DAY, hours=[4], per_hour=8,
        seconds=240.0, sample_rate=16000,
    )  # fmt: skip
    seed_hours(
        engine, s3_client, source, tmp_path, tenant="acme", day=DAY, hours=[5], per_hour=2,
        seconds=30.0, sample_rate=16000,
    )  # fmt: skip
    partition = archive_partition_key("acme", day_hours(DAY)[5])
    with ArchiveWatcher(s3_client, archive_bucket, tenant_archive_prefix("acme")) as watcher:
        first, first_log = start_run_process(
            dagster_instance, range_tags(dagster_instance, "acme", DAY, 4, 5), tmp_path, "nightly"
        )
        first_run = run_id_of(first_log)
        # The second run (the backfill) starts while the first is building the hour.
        wait_for(
            lambda: _lease_holder(engine, day_hours(DAY)[5]) == first_run,
            120,
            "the first run's lease",
            (first, first_log),
        )
        second, second_log = start_run_process(
            dagster_instance, range_tags(dagster_instance, "acme", DAY, 5, 5), tmp_path, "backfill"
        )
        second_run = run_id_of(second_log)
        assert first.wait(timeout=300) == 0, first_log.read_text()
        assert second.wait(timeout=300) == 0, second_log.read_text()

    records = materializations(dagster_instance)[partition]
    assert [r.run_id for r in records] == [first_run, second_run]
    # The backfill waited: it selected its recordings only after the first run had recorded
    # its archive, so the two uploads never overlapped.
    first_recorded = records[0].timestamp
    second_selected = datetime.fromisoformat(str(metadata_of(records[1])["generated_at"]))
    assert second_selected.timestamp() >= first_recorded
    waits = [
        record.event_log_entry.user_message
        for record in dagster_instance.get_records_for_run(second_run).records
        if "is being archived by run" in record.event_log_entry.user_message
    ]
    assert waits == [
        f"{partition} is being archived by run {first_run}; waiting for it to finish, then "
        "this run archives the hour again"
    ]
    # The object at the key is the one the latest materialization describes.
    assert_latest_evidence_matches_objects(
        dagster_instance, s3_client, archive_bucket, [partition], tmp_path
    )
    assert metadata_of(records[1])["replaces_sha256"] == metadata_of(records[0])["sha256"]
    # Every version ever listed at the key was a complete archive; no lease is left behind.
    assert watcher.seen and all(seen.complete for seen in watcher.seen.values())
    with engine.connect() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(ArchiveHourLease)).scalar()
            == 0
        )
