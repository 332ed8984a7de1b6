"""A night through dagster-daemon on the Celery run engine, with one worker SIGKILLed mid-run,
and the same night on the default run launcher to compare (docs/DISTRIBUTED.md).

What runs, all real and local: bench/night.py's stack and night (SeaweedFS, a SQLite application
database, a Dagster instance under a temporary DAGSTER_HOME, both databases on PostgreSQL instead
with `--database-url` and `--dagster-postgres-url`, the code server as compose starts it,
`dagster-daemon run`, the nightly schedule's tick evaluated by the daemon, production's queue
limits and run retries), seeded the same way, with the instance and the run engine chosen by
`--launcher`:

- `celery`: `deploy/dagster.celery.yaml` without its PostgreSQL storage (dagster-celery's
  `CeleryRunLauncher`), a Redis server of the benchmark's own (Debian's `redis-server`, or
  `--redis-url`) as broker and result backend, and `--workers` Celery workers started as
  docs/DISTRIBUTED.md starts them (`celery -A dagster_celery.app worker --concurrency 1`, the
  settings of `deploy/celery/dagster_celery_config.py`), each a long-lived process that executes
  one run at a time. `--max-concurrent` defaults to the workers' slots, as the instance file asks.
  Workers use Celery's prefork pool when the archive job runs on the in-process executor; with
  the multiprocess executor, whose step processes a prefork pool process may not start, they use
  the solo pool (the run in the worker's own process, its step in a child).
- `default`: `deploy/dagster.prod.yaml` without its storage (bench/night.py's instance): every run
  a process started by the code server.

The fault (`--kill-after N`, Celery only): once N runs have started, the benchmark waits for a run
that has archived some of its hours but not all, finds the worker executing it (the run's
"Started process for run (pid ...)" event names a process of that worker) and SIGKILLs the
worker's whole process group: a machine lost mid-run. Nothing tells Dagster: the task stays
STARTED in Redis and the launcher reports the run healthy. The run's hour leases stop being
refreshed, the stalled-runs sensor fails the run, the daemon's run retries queue its retry, and
the other worker executes it. `--lease-seconds` serves the definitions through
bench/quick_detection.py (leases and the sensor's interval of that many seconds) so a small night
detects it in seconds; without it, production's 300 s leases and one-minute sensor apply. With
`--kill pool` only the process executing the run is SIGKILLed (the kernel's out-of-memory killer
would pick it): Celery records the task FAILURE, and run monitoring (every `--monitor-seconds`,
production's 120 without it) fails the run.

Measured: bench/night.py's figures (runs launched, failed and retried, wall time from the first
enqueue until every hour is materialized, runs per minute, run durations, queue waits, the
limits), then runs per second, the CPU seconds of every process the night started (code server
and its runs, daemon, workers, Redis; a killed worker's CPU is lost with it) per run and per
tenant-day, the worker processes' memory at the end, and for the fault when the worker was killed,
when its run was failed and when its retry succeeded. Checked: bench/night.py's checks (every
tenant's 24 hours materialized exactly once, each archive in S3 with the size and SHA-256 its
materialization recorded and intact, every recording archived, the limits never exceeded, every
tenant's run group ended in success), and with the fault: the killed run failed, its retry ran on
another worker and succeeded, no multipart upload was left open.

Run::

    PYTHONPATH=. .venv/bin/python bench/celery_night.py --launcher celery --tenants 100
        --workers 2 --kill-after 10
    PYTHONPATH=. .venv/bin/python bench/celery_night.py --launcher default --tenants 100

Markdown goes to stdout, progress to stderr. Figures from a shared 2-core machine are noisy.
"""

import argparse
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psutil
import sqlalchemy as sa
import yaml
from dagster._core.storage.tags import PARENT_RUN_ID_TAG
from night import (  # bench/night.py
    ARCHIVE_BUCKET,
    NO_RUN,
    SOURCE_BUCKET,
    STARTED,
    Dagster,
    Night,
    Outcome,
    Process,
    Samples,
    checks,
    daemon_process,
    night_keys,
    night_record,
    nightly_tick,
    open_instance,
    report_outcome,
    retries_of,
    seed_night,
    start_code_server,
    status_times,
    store_schedule_states,
    table,
    tenant_name,
    watch,
)
from stack import REPO, LocalStack, local_stack, progress  # bench/stack.py

import recordings
from recordings.db.engine import create_db_engine
from recordings.db.models import ArchiveHourLease
from recordings.leases import DEFAULT_LEASE_SECONDS
from recordings_dagster.definitions import defs
from recordings_dagster.jobs import HOURLY_ARCHIVES_JOB_NAMES, HOURLY_ARCHIVES_JOBS
from recordings_dagster.schedules import previous_utc_day
from tests.redis_server import temporary_redis

WORKER_CONFIG = REPO / "deploy" / "celery"
STARTED_PROCESS = re.compile(r"Started process for run \(pid: (\d+)\)")


def run_process_ids(instance: dg.DagsterInstance, run_id: str) -> list[int]:
    """The processes that executed the run, from its "Started process for run (pid: N)" events:
    with the Celery launcher, a worker's own (pool) process."""
    pids = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        message = entry.dagster_event.message if entry.dagster_event else None
        if message and (match := STARTED_PROCESS.search(message)):
            pids.append(int(match.group(1)))
    return pids


def instance_yaml(launcher: str, storage_url: str | None, monitor_seconds: int = 0) -> str:
    """The production instance of `launcher`, its PostgreSQL storage at `storage_url` (a
    psycopg2 URL), or SQLite under DAGSTER_HOME without one; run monitoring polling every
    `monitor_seconds` if given."""
    name = "dagster.celery.yaml" if launcher == "celery" else "dagster.prod.yaml"
    config = yaml.safe_load((REPO / "deploy" / name).read_text(encoding="utf-8"))
    if monitor_seconds:
        config["run_monitoring"]["poll_interval_seconds"] = monitor_seconds
    if storage_url:
        config["storage"] = {"postgres": {"postgres_url": storage_url}}
    else:
        del config["storage"]
    return yaml.safe_dump(config, sort_keys=False)


def worker_pool() -> str:
    """Celery's prefork pool when the archive job runs in process, else the solo pool: a prefork
    pool process is a daemon process, which Python forbids to start the multiprocess executor's
    step processes ("daemonic processes are not allowed to have children")."""
    executors = {defs.resolve_job_def(job.name).executor_def.name for job in HOURLY_ARCHIVES_JOBS}
    return "prefork" if executors == {dg.in_process_executor.name} else "solo"


# --- the workers -------------------------------------------------------------------------------


def worker_argv(name: str, pool: str) -> list[str]:
    """The worker command of docs/DISTRIBUTED.md, named `name`."""
    return [
        str(Path(sys.executable).parent / "celery"),
        *("-A", "dagster_celery.app", "worker", "--loglevel", "INFO"),
        *("--pool", pool, "--concurrency", "1", "--hostname", f"{name}@%h"),
    ]


def start_workers(
    stack: contextlib.ExitStack, local: LocalStack, count: int, pool: str, timeout: float = 120
) -> list[Process]:
    """`count` Celery workers in the benchmark's folder, each ready (its log says so) before this
    returns; stopped with `stack`."""
    env = {**os.environ, **local.environment()}
    env["PYTHONPATH"] = os.pathsep.join([str(WORKER_CONFIG), env["PYTHONPATH"]])
    workers = []
    for index in range(count):
        name = f"worker{index + 1}"
        worker = Process(worker_argv(name, pool), env, local.folder, local.folder / f"{name}.log")
        stack.callback(worker.stop)
        worker.start()
        workers.append(worker)
    progress(f"starting {count} Celery workers ({pool} pool)")
    deadline = time.monotonic() + timeout
    for worker in workers:
        while " ready." not in worker.log_path.read_text(errors="replace"):
            if not worker.alive():
                raise RuntimeError(f"a Celery worker exited; see {worker.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"a Celery worker was not ready in {timeout:.0f} s")
            time.sleep(0.2)
    return workers


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


# --- the fault ---------------------------------------------------------------------------------


@dataclass
class WorkerKill:
    """SIGKILL the worker executing a run midway, once `after` runs have started.

    Midway: the run has archived at least one hour and holds the lease of the hour it is
    building. The worker is stopped (SIGSTOP) while that is checked, so the run cannot finish
    the hour in between: killed between two hours, it would hold no lease, and nothing would
    ever fail it (see docs/DISTRIBUTED.md).
    """

    instance: dg.DagsterInstance
    database_url: str
    workers: list[Process]
    day_runs: "RunLister"
    after: int
    target: str  # "worker": its whole process group; "pool": the process executing the run
    killed_at: float | None = None  # time.time()
    run_id: str | None = None
    worker_name: str | None = None
    killed_pids: set[int] = field(default_factory=set)
    error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="worker-kill", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        engine = create_db_engine(self.database_url)
        try:
            while not self.stop.is_set() and self.killed_at is None:
                runs = self.day_runs()
                if sum(1 for run in runs if run.status in STARTED) >= self.after:
                    for run in runs:
                        if run.status == dg.DagsterRunStatus.STARTED and self._kill_if_midway(
                            run, engine
                        ):
                            return
                time.sleep(0.2)
        except Exception as exc:  # reported as a FAIL by the caller
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            engine.dispose()

    def _worker_of(self, run: dg.DagsterRun) -> Process | None:
        pids = set(run_process_ids(self.instance, run.run_id))
        for worker in self.workers:
            if worker.process is not None and worker.alive():
                if pids & {p.pid for p in process_tree(worker.process.pid)}:
                    return worker
        return None

    def _kill_if_midway(self, run: dg.DagsterRun, engine: sa.Engine) -> bool:
        worker = self._worker_of(run)
        if worker is None or worker.process is None:
            return False
        # Dagster's event log first, with the worker running: a worker stopped in the middle
        # of a write would hold the SQLite lock of the run's event log, and the read would wait
        # for it (then fail) while the run it watches is frozen. A materialization, once
        # written, stays: reading it before the stop is as good as after.
        archived = len(
            self.instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=1
            ).records
        )
        if not archived:
            return False
        group = worker.process.pid
        os.killpg(group, signal.SIGSTOP)
        try:
            # Our database is in WAL mode: this read never waits for the stopped writer.
            with engine.connect() as connection:
                leases = connection.execute(
                    sa.select(sa.func.count()).where(ArchiveHourLease.holder == run.run_id)
                ).scalar_one()
        except Exception as exc:
            os.killpg(group, signal.SIGCONT)
            progress(f"could not check run {run.run_id} while its worker was stopped: {exc}")
            return False
        if not leases:
            os.killpg(group, signal.SIGCONT)
            return False
        self.run_id = run.run_id
        self.worker_name = worker.log_path.stem
        if self.target == "pool":
            # The process executing the run (the kernel's out-of-memory killer would pick it);
            # the worker's main process lives on, sees it die and starts another.
            (pid,) = set(run_process_ids(self.instance, run.run_id))
            self.killed_pids = {p.pid for p in process_tree(pid)}
            os.kill(pid, signal.SIGKILL)
            os.killpg(group, signal.SIGCONT)
            what = f"the pool process {pid} of {self.worker_name}"
        else:
            self.killed_pids = {p.pid for p in process_tree(group)}
            os.killpg(group, signal.SIGKILL)
            worker.process.wait()
            what = f"{self.worker_name} (process group {group})"
        self.killed_at = time.time()
        progress(
            f"SIGKILLed {what} executing run {run.run_id} midway (some hours archived, one in "
            "progress)"
        )
        return True


class RunLister:
    """The night's runs, for the kill thread (its own instance: not shared across threads)."""

    def __init__(self, home: Path, day: str) -> None:
        self.instance = dg.DagsterInstance.from_config(str(home))
        self.day = day

    def __call__(self) -> list[dg.DagsterRun]:
        runs = self.instance.get_runs(dg.RunsFilter(tags={"recordings/utc_day": self.day}))
        return [run for run in runs if run.job_name in HOURLY_ARCHIVES_JOB_NAMES]


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Usage:
    cpu_seconds: dict[str, float]  # process name -> CPU seconds, its finished children included
    worker_rss_mib: list[float]  # each live worker's processes, resident memory


def cpu_of(pid: int) -> float:
    """CPU seconds of a process and all its descendants, finished ones included (a finished
    child's time is in its parent's children_* once reaped)."""
    total = 0.0
    for proc in process_tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def usage(dagster: Dagster, workers: Sequence[Process], redis_pid: int | None) -> Usage:
    processes = {"code server and its runs": dagster.code_server, "daemon": dagster.daemon}
    processes.update({worker.log_path.stem: worker for worker in workers})
    cpu = {
        name: cpu_of(process.process.pid)
        for name, process in processes.items()
        if process.process is not None and process.alive()
    }
    if redis_pid is not None:
        cpu["redis"] = cpu_of(redis_pid)
    rss = [
        sum(p.memory_info().rss for p in process_tree(worker.process.pid)) / 2**20
        for worker in workers
        if worker.process is not None and worker.alive()
    ]
    return Usage(cpu, rss)


def open_multipart_uploads(local: LocalStack) -> int:
    client = local.s3.client
    uploads = client._list_multipart_uploads(ARCHIVE_BUCKET).uploads
    return len(uploads)


# --- the night ---------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_for(args: argparse.Namespace) -> Iterator[tuple[str, int | None]]:
    """The broker's URL and, when the benchmark started it, the server's pid."""
    if args.launcher != "celery":
        yield "", None
    elif args.redis_url:
        yield args.redis_url, None
    else:
        with temporary_redis() as server:
            assert server.process is not None
            yield server.url, server.process.pid


@dataclass
class CeleryNight:
    night: Night
    usage: Usage
    pool: str
    kill: WorkerKill | None
    failed_at: float | None  # when the killed run was marked failed
    failed_by: str  # what found it: the stalled-runs sensor, or run monitoring
    retry_succeeded_at: float | None
    run_processes: int  # distinct processes that executed the night's runs
    first_pass_ended: float  # when the last first attempt ended, the killed run's aside
    open_uploads: int


def celery_night(args: argparse.Namespace) -> tuple[Outcome, CeleryNight | None]:
    tick = nightly_tick(datetime.now(UTC))
    day = previous_utc_day(tick)
    names = [tenant_name(index) for index in range(args.tenants)]
    keys = night_keys(names, day)
    pool = worker_pool()
    with contextlib.ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="bench-celery-night-"))
        if args.keep:
            progress(f"keeping {folder}")
        else:
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
        redis_url, redis_pid = stack.enter_context(redis_for(args))
        os.environ["CELERY_BROKER_URL"] = redis_url
        os.environ["CELERY_RESULT_BACKEND"] = redis_url
        if args.lease_seconds:
            os.environ["BENCH_LEASE_SECONDS"] = str(args.lease_seconds)
        local = stack.enter_context(
            local_stack(
                folder,
                source_bucket=SOURCE_BUCKET,
                archive_bucket=ARCHIVE_BUCKET,
                database_url=args.database_url,
                dagster_yaml=instance_yaml(
                    args.launcher, args.dagster_postgres_url, args.monitor_seconds
                ),
            )
        )
        seeded = seed_night(local, folder, names, day, args)
        instance = open_instance(stack, local, args.max_concurrent, names)
        workers = (
            start_workers(stack, local, args.workers, pool) if args.launcher == "celery" else []
        )
        module = "quick_detection" if args.lease_seconds else "recordings_dagster.definitions"
        code_server, workspace = start_code_server(stack, local, module)
        store_schedule_states(instance, workspace, tick)
        daemon = daemon_process(stack, local, workspace)
        progress(f"starting dagster-daemon; it evaluates the {tick:%Y-%m-%d %H:%M} UTC tick")
        dagster = Dagster(code_server, daemon, time.time())
        daemon.start()

        kill = None
        if args.kill_after:
            kill = WorkerKill(
                instance,
                local.database_url,
                workers,
                RunLister(local.home, str(day)),
                args.kill_after,
                args.kill,
            )
            kill.start()
        samples = Samples()
        failures = watch(instance, dagster, None, samples, day, keys, args)
        if kill is not None:
            kill.stop.set()
            failures += kill_failures(kill)
        measured = usage(dagster, workers, redis_pid)
        for worker in workers:
            worker.stop()
        dagster.stop()

        record = night_record(
            instance, local, folder, args, tick, names, seeded, samples, None, dagster.started_at
        )
        if record is None:
            return Outcome([("tenants", str(args.tenants))], [*failures, NO_RUN]), None
        result = CeleryNight(
            night=record,
            usage=measured,
            pool=pool,
            kill=kill,
            failed_at=None,
            failed_by="",
            retry_succeeded_at=None,
            run_processes=len(
                {pid for run in record.runs.runs for pid in run_process_ids(instance, run.run_id)}
            ),
            first_pass_ended=first_pass_end(instance, record, kill),
            open_uploads=open_multipart_uploads(local),
        )
        if kill is not None and kill.run_id is not None:
            failures += follow_the_killed_run(instance, result, kill.run_id)
    retries = retries_of(record)
    failures += checks(record, retries)
    if result.open_uploads:
        failures.append(f"{result.open_uploads} multipart uploads left open in the archive bucket")
    instance_file = "dagster.celery.yaml" if args.launcher == "celery" else "dagster.prod.yaml"
    storage = "PostgreSQL storage" if args.dagster_postgres_url else "SQLite storage"
    lines = [
        (name.replace("dagster.prod.yaml", instance_file).replace("SQLite storage", storage), value)
        for name, value in table(record, retries)
    ]
    return Outcome(lines + rows(result), failures), result


def first_pass_end(instance: dg.DagsterInstance, night: Night, kill: WorkerKill | None) -> float:
    """When the last first-attempt run ended, the killed one aside: the night's throughput
    without the wait for the dead worker to be found."""
    ended: dict[str, float] = {}
    for event in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE):
        ended.update(status_times(instance, event))
    killed = kill.run_id if kill is not None else None
    return max(
        (ended.get(run.run_id, 0.0) for run in night.runs.first_attempts if run.run_id != killed),
        default=night.runs.first_enqueued,
    )


def kill_failures(kill: WorkerKill) -> list[str]:
    if kill.error:
        return [f"the worker kill failed: {kill.error}"]
    if kill.killed_at is None:
        return ["no run was caught midway: no worker was killed (more tenants or audio?)"]
    return []


def follow_the_killed_run(
    instance: dg.DagsterInstance, result: CeleryNight, run_id: str
) -> list[str]:
    """When the killed run was failed, and its retry: another run of its group that succeeded,
    executed by a surviving worker."""
    failures: list[str] = []
    run = instance.get_run_by_id(run_id)
    if run is None or run.status != dg.DagsterRunStatus.FAILURE:
        failures.append(f"the killed run {run_id} ended {run.status if run else 'missing'}")
    failed = instance.fetch_run_status_changes(
        dg.DagsterEventType.RUN_FAILURE, limit=10_000, ascending=True
    ).records
    record = next((r for r in failed if r.event_log_entry.run_id == run_id), None)
    if record is not None:
        result.failed_at = record.timestamp
        event = record.event_log_entry.dagster_event
        message = (event.message if event else None) or record.event_log_entry.user_message
        result.failed_by = (
            "the stalled-runs sensor"
            if "stopped refreshing" in message
            else "run monitoring"
            if "Detected run worker status" in message
            else message[:80]
        )
    retries = [r for r in result.night.runs.retries if r.tags.get(PARENT_RUN_ID_TAG) == run_id]
    if not retries or retries[0].status != dg.DagsterRunStatus.SUCCESS:
        failures.append(f"the killed run's retry did not succeed: {[r.status for r in retries]}")
        return failures
    retry = retries[0]
    success = instance.fetch_run_status_changes(
        dg.DagsterEventType.RUN_SUCCESS, limit=10_000, ascending=True
    ).records
    result.retry_succeeded_at = next(
        (r.timestamp for r in success if r.event_log_entry.run_id == retry.run_id), None
    )
    retry_pids = set(run_process_ids(instance, retry.run_id))
    assert result.kill is not None
    if not retry_pids or retry_pids & result.kill.killed_pids:
        failures.append(f"the killed run's retry ran in {retry_pids}, not on a surviving worker")
    return failures


def rows(result: CeleryNight) -> list[tuple[str, str]]:
    night, usage_ = result.night, result.usage
    args, figures = night.args, night.runs
    origin = figures.first_enqueued
    wall = night.archives.last_materialized - origin
    runs = len(figures.runs)
    cpu = sum(usage_.cpu_seconds.values())
    engine = (
        f"Celery: {args.workers} workers ({result.pool} pool, 1 slot each), Redis"
        if args.launcher == "celery"
        else "default run launcher: a process per run, started by the code server"
    )
    first_pass = result.first_pass_ended - origin
    first_runs = len(figures.first_attempts) - (1 if result.kill and result.kill.run_id else 0)
    lines = [
        ("run engine", engine),
        (
            "runs per second (launched / first enqueue to last materialization)",
            f"{runs / wall:.3f}",
        ),
        (
            "first pass, the killed run aside: runs / first enqueue to the last one's end / "
            "runs per second",
            f"{first_runs} / {first_pass:.1f} s / {first_runs / first_pass:.3f}"
            if first_runs
            else "none: the night's one first-attempt run was the killed one",
        ),
        ("processes that executed the night's runs", f"{result.run_processes} for {runs} runs"),
        (
            "CPU seconds, every process the night started: total / per run / per tenant-day",
            f"{cpu:.1f} / {cpu / runs:.2f} / {cpu / args.tenants:.2f}",
        ),
        (
            "CPU seconds by process",
            ", ".join(f"{name} {seconds:.1f}" for name, seconds in usage_.cpu_seconds.items()),
        ),
    ]
    if usage_.worker_rss_mib:
        lines.append(
            (
                "Celery workers' resident memory at the end (each, all its processes)",
                ", ".join(f"{rss:.0f} MiB" for rss in usage_.worker_rss_mib),
            )
        )
    kill = result.kill
    if kill is not None and kill.killed_at is not None:
        failed = f"+{result.failed_at - kill.killed_at:.1f} s" if result.failed_at else "never"
        retried = (
            f"+{result.retry_succeeded_at - kill.killed_at:.1f} s"
            if result.retry_succeeded_at
            else "never"
        )
        lines.append(
            (
                "fault: a worker SIGKILLed mid-run",
                f"{'the pool process of ' if kill.target == 'pool' else ''}{kill.worker_name} at "
                f"+{kill.killed_at - origin:.1f} s from the first enqueue; its run failed "
                f"{failed} later ({result.failed_by}), its retry "
                f"succeeded {retried} later (hour leases of "
                f"{args.lease_seconds or DEFAULT_LEASE_SECONDS} s)",
            )
        )
    lines.append(("multipart uploads left open in the archive bucket", str(result.open_uploads)))
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--launcher", choices=("celery", "default"), default="celery")
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="Celery workers, 1 slot each")
    parser.add_argument(
        "--max-concurrent", type=int, help="max_concurrent_runs (default: --workers)"
    )
    parser.add_argument("--recordings", type=int, default=2, help="recordings per tenant")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each recording")
    parser.add_argument(
        "--kill-after", type=int, default=0, help="SIGKILL a worker once this many runs started"
    )
    parser.add_argument(
        "--kill",
        choices=("worker", "pool"),
        default="worker",
        help="what --kill-after SIGKILLs: the whole worker (a machine lost) or the pool process "
        "executing the run (out of memory)",
    )
    parser.add_argument(
        "--monitor-seconds", type=int, default=0, help="run monitoring's poll interval (0: 120)"
    )
    parser.add_argument(
        "--lease-seconds",
        type=int,
        default=0,
        help="hour leases and stalled-runs sensor interval (bench/quick_detection.py); "
        "0: production's",
    )
    parser.add_argument("--redis-url", help="an existing Redis (default: start one)")
    parser.add_argument(
        "--database-url", help="the application database (default: SQLite in the folder)"
    )
    parser.add_argument(
        "--dagster-postgres-url",
        help="Dagster's storage in this PostgreSQL database, a postgresql+psycopg2 URL "
        "(default: SQLite under DAGSTER_HOME)",
    )
    parser.add_argument("--time-cap", type=float, default=1800.0, help="seconds before FAIL")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if args.max_concurrent is None:
        args.max_concurrent = args.workers if args.launcher == "celery" else 2
    if args.kill_after and (args.launcher != "celery" or args.workers < 2):
        parser.error("--kill-after needs --launcher celery and at least two workers")
    if args.kill == "pool" and worker_pool() != "prefork":
        parser.error(
            "--kill pool needs the prefork pool (the archive job on the in-process executor)"
        )
    # bench/night.py's watch() triggers its S3 fault from these; this night has none.
    args.fault_after, args.fault_seconds = 0, 0.0
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
    outcome, _ = celery_night(args)
    return report_outcome(
        f"A night through the Dagster daemon, {args.launcher} launcher, {args.tenants} tenants",
        outcome,
    )


if __name__ == "__main__":
    sys.exit(main())
