"""What the fault scenarios share: seeding real audio, runs in their own processes, and a
watcher that downloads every archive object the moment it becomes visible.

Runs are started the way a run worker runs them: a separate Python process executing the
tenant's shard job (`hourly_archives_shard_13` for acme) on the test's Dagster instance (passed
by reference, as Dagster passes it to its own step processes), so a test can kill it, and two
of them can overlap.
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry
from dagster._serdes import serialize_value
from minio import Minio

from recordings.archive.verify import verify_archive
from recordings.catalog import ensure_tenant, register_recording, set_recording_settings
from recordings.db.engine import session_scope
from recordings.keys import SHARD_COUNT, archive_partition_key, day_hours, parse_archive_key
from recordings_cli.synth import FORMATS, write_conversation
from recordings_dagster.execution import reconstructable_archives_job
from recordings_dagster.schedules import nightly_run_requests
from recordings_dagster.tags import RANGE_END_TAG, RANGE_START_TAG
from recordings_instance.archives import shard_asset_key

REPO_ROOT = Path(__file__).resolve().parents[2]


def seed_hours(
    engine: sa.Engine,
    client: Minio,
    bucket: str,
    folder: Path,
    *,
    tenant: str,
    day: date,
    hours: Sequence[int],
    per_hour: int = 1,
    seconds: float = 4.0,
    sample_rate: int = 8000,
) -> int:
    """Register `per_hour` real WAV recordings in each of `hours`; return how many."""
    count = 0
    # One synthetic conversation, stored under a key per recording: seeding stays cheap.
    path = folder / f"{tenant}-{seconds:g}s-{sample_rate}.wav"
    if not path.exists():
        write_conversation(path, FORMATS["wav-pcm16"], seconds, sample_rate, 1, seed=7)
    with session_scope(engine) as session:
        ensure_tenant(session, tenant)
        set_recording_settings(session, tenant, changed_by="test", enabled=True)
        for hour_index in hours:
            start = day_hours(day)[hour_index]
            for n in range(per_hour):
                recording = f"{tenant}-h{hour_index:02d}-r{n}"
                key = f"tenants/{tenant}/{recording}.wav"
                client.fput_object(bucket, key, str(path))
                register_recording(
                    session,
                    tenant_id=tenant,
                    conversation_id=f"{tenant}-c{hour_index}",
                    session_id=f"{tenant}-c{hour_index}-s{n}",
                    recording_id=recording,
                    bucket=bucket,
                    object_key=key,
                    started_at=start + timedelta(minutes=n % 60),
                    duration_seconds=seconds,
                    audio_format="WAV",
                    channels=1,
                    sample_rate=sample_rate,
                )
                count += 1
    return count


def range_tags(
    instance: dg.DagsterInstance, tenant: str, day: date, first: int = 0, last: int = 23
) -> dict[str, str]:
    """The tags of a ranged run over hours `first..last` of a tenant's day (the schedule's
    shape for 0..23; a backfill's for a narrower range), the tenant registered as a partition
    the way the schedule registers it."""
    nightly_run_requests(instance, [tenant], day)
    hours = day_hours(day)
    return {
        RANGE_START_TAG: archive_partition_key(tenant, hours[first]),
        RANGE_END_TAG: archive_partition_key(tenant, hours[last]),
        "recordings/tenant": tenant,
        "recordings/utc_day": day.isoformat(),
    }


def start_run_process(
    instance: dg.DagsterInstance, tags: dict[str, str], folder: Path, name: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a run of the tenant's archive job in its own process group; return it and its log.

    The process prints `run_id=<id>` first, then executes the run in-process (one process: the
    worker a test kills is the one doing the work)."""
    ref = folder / f"{name}.instance.json"
    ref.write_text(serialize_value(instance.get_ref()))
    log = folder / f"{name}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.resilience.run_worker", str(ref), json.dumps(tags)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, log


def retry_like_the_daemon(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    """Re-execute a failed run the way the daemon's run retries do (from failure, with the
    parent's tags and the next `dagster/retry_number`), after checking that the daemon would
    retry it; return the retry run."""
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
    assert should_retry(run, instance), "the daemon must retry this run"
    retry_number = int(run.tags.get("dagster/retry_number", "0")) + 1
    with dg.execute_job(
        reconstructable_archives_job(run.job_name),
        instance=instance,
        reexecution_options=dg.ReexecutionOptions.from_failure(run_id, instance),
        tags={**run.tags, "dagster/retry_number": str(retry_number)},
    ) as result:
        retry = instance.get_run_by_id(result.run_id)
    assert retry is not None
    return retry


def wait_until_serving(client: Minio, bucket: str, timeout: float = 120.0) -> None:
    """Wait until a restarted S3 server stores and serves objects again, not only answers.

    SeaweedFS answers a bucket listing (what `LocalS3Server.start` waits for) a moment before
    its volumes take writes again under load; the outage tests are about the outage they
    cause, not that moment.
    """
    probe = b"the server is back"
    deadline = time.monotonic() + timeout
    problem = ""
    while time.monotonic() < deadline:
        try:
            client.put_object(bucket, "probe/back", io.BytesIO(probe), len(probe))
            response = client.get_object(bucket, "probe/back")
            try:
                if response.read() == probe:
                    client.remove_object(bucket, "probe/back")
                    return
            finally:
                response.close()
                response.release_conn()
        except Exception as exc:  # any failure means "not back yet"
            problem = f"{type(exc).__name__}: {exc}"
        time.sleep(0.5)
    raise AssertionError(f"the S3 server did not serve objects within {timeout:.0f} s: {problem}")


def run_id_of(log: Path, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("run_id="):
                return line.removeprefix("run_id=").strip()
        time.sleep(0.1)
    raise AssertionError(f"the run process printed no run id; its log:\n{log.read_text()}")


def materializations(
    instance: dg.DagsterInstance, run_ids: Sequence[str] | None = None
) -> dict[str, list[dg.EventLogRecord]]:
    """Every archive materialization record of every shard (oldest first), by partition; of
    `run_ids` only if given."""
    records = [
        record
        for shard in range(SHARD_COUNT)
        for record in instance.fetch_materializations(shard_asset_key(shard), limit=10_000).records
    ]
    out: dict[str, list[dg.EventLogRecord]] = {}
    for record in sorted(records, key=lambda r: r.storage_id):
        if run_ids is not None and record.run_id not in run_ids:
            continue
        assert record.partition_key is not None
        out.setdefault(record.partition_key, []).append(record)
    return out


def metadata_of(record: dg.EventLogRecord) -> dict[str, object]:
    materialization = record.asset_materialization
    assert materialization is not None
    return {key: value.value for key, value in materialization.metadata.items()}


def assert_latest_evidence_matches_objects(
    instance: dg.DagsterInstance,
    client: Minio,
    bucket: str,
    partition_keys: Sequence[str],
    folder: Path,
) -> None:
    """For each partition, the object at the key is the archive the latest materialization
    describes: same size and SHA-256, CRCs hold, metadata.json names the tenant and hour."""
    latest = materializations(instance)
    for partition_key in partition_keys:
        assert partition_key in latest, f"{partition_key} was never archived"
        metadata = metadata_of(latest[partition_key][-1])
        key = str(metadata["object_key"])
        tenant = str(metadata["tenant_id"])
        hour = parse_archive_key(tenant, key)
        assert hour is not None and archive_partition_key(tenant, hour) == partition_key
        path = folder / "verify.zip"
        client.fget_object(bucket, key, str(path))
        problems = verify_archive(
            path,
            tenant_id=tenant,
            hour=hour,
            expected_sha256=str(metadata["sha256"]),
            expected_size=int(str(metadata["size_bytes"])),
        )
        assert problems == [], f"{key}: {problems}"


@dataclass
class SeenObject:
    key: str
    etag: str
    sha256: str
    complete: bool
    problem: str


@dataclass
class ArchiveWatcher:
    """Polls the archive prefix and downloads every (key, ETag) the moment it is listed.

    S3 shows an object only once its upload completed; the watcher proves it for our uploads
    by reading each version it sees and opening it as a ZIP with every CRC checked. Errors while
    the server is down are expected and skipped."""

    client: Minio
    bucket: str
    prefix: str
    interval: float = 0.05
    seen: dict[tuple[str, str], SeenObject] = field(default_factory=dict)
    polls: int = 0
    errors: int = 0
    last_error: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "ArchiveWatcher":
        self._thread = threading.Thread(target=self._watch, name="archive-watcher", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                for item in self.client.list_objects(
                    self.bucket, prefix=self.prefix, recursive=True
                ):
                    name, etag = item.object_name or "", (item.etag or "").strip('"')
                    if (name, etag) not in self.seen:
                        self._read(name, etag)
                self.polls += 1
            except Exception as exc:  # the server is down or restarting: poll again
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._stop.wait(self.interval)

    def _read(self, name: str, etag: str) -> None:
        response = self.client.get_object(self.bucket, name)
        try:
            data = response.read()
        finally:
            response.close()
            response.release_conn()
        problem = ""
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                bad = archive.testzip()
                if bad is not None:
                    problem = f"entry {bad} fails its CRC"
                elif "metadata.json" not in archive.namelist():
                    problem = "no metadata.json"
        except zipfile.BadZipFile as exc:
            problem = f"not a ZIP: {exc}"
        self.seen[(name, etag)] = SeenObject(
            name, etag, hashlib.sha256(data).hexdigest(), complete=not problem, problem=problem
        )


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    worker: tuple[subprocess.Popen[bytes], Path] | None = None,
) -> None:
    """Poll `condition`; fail after `timeout`, or as soon as `worker` (a run process and its
    log) exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if worker is not None and worker[0].poll() is not None:
            raise AssertionError(
                f"the run process exited ({worker[0].returncode}) before {what}; its log:\n"
                + worker[1].read_text(errors="replace")
            )
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
