"""The day's asset checks on real pipeline output: complete, intact, unarchivable recordings;
and that each fails, with what is wrong, when the archives are not what was recorded. Every
shard's asset has the checks, each over its own tenants (acme and globex share shard 13)."""

import io
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from minio import Minio

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import session_scope
from recordings.keys import SHARD_COUNT, archive_key, archive_partition_key, day_hours
from recordings_dagster.definitions import defs
from recordings_dagster.schedules import integrity_checks_schedule
from recordings_instance.archives import archive_asset_key
from tests.dagster.test_pipeline import _run_day, _seed
from tests.support import DAY

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _check_results(instance: dg.DagsterInstance) -> dict[str, dg.AssetCheckEvaluation]:
    """The checks of acme's shard, by name; those of the other shards (no tenant) pass."""
    result = defs.resolve_job_def("integrity_checks_job").execute_in_process(
        instance=instance, tags={"recordings/utc_day": DAY.isoformat()}
    )
    assert result.success  # a failed check is a result, not a failed run
    evaluations = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    assert all(isinstance(e, dg.AssetCheckEvaluation) for e in evaluations)
    assert len(evaluations) == 3 * SHARD_COUNT
    shard = archive_asset_key("acme")
    others = [e for e in evaluations if e.asset_key != shard]  # type: ignore[union-attr]
    assert all(e.passed for e in others)  # type: ignore[union-attr]
    return {e.check_name: e for e in evaluations if e.asset_key == shard}  # type: ignore[union-attr]


def test_checks_pass_warn_and_fail_for_the_right_reasons(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    engine: sa.Engine,
    s3_client: Minio,
    tmp_path: Path,
) -> None:
    _seed(engine, s3_client, recordings_env["RECORDINGS_SOURCE_BUCKET"], tmp_path, DAY, "acme")
    assert _run_day(instance, "acme", DAY).success

    checks = _check_results(instance)
    assert checks["day_complete"].passed
    assert checks["archives_intact"].passed
    assert checks["archives_intact"].metadata["archives_checked"].value == 24
    unarchivable = checks["unarchivable_recordings"]
    assert not unarchivable.passed and unarchivable.severity == dg.AssetCheckSeverity.WARN
    assert unarchivable.metadata["unarchivable_recordings"].value == 1
    assert unarchivable.metadata["reasons"].value == {"missing": 1}

    # Another enabled tenant without a single archive; one of acme's archives altered in S3.
    with session_scope(engine) as session:
        ensure_tenant(session, "globex")
        set_recording_settings(session, "globex", changed_by="test", enabled=True)
    bucket = recordings_env["RECORDINGS_ARCHIVE_BUCKET"]
    key = archive_key("acme", day_hours(DAY)[3])
    s3_client.put_object(bucket, key, io.BytesIO(b"not the archive"), 15)

    checks = _check_results(instance)
    complete = checks["day_complete"]
    assert not complete.passed and complete.severity == dg.AssetCheckSeverity.ERROR
    assert complete.metadata["missing_hours"].value == 24
    assert list(complete.metadata["missing"].value) == ["globex"]
    intact = checks["archives_intact"]
    assert not intact.passed
    problems = intact.metadata["problems"].value
    assert list(problems) == [archive_partition_key("acme", day_hours(DAY)[3])]
    assert any("SHA-256" in p for p in problems[archive_partition_key("acme", day_hours(DAY)[3])])


def test_the_checks_schedule_judges_yesterday(instance: dg.DagsterInstance) -> None:
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 3, 20, 6, tzinfo=UTC)
    )
    request = integrity_checks_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["recordings/utc_day"] == "2026-03-19"
