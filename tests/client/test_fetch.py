"""The client fetches whole days against the real API and S3 server: paced by the limit,
verified, resumable, and refusing what is not the archive asked for."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from minio import Minio
from minio.commonconfig import CopySource

from recordings.catalog import register_recording
from recordings.db.engine import session_scope
from recordings.db.models import DownloadAuditEntry
from recordings.keys import archive_key, archive_partition_key, day_hours
from recordings_client import ArchivesApi, fetch_days
from recordings_client.fetch import (
    ALREADY,
    FETCHED,
    MANIFEST,
    PENDING,
    REJECTED_OUTCOME,
    SKIPPED,
    archive_path,
    file_digest,
)
from recordings_dagster.execution import run_request_job
from recordings_dagster.resources import DatabaseResource
from recordings_dagster.sensors import late_recordings_sensor
from recordings_instance.archives import archive_asset_key, latest_archive_records, record_metadata
from tests.client.conftest import HOURS_WITH_RECORDINGS, ArchivedDay, ServeApi, tenant_token

# The client is what is tested here; the PostgreSQL pass has the limit and the audit on its own.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.sqlite_run_only]


def _granted(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return (
            connection.scalar(
                sa.select(sa.func.count())
                .select_from(DownloadAuditEntry)
                .where(DownloadAuditEntry.outcome == "granted")
            )
            or 0
        )


def _outcomes(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(sa.select(DownloadAuditEntry.outcome)))


def _manifest(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (folder / MANIFEST).read_text().splitlines()]


def test_a_full_day_across_the_limit_is_fetched_unattended_verified_and_never_again(
    archived_day: ArchivedDay, serve_api: ServeApi, engine: sa.Engine, tmp_path: Path
) -> None:
    base = serve_api(download_limit=8, download_window=timedelta(seconds=2))
    day = archived_day.day.isoformat()
    folder = tmp_path / "archives"
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    with ArchivesApi(base, tenant_token()) as api:
        report = fetch_days(api, [day], folder, sleep=sleep)

    assert report.count(FETCHED) == 24
    assert report.downloads == 24 == _granted(engine)
    assert "rate_limited" in _outcomes(engine)  # the limit was met mid-day...
    assert slept and all(0 < seconds <= 2 for seconds in slept)  # ...and waited out, as told
    entries = _manifest(folder)
    assert sorted(int(str(e["hour"])) for e in entries) == list(range(24))
    for entry in entries:
        path = folder / str(entry["file"])
        assert path == archive_path(folder, day, int(str(entry["hour"])))
        assert file_digest(path) == (entry["sizeBytes"], entry["sha256"])
        assert entry["tenantId"] == "acme" and entry["utcDay"] == day
        assert entry["recordings"] == (1 if entry["hour"] in HOURS_WITH_RECORDINGS else 0)
        assert str(entry["verifiedAt"]).endswith("Z")
    assert not list(folder.rglob("*.part"))

    with ArchivesApi(base, tenant_token()) as api:
        again = fetch_days(api, [day], folder)
    assert again.count(ALREADY) == 24 and again.downloads == 0
    assert _granted(engine) == 24  # a verified file costs nothing


def test_links_that_expire_while_the_client_waits_are_renewed(
    archived_day: ArchivedDay, serve_api: ServeApi, tmp_path: Path
) -> None:
    base = serve_api(
        download_limit=6, download_window=timedelta(seconds=3), link_ttl=timedelta(seconds=1)
    )
    with ArchivesApi(base, tenant_token()) as api:
        report = fetch_days(api, [archived_day.day.isoformat()], tmp_path)
    assert report.count(FETCHED) == 24
    assert report.links_refreshed >= 1  # each wait outlived the links it held
    assert report.downloads == 24


def test_a_job_that_may_not_wait_an_hour_stops_at_the_limit_and_resumes_later(
    archived_day: ArchivedDay, serve_api: ServeApi, tmp_path: Path
) -> None:
    base = serve_api(download_limit=3, download_window=timedelta(hours=1))
    day = archived_day.day.isoformat()

    def never(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s past max_wait")

    with ArchivesApi(base, tenant_token()) as api:
        report = fetch_days(api, [day], tmp_path, max_wait=60, sleep=never)
    assert report.count(FETCHED) == 3 and report.downloads == 3
    assert report.count(PENDING) == 21  # no request was made for them after the 429
    assert "beyond the 60 s allowed" in report.outcomes[-1].detail
    assert report.stopped_waiting and report.waited_seconds == 0
    assert len(_manifest(tmp_path)) == 3


def test_empty_hours_are_skipped_when_asked_and_cost_no_download(
    archived_day: ArchivedDay, serve_api: ServeApi, engine: sa.Engine, tmp_path: Path
) -> None:
    base = serve_api()
    with ArchivesApi(base, tenant_token()) as api:
        report = fetch_days(api, [archived_day.day.isoformat()], tmp_path, skip_empty=True)
    assert [o.hour for o in report.outcomes if o.outcome == FETCHED] == list(HOURS_WITH_RECORDINGS)
    assert report.count(SKIPPED) == 22
    assert report.downloads == _granted(engine) == len(HOURS_WITH_RECORDINGS)


def _cli(base: str, day: str, dest: Path, token: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "RECORDINGS_TOKEN": token}
    return subprocess.Popen(
        [sys.executable, "-m", "recordings_client.cli", "fetch", "--api", base, "--day", day,
         "--dest", str(dest), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_a_tampered_archive_is_rejected_kept_aside_and_the_exit_code_says_so(
    archived_day: ArchivedDay, serve_api: ServeApi, s3_client: Minio, tmp_path: Path
) -> None:
    bucket = os.environ["RECORDINGS_ARCHIVE_BUCKET"]
    key = archive_key("acme", day_hours(archived_day.day)[5])
    original = s3_client.get_object(bucket, key).read()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0xFF
    s3_client.put_object(bucket, key, __import__("io").BytesIO(bytes(tampered)), len(tampered))
    base = serve_api()
    day = archived_day.day.isoformat()

    process = _cli(base, day, tmp_path, tenant_token())
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 4, stderr
    assert "1 rejected" in stdout and "23 fetched" in stdout
    assert f"{day} 05:00 rejected: SHA-256" in stderr  # which file, and why
    (kept,) = (tmp_path / "rejected").glob(f"{day}-05-*.zip")
    assert kept.read_bytes() == bytes(tampered)  # kept aside, not deleted
    assert "where the links answer said" in kept.with_suffix(".why.txt").read_text()
    assert not archive_path(tmp_path, day, 5).exists()
    assert 5 not in [entry["hour"] for entry in _manifest(tmp_path)]


def test_an_archive_of_another_tenant_is_refused_even_when_its_hash_was_vouched_for(
    archived_day: ArchivedDay, serve_api: ServeApi, s3_client: Minio, tmp_path: Path
) -> None:
    """A catalogue mix-up: acme's hour 9 is recorded with globex's archive (its hash and size)
    and holds globex's bytes. Size and SHA-256 agree with the links answer; metadata.json does
    not name acme, and that refuses it."""
    instance = archived_day.instance
    hour = day_hours(archived_day.day)[9]
    bucket = os.environ["RECORDINGS_ARCHIVE_BUCKET"]
    foreign = s3_client.get_object(bucket, archive_key("globex", hour)).read()
    s3_client.put_object(
        bucket, archive_key("acme", hour), __import__("io").BytesIO(foreign), len(foreign)
    )
    (record,) = latest_archive_records(instance, [archive_partition_key("globex", hour)]).values()
    metadata = dict(record_metadata(record))
    metadata["tenant_id"] = "acme"
    metadata["object_key"] = archive_key("acme", hour)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=archive_asset_key("acme"),
            partition=archive_partition_key("acme", hour),
            metadata=metadata,  # type: ignore[arg-type]
        )
    )
    base = serve_api()
    with ArchivesApi(base, tenant_token()) as api:
        report = fetch_days(api, [archived_day.day.isoformat()], tmp_path)
    (rejected,) = [o for o in report.outcomes if o.outcome == REJECTED_OUTCOME]
    assert rejected.hour == 9
    assert "names tenant 'globex'" in rejected.detail
    assert "asked for tenant 'acme'" in rejected.detail
    assert report.count(FETCHED) == 23


def test_a_fetch_killed_mid_day_resumes_without_fetching_a_verified_file_again(
    archived_day: ArchivedDay, serve_api: ServeApi, tmp_path: Path
) -> None:
    base = serve_api(download_limit=4, download_window=timedelta(seconds=2))
    day = archived_day.day.isoformat()
    first = _cli(base, day, tmp_path, tenant_token())
    deadline = time.monotonic() + 120
    while not (tmp_path / MANIFEST).exists() or len(_manifest(tmp_path)) < 6:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    finished = {e["file"] for e in _manifest(tmp_path)}
    assert 6 <= len(finished) < 24

    second = _cli(base, day, tmp_path, tenant_token())
    stdout, stderr = second.communicate(timeout=180)

    assert second.returncode == 0, stderr
    # Verified files were not fetched again (a file renamed but not yet listed is adopted):
    # the second run spent one download per hour it fetched, and fetched only missing hours.
    # (Read from its own summary: a request the killed client had sent may still be granted
    # by the server after the kill.)
    spent = re.search(r"(?:(\d+) fetched, )?(\d+) already_verified; (\d+) downloads spent", stdout)
    assert spent is not None, stdout
    fetched, already, downloads = (int(n or 0) for n in spent.groups())
    assert downloads == fetched <= 24 - len(finished)
    assert fetched + already == 24 and already >= len(finished)
    entries = {e["file"]: e for e in _manifest(tmp_path)}
    assert len(entries) == 24 and finished <= set(entries)
    for relative, entry in entries.items():
        assert file_digest(tmp_path / str(relative)) == (entry["sizeBytes"], entry["sha256"])
        with zipfile.ZipFile(tmp_path / str(relative)) as archive:
            assert archive.testzip() is None
    assert not list(tmp_path.rglob("*.part"))


def test_a_token_without_the_read_permission_exits_1_saying_why(
    archived_day: ArchivedDay, serve_api: ServeApi, tmp_path: Path
) -> None:
    process = _cli(
        serve_api(), archived_day.day.isoformat(), tmp_path, tenant_token(permissions=[])
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "permission_missing" in stderr and "Read permission" in stderr


def test_an_hour_archived_again_is_fetched_again_and_the_old_file_kept_as_superseded(
    archived_day: ArchivedDay,
    serve_api: ServeApi,
    engine: sa.Engine,
    s3_client: Minio,
    recordings_env: dict[str, str],
    tmp_path: Path,
) -> None:
    base = serve_api()
    day = archived_day.day.isoformat()
    with ArchivesApi(base, tenant_token()) as api:
        assert fetch_days(api, [day], tmp_path).count(FETCHED) == 24
    first = archive_path(tmp_path, day, 9).read_bytes()

    # A late recording in hour 9, re-archived as the late-recordings sensor does it.
    source = recordings_env["RECORDINGS_SOURCE_BUCKET"]
    s3_client.copy_object(
        source, "tenants/acme/late.wav", CopySource(source, "tenants/acme/call-9.wav")
    )
    with session_scope(engine) as session:
        register_recording(
            session,
            tenant_id="acme",
            conversation_id="acme-late",
            session_id="acme-late-s",
            recording_id="acme-late-r",
            bucket=source,
            object_key="tenants/acme/late.wav",
            started_at=day_hours(archived_day.day)[9] + timedelta(minutes=40),
            duration_seconds=2.0,
            audio_format="WAV",
            channels=1,
        )
    with dg.build_sensor_context(
        instance=archived_day.instance,
        resources={"database": DatabaseResource(url=recordings_env["RECORDINGS_DATABASE_URL"])},
    ) as context:
        late = late_recordings_sensor(context)
    assert isinstance(late, dg.SensorResult)
    (request,) = late.run_requests or []
    with dg.execute_job(
        run_request_job(request),
        instance=archived_day.instance,
        tags={**request.tags, "dagster/partition": str(request.partition_key)},
    ) as result:
        assert result.success

    with ArchivesApi(base, tenant_token()) as api:
        report = fetch_days(api, [day], tmp_path)
    assert [o.hour for o in report.outcomes if o.outcome == FETCHED] == [9]
    assert report.count(ALREADY) == 23 and report.downloads == 1
    (kept,) = (tmp_path / "superseded").glob(f"{day}-09-*.zip")
    assert kept.read_bytes() == first
    assert "archived this hour again" in kept.with_suffix(".why.txt").read_text()
    newest = [e for e in _manifest(tmp_path) if e["hour"] == 9][-1]
    assert newest["recordings"] == 2
    assert file_digest(archive_path(tmp_path, day, 9)) == (newest["sizeBytes"], newest["sha256"])
