"""A night for many tenants through the real Dagster daemon, with an S3 outage in the middle.

What runs, all real and local:

- a SeaweedFS S3 server (`LocalS3Server`), a SQLite application database, and a Dagster
  instance in a temporary DAGSTER_HOME whose `dagster.yaml` is `deploy/dagster.prod.yaml` with
  its PostgreSQL `storage` section removed (so SQLite under DAGSTER_HOME): the
  `QueuedRunCoordinator` with `max_concurrent_runs` from DAGSTER_MAX_CONCURRENT_RUNS
  (`--max-concurrent`) and at most one run per `recordings/tenant` tag value, run retries
  (`max_retries: 2`, also on asset failures), run monitoring, the default run launcher;
- the code server as docker-compose.yml starts it (`dagster api grpc -m
  recordings_dagster.definitions -a defs`, on a free loopback port) and `dagster-daemon run`
  on a workspace that points at it, as `deploy/workspace.yaml` does: every run is a subprocess
  of the code server. Both start in the temporary folder: Dagster reads `.env` from its
  working directory, and a developer's `.env` would override this instance.

Seeding: `--tenants` tenants enabled (7-day retention) with `--recordings` short real
recordings each (`--seconds` long, synthesized speech in the demo's formats, spread over the
day's hours) uploaded and registered for the night's UTC day, and every tenant already in its
shard's dynamic partitions (the partitions sensor adds them as tenants are enabled, long
before their first night).

How the night is submitted: by the daemon's own scheduler. Before the daemon starts, the
state of each shard's nightly schedule (`nightly_archives_shard_07`) is stored as the daemon
itself stores it for a schedule that is on by default (`DECLARED_IN_CODE`), with its start time
set one minute before the latest 00:30 UTC tick. The daemon's first scheduler iteration then
evaluates exactly that tick of each, late, as it would after a daemon restart: the schedule
function runs in the code server with
that tick's `scheduled_execution_time`, and its run requests (the tenant-days packed into
runs, recordings/packing.py: a pack's run key `{day}|{first}..{last}`, a tenant alone
`{day}|{tenant}` with the tenant tag) go through the daemon's submission into the queue. This is
production's path end to end (tick, run keys, queue, launcher, retries), without waiting for
00:30 and without freezing a clock in another process; building the run requests here and
submitting them would skip the daemon's tick handling. The night's day is the day before that
tick (today's date minus one after 00:30 UTC). The other two schedules (retention at 04:00,
checks at 06:00) are stored as stopped so a benchmark that crosses those hours measures the
night alone; both sensors stay on, as in production.

The fault: once `--fault-after` runs have started, the S3 server is stopped (SIGTERM, SIGKILL
after 3 s) for `--fault-seconds`, then started again on the same ports and data (it takes
another 10-15 s to answer). Hours that touch S3 meanwhile fail after the client's bounded
retries; their runs fail at the end, naming the hours, and the daemon's run retries queue a
retry behind the night's other runs, which redoes only the hours its run group has not
archived.

Measured, from the instance's own records (the daemon's run events) and by sampling the run
storage every 0.5 s: runs launched (first attempts and retries), failed runs, runs per minute,
the wall time from the first run's enqueueing until every tenant's 24 hours are materialized
(the last materialization's timestamp), the largest number of runs in progress at once (from
each run's STARTING event to its end event, and sampled) overall and per tenant (a run counts
for every tenant it covers).

Checked (any failure prints FAIL and exits 1): every tenant in exactly one first-attempt run
(a run covers its range's tenants, in partition order); every tenant's
24 hours materialized, each exactly once (a retry that redid an archived hour would show here);
each hour's archive is in S3 with the size and SHA-256 its materialization recorded and passes
`verify_archive` (CRCs, metadata.json); every seeded recording archived and none failed; the
global and per-tenant limits never exceeded; with a fault, at least one run failed, every run
group ended in success and every retry launched after S3 was back succeeded; all within
`--time-cap` seconds, after which the night is abandoned and reported as FAIL.

Run::

    PYTHONPATH=. .venv/bin/python bench/night.py [--tenants 30] [--max-concurrent 4]
        [--recordings 3] [--seconds 8] [--fault-after 4] [--fault-seconds 20] [--time-cap 900]

Markdown goes to stdout, progress to stderr. Figures from a shared 2-core machine are noisy.
"""

import argparse
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    ScheduleInstigatorData,
    SensorInstigatorData,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES, RunsFilter
from dagster._core.storage.tags import (
    AUTO_RETRY_RUN_ID_TAG,
    PARENT_RUN_ID_TAG,
    ROOT_RUN_ID_TAG,
    WILL_RETRY_TAG,
)
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._grpc.client import DagsterGrpcClient
from minio import Minio
from stack import (  # bench/stack.py
    REPO,
    LocalS3,
    LocalStack,
    SourceRecordings,
    local_stack,
    progress,
    register_tenant_partitions,
    stop_process_group,
)

import recordings
from recordings.archive.verify import verify_archive
from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import create_db_engine, session_scope
from recordings.keys import (
    SHARD_COUNT,
    archive_partition_key,
    day_hours,
    parse_archive_partition_key,
)
from recordings_cli.local_api import free_port
from recordings_dagster.jobs import HOURLY_ARCHIVES_JOB_NAMES, MAX_RETRIES
from recordings_dagster.schedules import (
    NIGHTLY_ARCHIVES_SCHEDULES,
    NIGHTLY_CRON,
    TenantOrder,
    previous_utc_day,
    tenants_covered,
)
from recordings_instance.archives import latest_archive_records, shard_asset_key

SOURCE_BUCKET = "night-sources"
ARCHIVE_BUCKET = "night-archives"
LOCATION = "recordings"
NIGHTLY = frozenset(schedule.name for schedule in NIGHTLY_ARCHIVES_SCHEDULES)
TENANT_TAG = "recordings/tenant"
DAY_TAG = "recordings/utc_day"
TENANT_LIMIT = 1  # deploy/dagster.prod.yaml: one run per tenant
SAMPLE_SECONDS = 0.5


def tenant_name(index: int) -> str:
    return f"night-{index:04d}"


def nightly_tick(now: datetime) -> datetime:
    """The latest 00:30 UTC at or before `now` (NIGHTLY_CRON)."""
    assert NIGHTLY_CRON == "30 0 * * *", "the bench assumes the nightly schedule runs at 00:30"
    tick = now.astimezone(UTC).replace(hour=0, minute=30, second=0, microsecond=0)
    return tick if tick <= now else tick - timedelta(days=1)


# --- seeding -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    recordings: int
    audio_seconds: float
    source_bytes: int


def seed(
    database_url: str,
    client: Minio,
    names: Sequence[str],
    day: date,
    per_tenant: int,
    seconds: float,
    scratch: Path,
) -> Seeded:
    """Tenants enabled, each with `per_tenant` recordings of `seconds` in distinct hours, cycling
    through the demo's formats; each format is synthesized once and uploaded per tenant."""
    rng = random.Random(f"night:{day.isoformat()}")  # noqa: S311 - benchmark data
    sources = SourceRecordings(client, SOURCE_BUCKET, seconds, scratch, rng)
    hours = day_hours(day)
    count = source_bytes = 0
    engine = create_db_engine(database_url)
    with session_scope(engine) as session:
        for index, tenant in enumerate(names):
            ensure_tenant(session, tenant, f"Night tenant {index}")
            set_recording_settings(
                session, tenant, changed_by="bench-night", enabled=True, retention_days=7
            )
            for number in range(per_tenant):
                # 7 and 24 are coprime: up to 24 recordings of a tenant fall in distinct hours.
                hour = hours[(5 * index + 7 * number) % 24]
                started_at = hour + timedelta(minutes=10 + number, seconds=17)
                source_bytes += sources.add(session, tenant, index + number, started_at)
                count += 1
    engine.dispose()
    return Seeded(count, count * seconds, source_bytes)


# --- the Dagster processes ---------------------------------------------------------------------


def instance_yaml() -> str:
    """deploy/dagster.prod.yaml without its PostgreSQL storage: SQLite under DAGSTER_HOME."""
    config = yaml.safe_load((REPO / "deploy" / "dagster.prod.yaml").read_text(encoding="utf-8"))
    del config["storage"]
    return yaml.safe_dump(config, sort_keys=False)


def workspace_yaml(port: int) -> str:
    """deploy/workspace.yaml pointed at the code server on loopback."""
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text(encoding="utf-8"))
    (entry,) = workspace["load_from"]
    entry["grpc_server"].update(host="127.0.0.1", port=port, location_name=LOCATION)
    return yaml.safe_dump(workspace, sort_keys=False)


@dataclass
class Process:
    """A Dagster process in its own session, so stopping it stops what it started."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, timeout=20)


def wait_for_code_server(server: Process, port: int, timeout: float = 180) -> None:
    client = DagsterGrpcClient(host="127.0.0.1", port=port)
    deadline = time.monotonic() + timeout
    while True:
        if not server.alive():
            raise RuntimeError(f"the code server exited; see {server.log_path}")
        try:
            client.ping("")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the code server did not answer in {timeout:.0f} s") from None
            time.sleep(0.5)


def store_schedule_states(
    instance: dg.DagsterInstance, workspace: Path, tick: datetime, *, sensors_on: bool = True
) -> list[tuple[str, str]]:
    """The nightly schedules (one per shard) on since a minute before `tick`, the other
    schedules stopped, and the sensors left as declared (on, as in production) or stopped;
    returns each nightly schedule's origin and selector ids (the keys of its ticks)."""
    target = WorkspaceFileTarget(paths=[str(workspace)])
    with WorkspaceProcessContext(instance, target) as context:
        location = context.create_request_context().get_code_location(LOCATION)
        (repository,) = location.get_repositories().values()
        ids: list[tuple[str, str]] = []
        for schedule in repository.get_schedules():
            nightly = schedule.name in NIGHTLY
            if nightly:
                ids.append((schedule.get_remote_origin_id(), schedule.selector_id))
            instance.add_instigator_state(
                InstigatorState(
                    schedule.get_remote_origin(),
                    InstigatorType.SCHEDULE,
                    InstigatorStatus.DECLARED_IN_CODE if nightly else InstigatorStatus.STOPPED,
                    ScheduleInstigatorData(
                        schedule.cron_schedule, tick.timestamp() - 60 if nightly else None
                    ),
                )
            )
        for sensor in [] if sensors_on else repository.get_sensors():
            instance.add_instigator_state(
                InstigatorState(
                    sensor.get_remote_origin(),
                    InstigatorType.SENSOR,
                    InstigatorStatus.STOPPED,
                    SensorInstigatorData(
                        min_interval=sensor.min_interval_seconds, sensor_type=sensor.sensor_type
                    ),
                )
            )
    assert len(ids) == len(NIGHTLY), f"not every nightly schedule is in the code location: {ids}"
    return ids


def start_code_server(
    stack: contextlib.ExitStack, local: LocalStack, module: str = "recordings_dagster.definitions"
) -> tuple[Process, Path]:
    """The code server as docker-compose.yml starts it, on a free loopback port, and a workspace
    file pointing at it, as deploy/workspace.yaml does; stopped with `stack`. It runs in the
    benchmark's folder, away from any `.env`. `module` holds the `defs` it serves (a benchmark
    may serve the same definitions with other settings)."""
    port = free_port()
    workspace = local.home / "workspace.yaml"
    workspace.write_text(workspace_yaml(port), encoding="utf-8")
    code_server = Process(
        [
            str(Path(sys.executable).parent / "dagster"),
            *("api", "grpc", "-m", module, "-a", "defs"),
            *("-h", "127.0.0.1", "-p", str(port)),
        ],
        {**os.environ, **local.environment()},
        local.folder,
        local.folder / "code-server.log",
    )
    stack.callback(code_server.stop)
    progress("starting the code server")
    code_server.start()
    wait_for_code_server(code_server, port)
    return code_server, workspace


def daemon_process(stack: contextlib.ExitStack, local: LocalStack, workspace: Path) -> Process:
    """`dagster-daemon run` on `workspace`, not started yet; stopped with `stack`."""
    daemon = Process(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
        {**os.environ, **local.environment()},
        local.folder,
        local.folder / "daemon.log",
    )
    stack.callback(daemon.stop)
    return daemon


def open_instance(
    stack: contextlib.ExitStack, local: LocalStack, max_concurrent: int, names: Sequence[str]
) -> dg.DagsterInstance:
    """The night's instance (closed with `stack`), checked to hold production's queue limits and
    run retries, with every tenant already in its shard's partitions."""
    os.environ["DAGSTER_MAX_CONCURRENT_RUNS"] = str(max_concurrent)
    instance = stack.enter_context(dg.DagsterInstance.from_config(str(local.home)))
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None and queue.max_concurrent_runs == max_concurrent
    assert queue.tag_concurrency_limits == [
        {"key": TENANT_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": TENANT_LIMIT}
    ], queue.tag_concurrency_limits
    assert instance.run_retries_enabled and instance.run_retries_max_retries == MAX_RETRIES
    register_tenant_partitions(instance, names)
    return instance


@dataclass
class Dagster:
    """The night's code server and daemon, and when the daemon started (time.time())."""

    code_server: Process
    daemon: Process
    started_at: float

    def alive(self) -> bool:
        return self.daemon.alive() and self.code_server.alive()

    def stop(self) -> None:
        progress("stopping the daemon and the code server")
        self.daemon.stop()
        self.code_server.stop()


def start_dagster(
    stack: contextlib.ExitStack, local: LocalStack, instance: dg.DagsterInstance, tick: datetime
) -> Dagster:
    """The code server, then the daemon on a workspace pointing at it, with the schedules' states
    stored in between so the daemon's first iteration evaluates `tick`. Both are stopped with
    `stack` if the night ends early."""
    code_server, workspace = start_code_server(stack, local)
    store_schedule_states(instance, workspace, tick)
    daemon = daemon_process(stack, local, workspace)
    progress(f"starting dagster-daemon; it evaluates the {tick:%Y-%m-%d %H:%M} UTC tick")
    started_at = time.time()
    daemon.start()
    return Dagster(code_server, daemon, started_at)


# --- the fault ---------------------------------------------------------------------------------


@dataclass
class Fault:
    """Stop the S3 server for `seconds`, then start it again on the same ports and data."""

    s3: LocalS3
    seconds: float
    stopped_at: float | None = None  # time.time()
    restarting_at: float | None = None
    back_at: float | None = None
    error: str | None = None
    thread: threading.Thread | None = None

    def trigger(self) -> None:
        self.thread = threading.Thread(target=self._run, name="s3-fault", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.s3.server.stop(timeout=3)
            self.stopped_at = time.time()
            progress(f"fault: S3 stopped; starting it again in {self.seconds:.0f} s")
            time.sleep(self.seconds)
            self.restarting_at = time.time()
            self.s3.server.start(timeout=120)
            self.back_at = time.time()
            progress(f"fault: S3 answers again ({self.back_at - self.stopped_at:.1f} s down)")
        except Exception as exc:  # reported as a FAIL by the caller
            self.error = f"{type(exc).__name__}: {exc}"

    @property
    def done(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()


# --- watching the night ------------------------------------------------------------------------


@dataclass
class Samples:
    in_progress_max: int = 0
    per_tenant_max: int = 0
    samples: int = 0


def night_runs(instance: dg.DagsterInstance, day: date) -> list[dg.DagsterRun]:
    """The archive runs of `day`, of every shard's job."""
    runs = instance.get_runs(RunsFilter(tags={DAY_TAG: str(day)}))
    return [run for run in runs if run.job_name in HOURLY_ARCHIVES_JOB_NAMES]


def sample(instance: dg.DagsterInstance, samples: Samples) -> None:
    running = instance.get_runs(RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES))
    order = TenantOrder(instance)
    per_tenant = Counter(tenant for run in running for tenant in tenants_covered(run.tags, order))
    samples.in_progress_max = max(samples.in_progress_max, len(running))
    samples.per_tenant_max = max(samples.per_tenant_max, max(per_tenant.values(), default=0))
    samples.samples += 1


def unresolved_failures(runs: Sequence[dg.DagsterRun]) -> list[str]:
    """Failed runs the retry daemon has not decided about yet, or whose retry is not stored."""
    ids = {run.run_id for run in runs}
    pending = []
    for run in runs:
        if run.status != dg.DagsterRunStatus.FAILURE:
            continue
        will_retry = run.tags.get(WILL_RETRY_TAG)
        retry_id = run.tags.get(AUTO_RETRY_RUN_ID_TAG)
        if will_retry is None or (will_retry == "true" and retry_id not in ids):
            pending.append(run.run_id)
    return pending


def materialized_count(instance: dg.DagsterInstance, keys: Sequence[str]) -> int:
    return len(latest_archive_records(instance, keys))


NOT_DONE = {
    status.value
    for status in (
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    )
}
STARTED = {dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}


def settled(runs: Sequence[dg.DagsterRun]) -> bool:
    """The night's runs are all done, and the retry daemon has decided about every failed one."""
    idle = not any(run.status.value in NOT_DONE for run in runs)
    return bool(runs) and idle and not unresolved_failures(runs)


def watch(
    instance: dg.DagsterInstance,
    dagster: Dagster,
    fault: Fault | None,
    samples: Samples,
    day: date,
    keys: Sequence[str],
    args: argparse.Namespace,
) -> list[str]:
    """Sample the runs until every hour is materialized and every run settled, triggering the
    fault once `args.fault_after` runs have started; what went wrong (nothing if it finished)."""
    failures: list[str] = []
    deadline = time.monotonic() + args.time_cap
    last_check = 0.0
    materialized = 0
    last_report = ""
    while time.monotonic() < deadline:
        if not dagster.alive():
            failures.append("dagster-daemon or the code server exited; see their logs")
            break
        sample(instance, samples)
        runs = night_runs(instance, day)
        statuses = Counter(run.status.value for run in runs)
        started = sum(1 for run in runs if run.status in STARTED)
        if fault and fault.thread is None and started >= args.fault_after:
            progress(f"{started} runs have started: stopping S3")
            fault.trigger()
        if time.monotonic() - last_check >= 2:
            last_check = time.monotonic()
            materialized = materialized_count(instance, keys)
            report = (
                f"runs {dict(sorted(statuses.items()))}, "
                f"hours materialized {materialized}/{len(keys)}"
            )
            if report != last_report:
                progress(report)
                last_report = report
            if materialized == len(keys) and settled(runs) and (fault is None or fault.done):
                return failures
        time.sleep(SAMPLE_SECONDS)
    wall_cap = time.monotonic() >= deadline
    failures.append(
        f"the night did not finish: {materialized}/{len(keys)} hours materialized"
        + (f" when the {args.time_cap:.0f} s time cap was reached" if wall_cap else "")
    )
    return failures


def end_fault(fault: Fault | None, s3: LocalS3) -> list[str]:
    """Wait for the fault to be undone, and S3 answering, to verify what it stores."""
    failures: list[str] = []
    if fault is not None and fault.thread is not None:
        fault.thread.join(timeout=180)
    if fault is not None and fault.error:
        failures.append(f"the fault could not be undone: {fault.error}")
    if s3.server.running_pid() is None:
        s3.server.start(timeout=120)
    return failures


# --- after the night: the records --------------------------------------------------------------


def status_times(instance: dg.DagsterInstance, event: dg.DagsterEventType) -> dict[str, float]:
    """Run id -> timestamp of its (first) `event`, from the event log's run status index."""
    times: dict[str, float] = {}
    cursor = None
    while True:
        result = instance.fetch_run_status_changes(event, limit=1000, cursor=cursor, ascending=True)
        for record in result.records:
            times.setdefault(record.event_log_entry.run_id, record.timestamp)
        if not result.has_more:
            return times
        cursor = result.cursor


def max_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at the same instant as a start first)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = current = 0
    for _, step in edges:
        current += step
        best = max(best, current)
    return best


@dataclass
class RunFigures:
    runs: list[dg.DagsterRun]
    first_attempts: list[dg.DagsterRun]
    retries: list[dg.DagsterRun]
    failed: list[dg.DagsterRun]
    first_enqueued: float
    last_first_enqueued: float
    last_ended: float
    overlap_all: int
    overlap_per_tenant: int
    durations: list[float]
    queue_waits: list[float]
    starting: dict[str, float]
    tenants: dict[str, list[str]]  # run id -> the tenants it covers


def run_figures(instance: dg.DagsterInstance, day: date) -> RunFigures:
    runs = night_runs(instance, day)
    everything = list(instance.get_runs())  # the global limit counts every job's runs
    enqueued = status_times(instance, dg.DagsterEventType.RUN_ENQUEUED)
    starting = status_times(instance, dg.DagsterEventType.RUN_STARTING)
    ended: dict[str, float] = {}
    for event in (
        dg.DagsterEventType.RUN_SUCCESS,
        dg.DagsterEventType.RUN_FAILURE,
        dg.DagsterEventType.RUN_CANCELED,
    ):
        ended.update(status_times(instance, event))
    now = time.time()
    spans = {
        run.run_id: (starting[run.run_id], ended.get(run.run_id, now))
        for run in everything
        if run.run_id in starting
    }
    per_tenant: dict[str, list[tuple[float, float]]] = defaultdict(list)
    order = TenantOrder(instance)
    tenants = {run.run_id: tenants_covered(run.tags, order) for run in everything}
    for run in everything:
        if run.run_id in spans:
            for tenant in tenants[run.run_id]:
                per_tenant[tenant].append(spans[run.run_id])
    night_ids = [run.run_id for run in runs]
    return RunFigures(
        runs=runs,
        first_attempts=[run for run in runs if PARENT_RUN_ID_TAG not in run.tags],
        retries=[run for run in runs if PARENT_RUN_ID_TAG in run.tags],
        failed=[run for run in runs if run.status == dg.DagsterRunStatus.FAILURE],
        first_enqueued=min(enqueued[run_id] for run_id in night_ids if run_id in enqueued),
        last_first_enqueued=max(
            enqueued.get(run.run_id, 0.0) for run in runs if PARENT_RUN_ID_TAG not in run.tags
        ),
        last_ended=max(ended.get(run_id, now) for run_id in night_ids),
        overlap_all=max_overlap(list(spans.values())),
        overlap_per_tenant=max((max_overlap(s) for s in per_tenant.values()), default=0),
        durations=[spans[i][1] - spans[i][0] for i in night_ids if i in spans],
        queue_waits=[
            starting[i] - enqueued[i] for i in night_ids if i in starting and i in enqueued
        ],
        starting=starting,
        tenants=tenants,
    )


@dataclass
class ArchiveFigures:
    materialized: int
    materializations: int
    duplicated: list[str]
    last_materialized: float
    verified: int
    problems: list[str]
    objects: int
    recordings: int
    failed_recordings: int
    archive_bytes: int


def archive_figures(
    instance: dg.DagsterInstance, client: Minio, keys: Sequence[str], scratch: Path
) -> ArchiveFigures:
    counts: Counter[str] = Counter()
    for shard in range(SHARD_COUNT):
        cursor = None
        while True:
            result = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=shard_asset_key(shard)), limit=1000, cursor=cursor
            )
            counts.update(record.partition_key for record in result.records if record.partition_key)
            if not result.has_more:
                break
            cursor = result.cursor
    latest = latest_archive_records(instance, keys)
    problems: list[str] = []
    verified = recordings_archived = failed = archive_bytes = 0
    scratch.mkdir(parents=True, exist_ok=True)
    for key in keys:
        record = latest.get(key)
        if record is None or record.asset_materialization is None:
            problems.append(f"{key}: not materialized")
            continue
        metadata: dict[str, Any] = {
            name: value.value for name, value in record.asset_materialization.metadata.items()
        }
        tenant_id, hour = parse_archive_partition_key(key)
        path = scratch / "archive.zip"
        try:
            client.fget_object(str(metadata["bucket"]), str(metadata["object_key"]), str(path))
        except Exception as exc:
            problems.append(f"{key}: {metadata['object_key']} not readable: {exc}")
            continue
        found = verify_archive(
            path,
            tenant_id=tenant_id,
            hour=hour,
            expected_sha256=str(metadata["sha256"]),
            expected_size=int(metadata["size_bytes"]),
        )
        problems.extend(f"{key}: {problem}" for problem in found)
        verified += not found
        recordings_archived += int(metadata["recording_count"])
        failed += int(metadata["failed_recording_count"])
        archive_bytes += int(metadata["size_bytes"])
    objects = sum(1 for _ in client.list_objects(ARCHIVE_BUCKET, prefix="tenants/", recursive=True))
    return ArchiveFigures(
        materialized=len(latest),
        materializations=sum(counts[key] for key in keys),
        duplicated=sorted(key for key in keys if counts[key] > 1),
        last_materialized=max((record.timestamp for record in latest.values()), default=0.0),
        verified=verified,
        problems=problems,
        objects=objects,
        recordings=recordings_archived,
        failed_recordings=failed,
        archive_bytes=archive_bytes,
    )


# --- the night ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    lines: list[tuple[str, str]]
    failures: list[str]


@dataclass
class Night:
    """What a night left behind, read once its processes are stopped."""

    args: argparse.Namespace
    day: date
    tick: datetime
    names: list[str]
    keys: list[str]  # every tenant's 24 hour partitions
    seeded: Seeded
    samples: Samples
    fault: Fault | None
    daemon_started: float  # time.time()
    runs: RunFigures
    archives: ArchiveFigures


@dataclass
class Retries:
    """The night's run groups and retries, which the checks and the table both read."""

    groups: dict[str, list[dg.DagsterRun]]  # root run id -> the group's runs
    unsuccessful: list[str]  # root run ids of groups with no successful run
    after_fault: list[dg.DagsterRun]  # retries started once S3 was back
    failed_after_fault: list[dg.DagsterRun]
    failed: list[dg.DagsterRun]


def retries_of(night: Night) -> Retries:
    groups: dict[str, list[dg.DagsterRun]] = defaultdict(list)
    for run in night.runs.runs:
        groups[run.tags.get(ROOT_RUN_ID_TAG, run.run_id)].append(run)
    back_at = night.fault.back_at if night.fault else None
    after_fault = [
        run
        for run in night.runs.retries
        if back_at is not None and night.runs.starting.get(run.run_id, 0) >= back_at
    ]
    return Retries(
        groups=groups,
        unsuccessful=[
            root
            for root, members in groups.items()
            if not any(run.status == dg.DagsterRunStatus.SUCCESS for run in members)
        ],
        after_fault=after_fault,
        failed_after_fault=[
            run for run in after_fault if run.status != dg.DagsterRunStatus.SUCCESS
        ],
        failed=[run for run in night.runs.retries if run.status != dg.DagsterRunStatus.SUCCESS],
    )


def _minutes(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def seed_night(
    local: LocalStack, folder: Path, names: Sequence[str], day: date, args: argparse.Namespace
) -> Seeded:
    """Register and upload every tenant's recordings for `day` (`--recordings` of `--seconds`)."""
    progress(f"seeding {args.tenants} tenants for {day}")
    (folder / "sources").mkdir()
    return seed(
        local.database_url,
        local.s3.client,
        names,
        day,
        args.recordings,
        args.seconds,
        folder / "sources",
    )


NO_RUN = "the daemon launched no run for the night; see daemon.log"


def night_record(
    instance: dg.DagsterInstance,
    local: LocalStack,
    folder: Path,
    args: argparse.Namespace,
    tick: datetime,
    names: Sequence[str],
    seeded: Seeded,
    samples: Samples,
    fault: Fault | None,
    daemon_started: float,
) -> Night | None:
    """What the night left once Dagster stopped: its run records and every archive verified in
    S3; None if the daemon launched no run for it."""
    progress("reading the run records and verifying every archive in S3")
    day = previous_utc_day(tick)
    if not night_runs(instance, day):
        return None
    keys = night_keys(names, day)
    return Night(
        args=args,
        day=day,
        tick=tick,
        names=list(names),
        keys=keys,
        seeded=seeded,
        samples=samples,
        fault=fault,
        daemon_started=daemon_started,
        runs=run_figures(instance, day),
        archives=archive_figures(instance, local.s3.client, keys, folder / "verify"),
    )


def night_keys(names: Sequence[str], day: date) -> list[str]:
    """Every archive partition of the night: each tenant's 24 hours of `day`."""
    return [archive_partition_key(name, hour) for name in names for hour in day_hours(day)]


def night(args: argparse.Namespace) -> Outcome:
    """Prepare the stack and the tenants, start Dagster, watch the night through, stop, then
    check what the records and S3 hold and tabulate it."""
    tick = nightly_tick(datetime.now(UTC))
    day = previous_utc_day(tick)
    names = [tenant_name(index) for index in range(args.tenants)]
    keys = night_keys(names, day)
    with contextlib.ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="bench-night-"))
        if args.keep:
            progress(f"keeping {folder}")
        else:
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
        local = stack.enter_context(
            local_stack(
                folder,
                source_bucket=SOURCE_BUCKET,
                archive_bucket=ARCHIVE_BUCKET,
                dagster_yaml=instance_yaml(),
            )
        )
        seeded = seed_night(local, folder, names, day, args)
        instance = open_instance(stack, local, args.max_concurrent, names)
        dagster = start_dagster(stack, local, instance, tick)
        fault = Fault(local.s3, args.fault_seconds) if args.fault_seconds > 0 else None
        samples = Samples()
        failures = watch(instance, dagster, fault, samples, day, keys, args)
        dagster.stop()
        failures += end_fault(fault, local.s3)

        record = night_record(
            instance, local, folder, args, tick, names, seeded, samples, fault, dagster.started_at
        )
        if record is None:
            return Outcome([("tenants", str(args.tenants))], [*failures, NO_RUN])
    retries = retries_of(record)
    return Outcome(table(record, retries), failures + checks(record, retries))


def checks(night: Night, retries: Retries) -> list[str]:
    """What the night got wrong: tenants, hours, archives, limits, run groups and retries."""
    failures: list[str] = []
    figures, archives, keys = night.runs, night.archives, night.keys
    first_tenants = Counter(
        tenant for run in figures.first_attempts for tenant in figures.tenants[run.run_id]
    )
    if sorted(first_tenants) != sorted(night.names) or set(first_tenants.values()) != {1}:
        failures.append(
            f"every tenant is not in exactly one first-attempt run: {dict(first_tenants)}"
        )
    if archives.materialized != len(keys):
        failures.append(f"{archives.materialized} of {len(keys)} hours materialized")
    if archives.duplicated:
        failures.append(
            f"{len(archives.duplicated)} hours materialized more than once, e.g. "
            f"{archives.duplicated[:3]}"
        )
    if archives.problems:
        failures.append(f"{len(archives.problems)} archive problems, e.g. {archives.problems[:3]}")
    if archives.objects != len(keys):
        failures.append(f"{archives.objects} archive objects in S3, expected {len(keys)}")
    if archives.recordings != night.seeded.recordings or archives.failed_recordings:
        failures.append(
            f"{archives.recordings} of {night.seeded.recordings} recordings archived, "
            f"{archives.failed_recordings} listed as failed"
        )
    limit, samples = night.args.max_concurrent, night.samples
    if max(figures.overlap_all, samples.in_progress_max) > limit:
        failures.append(
            f"runs in progress exceeded the limit {limit}: {figures.overlap_all} (run events), "
            f"{samples.in_progress_max} (sampled)"
        )
    if max(figures.overlap_per_tenant, samples.per_tenant_max) > TENANT_LIMIT:
        failures.append(
            f"a tenant had {max(figures.overlap_per_tenant, samples.per_tenant_max)} runs in "
            f"progress at once (limit {TENANT_LIMIT})"
        )
    if retries.unsuccessful:
        failures.append(f"{len(retries.unsuccessful)} run groups never succeeded")
    if retries.failed_after_fault:
        failures.append(
            f"{len(retries.failed_after_fault)} retries started after S3 was back did not succeed"
        )
    if night.fault is not None and not figures.failed:
        failures.append("the S3 outage failed no run: nothing exercised the retries")
    by_id = {run.run_id: run for run in figures.runs}
    for run in figures.retries:
        parent = by_id.get(run.tags[PARENT_RUN_ID_TAG])
        if parent is None or parent.status != dg.DagsterRunStatus.FAILURE:
            failures.append(f"retry {run.run_id} has no failed parent among the night's runs")
    return failures


def table(night: Night, retries: Retries) -> list[tuple[str, str]]:
    """The report's rows: the night and its runs, the fault, then the figures."""
    return [*_run_rows(night, retries), *_fault_rows(night), *_figure_rows(night)]


def _run_rows(night: Night, retries: Retries) -> list[tuple[str, str]]:
    args, figures, seeded = night.args, night.runs, night.seeded
    audio = f"{seeded.recordings} recordings, {seeded.audio_seconds:,.0f} s of audio"
    failed_retries = retries.failed
    return [
        (
            "tenants",
            f"{args.tenants} ({args.recordings} x {args.seconds:g} s recordings each; {audio})",
        ),
        (
            "queue (`deploy/dagster.prod.yaml`, SQLite storage)",
            f"max_concurrent_runs {args.max_concurrent}, {TENANT_LIMIT} per `{TENANT_TAG}`, "
            f"run retries {MAX_RETRIES}",
        ),
        (
            "the night",
            f"{night.day} (the daemon evaluated the {night.tick:%Y-%m-%d %H:%M} UTC tick "
            f"{figures.first_enqueued - night.daemon_started:.1f} s after it started)",
        ),
        (
            "the tick's submissions: first to last first-attempt run enqueued",
            _minutes(figures.last_first_enqueued - figures.first_enqueued),
        ),
        (
            "runs launched: first attempts + retries",
            f"{len(figures.runs)}: {len(figures.first_attempts)} + {len(figures.retries)}",
        ),
        (
            "failed runs (first attempts / retries)",
            f"{len(figures.failed)} ({len(figures.failed) - len(failed_retries)} / "
            f"{len(failed_retries)})",
        ),
        (
            "retries that succeeded",
            f"{len(figures.retries) - len(failed_retries)} of {len(figures.retries)}"
            + (
                f"; started after S3 was back: {len(retries.after_fault)}, all succeeded: "
                f"{'yes' if not retries.failed_after_fault else 'no'}"
                if night.fault
                else ""
            ),
        ),
        (
            "run groups (a run and its retries) that ended in success",
            f"{len(retries.groups) - len(retries.unsuccessful)} of {len(retries.groups)}",
        ),
    ]


def _fault_rows(night: Night) -> list[tuple[str, str]]:
    fault, origin = night.fault, night.runs.first_enqueued
    if fault is None or fault.stopped_at is None:
        return []
    back = fault.back_at - origin if fault.back_at else float("nan")
    return [
        (
            "fault: S3 stopped",
            f"after {night.args.fault_after} runs had started, "
            f"+{fault.stopped_at - origin:.1f} s from the first enqueue; answering again at "
            f"+{back:.1f} s ({night.args.fault_seconds:g} s stopped + restart)",
        )
    ]


def _figure_rows(night: Night) -> list[tuple[str, str]]:
    figures, archives, samples, keys = night.runs, night.archives, night.samples, night.keys
    origin = figures.first_enqueued
    to_materialized = archives.last_materialized - origin
    to_last_run = figures.last_ended - origin
    limit = night.args.max_concurrent
    return [
        (
            "**wall time: first enqueue until every tenant's 24 hours are materialized**",
            f"**{_minutes(to_materialized)}**",
        ),
        ("wall time: first enqueue until the last run ended", _minutes(to_last_run)),
        (
            "runs per minute (launched / the latter)",
            f"{len(figures.runs) / (to_last_run / 60):.1f}",
        ),
        (
            "run duration, STARTING to end: median / max",
            f"{statistics.median(figures.durations):.1f} s / {max(figures.durations):.1f} s",
        ),
        (
            "queue wait, enqueued to STARTING: median / max",
            f"{statistics.median(figures.queue_waits):.1f} s / {max(figures.queue_waits):.1f} s",
        ),
        (
            "max runs in progress at once: run events / sampled every 0.5 s (limit)",
            f"{figures.overlap_all} / {samples.in_progress_max} ({limit})",
        ),
        (
            "max runs in progress for one tenant: run events / sampled (limit)",
            f"{figures.overlap_per_tenant} / {samples.per_tenant_max} ({TENANT_LIMIT})",
        ),
        (
            "hours materialized (tenants x 24) / materializations",
            f"{archives.materialized} of {len(keys)} / {archives.materializations}"
            + (
                " (none twice)"
                if not archives.duplicated
                else f" ({len(archives.duplicated)} twice)"
            ),
        ),
        (
            "archives in S3 verified (size, SHA-256, CRCs, metadata.json) / objects",
            f"{archives.verified} of {len(keys)} / {archives.objects}, "
            f"{archives.archive_bytes:,} bytes",
        ),
        (
            "recordings archived / listed as failed",
            f"{archives.recordings} of {night.seeded.recordings} / {archives.failed_recordings}",
        ),
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=30)
    parser.add_argument("--max-concurrent", type=int, default=4, help="max_concurrent_runs")
    parser.add_argument("--recordings", type=int, default=3, help="recordings per tenant")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each recording")
    parser.add_argument(
        "--fault-after", type=int, default=4, help="stop S3 once this many runs have started"
    )
    parser.add_argument(
        "--fault-seconds", type=float, default=20.0, help="how long S3 stays stopped; 0: no fault"
    )
    parser.add_argument("--time-cap", type=float, default=900.0, help="seconds before FAIL")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if not 1 <= args.recordings <= 24:
        parser.error("--recordings must be between 1 and 24 (one per hour)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if Path(recordings.__file__).resolve().parents[1] != REPO:
        print(
            f"this imports `recordings` from {Path(recordings.__file__).parent}, not from {REPO}; "
            f"run it with PYTHONPATH={REPO}",
            file=sys.stderr,
        )
        return 2
    return report_outcome(
        f"A night through the Dagster daemon, {args.tenants} tenants", night(args)
    )


def report_outcome(title: str, outcome: Outcome) -> int:
    """Print a night's table and verdict; the exit status (1 if a check failed)."""
    print(f"\n**{title}**\n")
    print("| figure | value |")
    print("| --- | ---: |")
    for name, value in outcome.lines:
        print(f"| {name} | {value} |")
    print()
    if outcome.failures:
        print("**FAIL**")
        for failure in outcome.failures:
            print(f"- {failure}")
        return 1
    print("**PASS**: every check held.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
