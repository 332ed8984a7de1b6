"""Every kind of bad source recording in one hour, through the real job: the hour is archived,
each bad recording is listed with its reason in metadata.json, and Dagster shows them (the
hour's metadata and the day's `unarchivable_recordings` check)."""

import hashlib
import io
import json
import logging
import zipfile
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from minio import Minio

from recordings.catalog import ensure_tenant, register_recording, set_recording_settings
from recordings.db.engine import session_scope
from recordings.keys import archive_partition_key, day_hours, tenant_shard
from recordings_cli.synth import FORMATS, write_conversation
from recordings_dagster.assets import ARCHIVE_ASSETS
from recordings_dagster.definitions import defs
from recordings_dagster.jobs import HOURLY_ARCHIVES_JOBS
from recordings_dagster.resources import default_resources
from recordings_instance.archives import archive_asset_key
from tests.resilience.support import materializations, metadata_of, range_tags
from tests.support import DAY

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.resilience]

LIMIT = 4 * 1024 * 1024


def _job_with_the_environment_of_now() -> dg.JobDefinition:
    """acme's archive job with its resources read from the environment when the run starts: the
    job runs in this process (in-process executor), where `defs` read it at first import."""
    shard = tenant_shard("acme")
    job = HOURLY_ARCHIVES_JOBS[shard]
    return dg.Definitions(
        assets=[ARCHIVE_ASSETS[shard]], jobs=[job], resources=default_resources()
    ).resolve_job_def(job.name)


def test_every_kind_of_bad_source_is_listed_and_the_hour_is_still_archived(
    dagster_instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    engine: sa.Engine,
    s3_client: Minio,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECORDINGS_MAX_SOURCE_BYTES", str(LIMIT))
    source = recordings_env["RECORDINGS_SOURCE_BUCKET"]
    good = tmp_path / "good.wav"
    write_conversation(good, FORMATS["wav-pcm16"], 6.0, 16000, 1, seed=1)
    enormous = tmp_path / "enormous.wav"  # 60 s of 48 kHz stereo: 11.5 MB, over the limit
    write_conversation(enormous, FORMATS["wav-pcm16"], 60.0, 48000, 2, seed=2)
    whole = good.read_bytes()
    # Registered as `good`'s bytes, replaced in S3 by other audio of the same size afterwards.
    other = tmp_path / "other.wav"
    write_conversation(other, FORMATS["wav-pcm16"], 6.0, 16000, 1, seed=3)
    registered = {"replaced": (len(whole), hashlib.sha256(whole).hexdigest())}
    payloads = {
        "good": whole,
        "truncated": whole[: len(whole) // 2],  # cut off in transfer: header says 6 s
        "empty": b"",
        "corrupt": b"RIFF" + bytes(300),
        "unsupported": b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00" + bytes(400),
        "enormous": enormous.read_bytes(),
        "replaced": other.read_bytes(),
    }
    hour = day_hours(DAY)[11]
    with session_scope(engine) as session:
        ensure_tenant(session, "acme")
        set_recording_settings(session, "acme", changed_by="test", enabled=True)
        for minute, name in enumerate([*payloads, "missing"]):
            key = f"tenants/acme/c1/{name}.wav"
            if name in payloads:
                s3_client.put_object(source, key, io.BytesIO(payloads[name]), len(payloads[name]))
            register_recording(
                session,
                tenant_id="acme",
                conversation_id="acme-c1",
                session_id=f"acme-c1-{name}",
                recording_id=name,
                bucket=source,
                object_key=key,
                started_at=hour + timedelta(minutes=minute),
                duration_seconds=6.0,
                audio_format="WAV",
                channels=1,
                size_bytes=registered.get(name, (None, None))[0],
                sha256=registered.get(name, (None, None))[1],
            )

    with dg.execute_job(
        dg.reconstructable(_job_with_the_environment_of_now),
        instance=dagster_instance,
        tags=range_tags(dagster_instance, "acme", DAY, 11, 11),
    ) as result:
        assert result.success, "bad recordings never fail the hour"
        run_id = result.run_id
    warnings = [
        entry.user_message
        for entry in dagster_instance.all_logs(run_id)
        if entry.level == logging.WARNING and "not archivable" in entry.user_message
    ]
    partition = archive_partition_key("acme", hour)
    (record,) = materializations(dagster_instance)[partition]
    metadata = metadata_of(record)
    assert metadata["recording_count"] == 3  # good, replaced, what the truncated file holds
    assert metadata["truncated_recording_count"] == 1
    assert metadata["source_changed_recording_count"] == 1
    assert metadata["failed_recording_count"] == 5
    assert metadata["failure_reasons"] == {
        "missing": 1,
        "too_large": 1,
        "empty": 1,
        "corrupt": 1,
        "unsupported": 1,
    }
    table = str(metadata["failed_recordings"])
    for name, reason in [
        ("missing", "missing"),
        ("enormous", "too_large"),
        ("empty", "empty"),
        ("corrupt", "corrupt"),
        ("unsupported", "unsupported"),
        ("truncated", "truncated (archived)"),
        ("replaced", "source_changed (archived)"),
    ]:
        assert f"| {name} | acme-c1 | {reason} |" in table
    assert f"over the {LIMIT}-byte limit (RECORDINGS_MAX_SOURCE_BYTES)" in table
    assert len(warnings) == 1 and "5 not archivable" in warnings[0]

    response = s3_client.get_object(
        recordings_env["RECORDINGS_ARCHIVE_BUCKET"], str(metadata["object_key"])
    )
    archive = zipfile.ZipFile(io.BytesIO(response.read()))
    response.close()
    response.release_conn()
    assert archive.testzip() is None
    inside = json.loads(archive.read("metadata.json"))
    listed = {f["recordingId"]: f["reason"] for f in inside["failedRecordings"]}
    assert listed == {
        "missing": "missing",
        "enormous": "too_large",
        "empty": "empty",
        "corrupt": "corrupt",
        "unsupported": "unsupported",
    }
    archived = {
        r["recordingId"]: r for c in inside["conversations"] for s in c["sessions"]
        for r in s["recordings"]
    }  # fmt: skip
    assert sorted(archived) == ["good", "replaced", "truncated"]
    assert archived["replaced"]["sourceChanged"]["readSha256"] == (
        hashlib.sha256(other.read_bytes()).hexdigest()
    )
    assert archived["good"]["sourceChanged"] is None
    assert archived["truncated"]["source"]["truncated"] is True
    assert archived["good"]["source"]["truncated"] is False
    assert sum(1 for name in archive.namelist() if name.endswith(".opus")) == 3

    checks = defs.resolve_job_def("integrity_checks_job").execute_in_process(
        instance=dagster_instance, tags={"recordings/utc_day": DAY.isoformat()}
    )
    evaluation = next(
        e.event_specific_data
        for e in checks.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.event_specific_data.check_name == "unarchivable_recordings"  # type: ignore[union-attr]
        and e.event_specific_data.asset_key == archive_asset_key("acme")  # type: ignore[union-attr]
    )
    assert evaluation is not None
    assert not evaluation.passed  # type: ignore[union-attr]
    assert evaluation.metadata["truncated_recordings"].value == 1  # type: ignore[union-attr]
    assert evaluation.metadata["source_changed_recordings"].value == 1  # type: ignore[union-attr]
    assert "1 archived from a source object that differs" in str(evaluation.description)  # type: ignore[union-attr]
    reasons = evaluation.metadata["reasons"].value  # type: ignore[union-attr]
    assert reasons == {
        "missing": 1,
        "too_large": 1,
        "empty": 1,
        "corrupt": 1,
        "unsupported": 1,
    }
