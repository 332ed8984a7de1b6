"""The fixed cost of an empty and of a tiny tenant-day, today: the baseline issue 11 cuts.

A tenant-day is one run of its shard's archive job (`hourly_archives_shard_07`) over a
tenant's 24 hours, as the nightly schedule requests it. Its audio is not what this measures: an
*empty* tenant-day has no recordings, a *tiny* one has `--recordings` recordings of `--seconds`
seconds (synthesized speech in the demo's formats, in distinct hours). Everything runs on a
local stack of the benchmark's own (`bench/stack.py`: SeaweedFS, a SQLite application
database, a DAGSTER_HOME with the repository's `dagster.yaml`, so SQLite run and event
storage); every tenant-day is a fresh tenant, as on a night.

1. In process: `hourly_archives_job_def(job).execute_in_process(instance, tags)` per tenant-day,
   with the tags of the schedule's run request (`nightly_run_requests`) and the CLI's quiet
   console, after one warm-up run. CPU is `time.process_time()` of this process (every thread:
   conversion, uploads), per tenant-day and per hour; SeaweedFS's CPU is shown apart.
2. Through `recordings materialize` (a subprocess with the stack's environment): the
   reconstructable job on the multiprocess executor, one step subprocess per tenant-day. CPU is
   the `RUSAGE_CHILDREN` delta around the command (the CLI process and its step processes), for
   1 tenant and for `--materialize-tenants` K tenants in one command, so the fixed cost of the
   command and the marginal cost of one more tenant-day ((CPU(K) - CPU(1)) / (K - 1)) are
   apart.
3. Where an empty tenant-day's in-process CPU goes: cProfile over `--profile-tenants` more
   empty tenant-days (profiled apart, so the timings of 1. carry no profiler overhead; every
   thread the run starts is profiled too, with each thread's CPU time as the timer), its
   cumulative times grouped into named buckets (the buckets nest: `store_event` is inside
   `context.log` and inside the run's creation, for instance), and the events each tenant-day
   stores in the run's event log, by type (a `context.log` line is an event without a Dagster
   event type: "log message").

Targets (issue 11): an empty hour at most 20 ms of CPU end to end, an empty or tiny tenant-day
at most 0.5 CPU-s including its share of run overhead; the tables print current / target.

Run::

    PYTHONPATH=. .venv/bin/python bench/tenant_day_overhead.py [--tenants 5]
        [--materialize-tenants 4] [--profile-tenants 2] [--recordings 2] [--seconds 3]
        [--kinds empty tiny] [--profile-out overhead.prof]

Markdown goes to stdout, progress to stderr. CPU figures from a shared 2-core machine are noisy;
the load average is printed with them.
"""

import argparse
import contextlib
import cProfile
import math
import os
import pstats
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
from minio import Minio
from sqlalchemy.orm import Session
from stack import (  # bench/stack.py
    LocalStack,
    SourceRecordings,
    elapsed,
    local_stack,
    progress,
)

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import create_db_engine, session_scope
from recordings.keys import day_hours, tenant_shard
from recordings.packing import DEFAULT_MAX_TENANTS_PER_RUN

SOURCE_BUCKET = "overhead-sources"
ARCHIVE_BUCKET = "overhead-archives"
HOURS = 24
EMPTY_HOUR_TARGET = 0.020  # CPU-s, end to end
TENANT_DAY_TARGET = 0.5  # CPU-s, including its share of run overhead
KINDS = ("empty", "tiny")
PACKED_SHARD = 0  # every benchmark tenant is of this shard


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of another (running) process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- tenants -----------------------------------------------------------------------------------


@dataclass
class Tenants:
    """Fresh tenants handed out by kind: each is enabled when made and, if tiny, has its
    recordings uploaded and registered for `day`."""

    database_url: str
    client: Minio
    day: date
    per_tenant: int
    seconds: float
    scratch: Path
    made: int = 0

    def __post_init__(self) -> None:
        rng = random.Random(f"overhead:{self.day.isoformat()}")  # noqa: S311 - bench data
        self._sources = SourceRecordings(
            self.client, SOURCE_BUCKET, self.seconds, self.scratch, rng
        )

    def make(self, kind: str, count: int) -> list[str]:
        """`count` fresh tenants, all of one shard: the schedule packs each shard's tenants
        apart, so K tenant-days of one shard share one run, as a full pack's do."""
        names: list[str] = []
        while len(names) < count:
            name = f"{kind}-{self.made:05d}"
            self.made += 1
            if tenant_shard(name) == PACKED_SHARD:
                names.append(name)
        engine = create_db_engine(self.database_url)
        with session_scope(engine) as session:
            for tenant in names:
                ensure_tenant(session, tenant, f"Overhead tenant {tenant}")
                set_recording_settings(
                    session, tenant, changed_by="bench-overhead", enabled=True, retention_days=7
                )
                if kind == "tiny":
                    self._record(session, tenant)
        engine.dispose()
        return names

    def _record(self, session: Session, tenant: str) -> None:
        hours = day_hours(self.day)
        offset = self.made % HOURS
        for number in range(self.per_tenant):
            hour = hours[(offset + 7 * number) % HOURS]  # 7 and 24 coprime: distinct hours
            started_at = hour + timedelta(minutes=10 + number, seconds=17)
            self._sources.add(session, tenant, offset + number, started_at)


# --- 1. in process -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InProcess:
    tenant_days: int
    runs: int
    cpu: float  # this process, over every run
    wall: float
    s3_cpu: float  # SeaweedFS, over every run
    run_ids: list[str]


def run_in_process(
    instance: dg.DagsterInstance, day: date, tenants: Sequence[str], s3_pid: int
) -> InProcess:
    """The tenants' day as the schedule requests it (packed into runs: one run for up to 200
    small tenant-days), each run `execute_in_process` with the request's tags; every hour must
    be materialized."""
    from recordings_dagster.execution import QUIET_CONSOLE, hourly_archives_job_def
    from recordings_dagster.schedules import nightly_run_requests

    jobs: dict[str, dg.JobDefinition] = {}  # by name: each shard's job resolved once
    run_ids: list[str] = []
    s3_before = process_cpu_seconds(s3_pid)
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for request in nightly_run_requests(instance, tenants, day):
        assert request.job_name is not None
        if request.job_name not in jobs:
            jobs[request.job_name] = hourly_archives_job_def(request.job_name)
        result = jobs[request.job_name].execute_in_process(
            instance=instance, tags=request.tags, run_config=QUIET_CONSOLE
        )
        if not result.success:
            raise RuntimeError(f"the run of {request.tags} failed")
        run_ids.append(result.run_id)
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    check_materialized(instance, run_ids, len(tenants))
    return InProcess(
        len(tenants), len(run_ids), cpu, wall, process_cpu_seconds(s3_pid) - s3_before, run_ids
    )


def check_materialized(instance: dg.DagsterInstance, run_ids: Sequence[str], tenants: int) -> None:
    records = sum(
        len(
            instance.get_records_for_run(
                run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=1_000_000
            ).records
        )
        for run_id in run_ids
    )
    if records != HOURS * tenants:
        raise RuntimeError(f"runs {run_ids} materialized {records} hours, not {HOURS * tenants}")


def event_counts(instance: dg.DagsterInstance, result: InProcess) -> dict[str, float]:
    """Events stored per tenant-day, on average, by Dagster event type ("log message": a
    `context.log` line, stored as an event without a Dagster event)."""
    counts: Counter[str] = Counter()
    for run_id in result.run_ids:
        for record in instance.get_records_for_run(run_id, limit=1_000_000).records:
            event = record.event_log_entry.dagster_event
            counts[event.event_type_value if event else "log message"] += 1
    return {event_type: count / result.tenant_days for event_type, count in counts.items()}


# --- 2. through `recordings materialize` -------------------------------------------------------


@dataclass(frozen=True)
class Materialized:
    tenants: int
    cpu: float  # the command and its step processes
    wall: float
    s3_cpu: float


def run_materialize(
    local: LocalStack, day: date, tenants: Sequence[str], s3_pid: int
) -> Materialized:
    """`recordings materialize --day D --tenant ...` as a subprocess in the stack's folder (no
    developer `.env`), with the stack's environment; CPU from RUSAGE_CHILDREN."""
    command = [str(Path(sys.executable).parent / "recordings"), "materialize", "--day", str(day)]
    for tenant in tenants:
        command += ["--tenant", tenant]
    env = {**os.environ, **local.environment()}
    children, s3_before, start = (
        children_cpu_seconds(),
        process_cpu_seconds(s3_pid),
        time.perf_counter(),
    )
    completed = subprocess.run(
        command, cwd=local.folder, env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    cpu = children_cpu_seconds() - children
    if completed.returncode != 0 or "all tenant-days archived" not in completed.stdout:
        raise RuntimeError(f"materialize failed:\n{completed.stdout}\n{completed.stderr[-3000:]}")
    return Materialized(len(tenants), cpu, wall, process_cpu_seconds(s3_pid) - s3_before)


# --- 3. the profile ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """A named share of the profile: the cumulative time of every function it matches, taking
    the outermost match only (a function matched inside another match is not counted twice);
    with `called_from`, only the calls made from files whose path contains it."""

    name: str
    matches: Callable[[str, str], bool]  # (file, function name)
    called_from: str | None = None


def _in(path_part: str, *names: str) -> Callable[[str, str], bool]:
    return lambda file, name: path_part in file and (not names or name in names)


BUCKETS = (
    Bucket("Dagster: every event stored (`store_event`)", _in("event_log", "store_event")),
    Bucket(
        "Dagster: the run's creation, its planned events (`create_run_for_job`)",
        _in("dagster/_core/instance", "create_run_for_job"),
    ),
    Bucket(
        "Dagster: the execution plan (`create_execution_plan`)",
        _in("dagster/_core/execution", "create_execution_plan"),
    ),
    Bucket(
        "Dagster: the planned events, within the run's creation (`_log_asset_planned_events`)",
        _in("dagster/_core/instance", "_log_asset_planned_events"),
    ),
    Bucket(
        "Dagster: SQLite event log, a connection opened per statement (`_connect`)",
        _in("event_log/sqlite", "_connect"),
    ),
    Bucket(
        "ours: `context.log` lines (asset)",
        _in("logging/__init__", "info", "warning", "error"),
        called_from="recordings_dagster/",
    ),
    Bucket(
        "ours: per-hour materialization events (`_record_hour`)",
        _in("recordings_dagster/assets", "_record_hour"),
    ),
    Bucket("ours: hour leases (`HourLeases`)", _in("recordings/leases")),
    Bucket("ours: `recordings_in_hour`", _in("recordings/catalog", "recordings_in_hour")),
    Bucket("ours: `is_enabled`", _in("recordings/catalog", "is_enabled")),
    Bucket("ours: `recorded_sha256`", _in("recordings_instance/archives", "recorded_sha256")),
    Bucket(
        "ours: empty ZIP build + S3 upload (`build_hour_archive`)",
        _in("recordings/archive/hourly", "build_hour_archive"),
    ),
    Bucket("S3 client calls (minio, all)", _in("minio/api", "_url_open")),
    Bucket("SQLAlchemy `execute` (both databases, all)", _in("sqlalchemy/engine/base", "execute")),
)


ProfileKey = tuple[str, int, str]  # file, line, function name
# (primitive calls, calls, own time, cumulative time, {caller: (the same four, from it)})
ProfileRow = tuple[int, int, float, float, dict[ProfileKey, tuple[int, int, float, float]]]


def profile_table(stats: pstats.Stats) -> dict[ProfileKey, ProfileRow]:
    """The rows `pstats` keeps in its `stats` attribute, which the type stubs do not declare."""
    return vars(stats)["stats"]


def _norm(file: str) -> str:
    return file.replace(os.sep, "/")


def bucket_seconds(stats: pstats.Stats, bucket: Bucket) -> tuple[float, int]:
    """Cumulative seconds and calls of the outermost functions `bucket` matches."""
    table = profile_table(stats)
    matched = {key for key in table if bucket.matches(_norm(key[0]), key[2])}

    seconds = 0.0
    calls = 0
    if bucket.called_from is not None:
        for key in matched:
            for caller, (_c_cc, c_nc, _c_tt, c_ct) in table[key][4].items():
                if bucket.called_from in _norm(caller[0]):
                    seconds += c_ct
                    calls += c_nc
        return seconds, calls
    for key in matched:
        _cc, nc, _tt, ct, callers = table[key]
        # Only the time reached from outside the bucket: calls from another matched function
        # are already inside that function's cumulative time.
        inner = [caller for caller in callers if caller in matched]
        if not inner:
            seconds += ct
            calls += nc
            continue
        for caller, (_c_cc, c_nc, _c_tt, c_ct) in callers.items():
            if caller not in matched:
                seconds += c_ct
                calls += c_nc
    return seconds, calls


@contextlib.contextmanager
def profiled(profiles: list[cProfile.Profile]) -> Iterator[None]:
    """cProfile over this thread and over every thread started meanwhile (the hour builds and
    conversions run in thread pools, the lease refresher in a thread of its own): a profiler
    only sees the thread that enabled it, so each new thread gets its own. The timer is the
    thread's CPU time, so time spent waiting (on S3, on a lock, asleep) counts nothing and the
    threads' profiles add up to CPU."""
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()
        try:
            original(self)
        finally:
            profile.disable()

    main = cProfile.Profile(time.thread_time)
    profiles.append(main)
    threading.Thread.run = run
    main.enable()
    try:
        yield
    finally:
        main.disable()
        threading.Thread.run = original


def top_functions(stats: pstats.Stats, count: int) -> list[tuple[str, float, int]]:
    table = profile_table(stats)
    rows = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:count]
    return [(f"{Path(key[0]).name}:{key[1]} `{key[2]}`", value[2], value[1]) for key, value in rows]


# --- the report --------------------------------------------------------------------------------


def ratio(value: float, target: float) -> str:
    return f"{value / target:.1f}x"


@dataclass(frozen=True)
class Split:
    """A fixed cost per command or run and a marginal cost per tenant-day, from the CPU of 1
    and of K tenant-days: marginal = (CPU(K) - CPU(1)) / (K - 1), fixed = CPU(1) - marginal."""

    marginal: float
    fixed: float

    @classmethod
    def of(cls, one: float, many: float, tenants: int) -> "Split":
        marginal = (many - one) / (tenants - 1)
        return cls(marginal, one - marginal)

    def amortized(self, tenants_per_run: int) -> float:
        """CPU-s per tenant-day when `tenants_per_run` share the fixed cost."""
        return self.marginal + self.fixed / tenants_per_run


def in_process_split(one: InProcess, many: InProcess) -> Split:
    return Split.of(one.cpu + one.s3_cpu, many.cpu + many.s3_cpu, many.tenant_days)


def print_in_process(results: dict[str, tuple[InProcess, InProcess]]) -> None:
    print(
        "\n### 1. Tenant-days in process (`execute_in_process` of the schedule's packed runs; "
        "CPU of this process and of SeaweedFS)\n"
    )
    print(
        "| Tenant-day | Tenant-days | Runs | CPU-s, all | of which SeaweedFS | Wall s | "
        "CPU-s per tenant-day | CPU ms per hour | Current / target |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, (one, many) in results.items():
        for result in (one, many):
            cpu = result.cpu + result.s3_cpu
            per_day = cpu / result.tenant_days
            print(
                f"| {kind} | {result.tenant_days} | {result.runs} | {cpu:.2f} | "
                f"{result.s3_cpu:.2f} | {result.wall:.1f} | {per_day:.3f} | "
                f"{per_day / HOURS * 1000:.1f} | {ratio(per_day, TENANT_DAY_TARGET)} |"
            )
        split = in_process_split(one, many)
        print(
            f"| {kind}: **marginal tenant-day** (CPU({many.tenant_days}) - CPU(1)) / "
            f"{many.tenant_days - 1} | | | | | | **{split.marginal:.3f}** | "
            f"**{split.marginal / HOURS * 1000:.1f}** | "
            f"{ratio(split.marginal, TENANT_DAY_TARGET)} |"
        )
        print(
            f"| {kind}: fixed cost of a run, CPU(1) - marginal | | | | | | {split.fixed:.2f} | | |"
        )
        packed = split.amortized(DEFAULT_MAX_TENANTS_PER_RUN)
        print(
            f"| {kind}: per tenant-day in a full pack of {DEFAULT_MAX_TENANTS_PER_RUN}, "
            f"marginal + fixed / {DEFAULT_MAX_TENANTS_PER_RUN} | | | | | | {packed:.3f} | "
            f"{packed / HOURS * 1000:.1f} | {ratio(packed, TENANT_DAY_TARGET)} |"
        )
    print(
        f"\nTargets: {TENANT_DAY_TARGET} CPU-s per tenant-day including its share of run "
        f"overhead; {EMPTY_HOUR_TARGET * 1000:.0f} ms of CPU per empty hour end to end (the "
        "empty rows' ms per hour, SeaweedFS included)."
    )


def print_materialize(
    results: dict[str, tuple[Materialized, Materialized]],
    in_process: dict[str, tuple[InProcess, InProcess]],
) -> None:
    print(
        "\n### 2. Through `recordings materialize` (a process of its own, the packed runs in "
        "process)\n"
    )
    print(
        "| Tenant-day | Tenants in the command | CPU-s, command | Wall s | "
        "SeaweedFS CPU-s | CPU-s per tenant-day | Current / target |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, (one, many) in results.items():
        for result in (one, many):
            per_day = (result.cpu + result.s3_cpu) / result.tenants
            print(
                f"| {kind} | {result.tenants} | {result.cpu:.2f} | {result.wall:.1f} | "
                f"{result.s3_cpu:.2f} | {per_day:.2f} | {ratio(per_day, TENANT_DAY_TARGET)} |"
            )
        split = materialize_split(one, many)
        print(
            f"| {kind}: **marginal tenant-day** (CPU({many.tenants}) - CPU(1)) / "
            f"{many.tenants - 1} | | | | | **{split.marginal:.3f}** "
            f"({split.marginal / HOURS * 1000:.1f} ms per hour) | "
            f"{ratio(split.marginal, TENANT_DAY_TARGET)} |"
        )
        print(
            f"| {kind}: fixed cost of the command (interpreter, code load, run), CPU(1) - "
            f"marginal | | | | | {split.fixed:.2f} | |"
        )
        extra = split.marginal - in_process_split(*in_process[kind]).marginal
        print(f"| {kind}: marginal beyond the in-process one | | | | | {extra:.3f} | |")


def materialize_split(one: Materialized, many: Materialized) -> Split:
    return Split.of(one.cpu + one.s3_cpu, many.cpu + many.s3_cpu, many.tenants)


def print_profile(stats: pstats.Stats, profiled_days: int, kind: str) -> None:
    total = sum(row[2] for row in profile_table(stats).values())  # own times add up to the total
    per_day = total / profiled_days
    print(
        f"\n### 3. Where a {kind} tenant-day's in-process CPU goes (cProfile, {profiled_days} "
        f"{kind} tenant-days in one run)\n"
    )
    print(
        f"Profiled total: {per_day:.2f} CPU-s per tenant-day over all threads (the profiler "
        "itself inflates it; the timer is each thread's CPU time). "
        "Buckets nest (an event stored by a `context.log` line is in both), so they do not add "
        "up; each counts the outermost matching calls once.\n"
    )
    print("| Bucket | s per tenant-day | Share | Calls per tenant-day |")
    print("| --- | ---: | ---: | ---: |")
    for bucket in BUCKETS:
        seconds, calls = bucket_seconds(stats, bucket)
        print(
            f"| {bucket.name} | {seconds / profiled_days:.3f} | {seconds / total:.0%} | "
            f"{calls / profiled_days:.0f} |"
        )
    store, events = bucket_seconds(stats, BUCKETS[0])
    if events:
        print(
            f"\nOne stored event costs {store / events * 1000:.1f} ms of profiled CPU "
            f"({events / profiled_days:.0f} events per {kind} tenant-day)."
        )
    print("\nMost expensive functions by own time (all profiled tenant-days):\n")
    print("| Function | Own s per tenant-day | Calls per tenant-day |")
    print("| --- | ---: | ---: |")
    for name, own, calls in top_functions(stats, 12):
        print(f"| {name} | {own / profiled_days:.3f} | {calls / profiled_days:.0f} |")


PER_HOUR_EVENTS = ("ASSET_MATERIALIZATION_PLANNED", "ASSET_MATERIALIZATION", "log message")


def print_events(per_day: dict[str, dict[str, float]]) -> None:
    """Events stored per tenant-day by type, for each kind measured; then per hour and per run."""
    kinds = list(per_day)
    print(
        "\n### Events stored per tenant-day, by type (the packed runs' event logs / tenant-days)\n"
    )
    print("| Event type | " + " | ".join(kinds) + " |")
    print("| --- | " + " | ".join("---:" for _ in kinds) + " |")
    first = per_day[kinds[0]]
    types = {event_type for counts in per_day.values() for event_type in counts}
    types = sorted(types, key=lambda event_type: -first.get(event_type, 0))
    for event_type in types:
        cells = " | ".join(f"{per_day[kind].get(event_type, 0):.0f}" for kind in kinds)
        print(f"| {event_type} | {cells} |")
    print("| **all** | " + " | ".join(f"**{sum(per_day[k].values()):.0f}**" for k in kinds) + " |")
    hourly = sum(first.get(t, 0) for t in PER_HOUR_EVENTS)
    print(
        f"\nGrowth ({kinds[0]}): {hourly / HOURS:.1f} events per hour "
        f"({', '.join(PER_HOUR_EVENTS)}) and {sum(first.values()) - hourly:.1f} more per "
        "tenant-day (a run's own events, shared by the tenant-days packed into it)."
    )


@dataclass(frozen=True)
class Growth:
    name: str
    split: Split
    tenants_per_run: int

    def night(self, tenants: int) -> float:
        """CPU-s of `tenants` tenant-days: each its marginal cost, each run its fixed cost."""
        return self.split.marginal * tenants + self.split.fixed * math.ceil(
            tenants / self.tenants_per_run
        )


def print_growth(rows: Sequence[Growth]) -> None:
    """Each figure at 100, 1,000 and 10,000 tenants: marginal x N + fixed x ceil(N / P), P the
    tenant-days per run; 24 hours each, so per hour is per tenant-day / 24."""
    print("\n### Growth: CPU of a night of empty or tiny tenant-days, at this cost\n")
    print(
        "Formula: CPU(N) = marginal x N + fixed x ceil(N / P), P tenant-days per run (the "
        f"schedule packs up to {DEFAULT_MAX_TENANTS_PER_RUN} small ones).\n"
    )
    print(
        "| Figure | marginal CPU-s | fixed CPU-s | P | 100 tenants | 1,000 tenants | "
        "10,000 tenants | per tenant-day at 10,000 | Current / target |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        cells = " | ".join(cpu_time(row.night(tenants)) for tenants in (100, 1_000, 10_000))
        per_day = row.night(10_000) / 10_000
        print(
            f"| {row.name} | {row.split.marginal:.3f} | {row.split.fixed:.2f} | "
            f"{row.tenants_per_run} | {cells} | {per_day:.3f} | "
            f"{ratio(per_day, TENANT_DAY_TARGET)} |"
        )
    print(
        f"\nAt the target ({TENANT_DAY_TARGET} CPU-s per tenant-day) 10,000 tenant-days are "
        f"{cpu_time(TENANT_DAY_TARGET * 10_000)}. CPU time, not wall time: on 2 cores the wall "
        "time is at least half of it. The marginal cost grows with hours (one materialization "
        "and one empty archive each); the fixed cost with runs."
    )


def cpu_time(seconds: float) -> str:
    return f"{seconds / 3600:.1f} CPU-h" if seconds >= 3600 else f"{seconds / 60:.1f} CPU-min"


# --- driver ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--tenants", type=int, default=20, help="K: tenant-days of the in-process pack, per kind"
    )
    parser.add_argument(
        "--materialize-tenants",
        type=int,
        default=20,
        help="K: tenants in the second `recordings materialize` command, per kind (at least 2)",
    )
    parser.add_argument(
        "--profile-tenants", type=int, default=2, help="tenant-days run under cProfile"
    )
    parser.add_argument(
        "--profile-kind", choices=KINDS, default="empty", help="which tenant-days are profiled"
    )
    parser.add_argument("--recordings", type=int, default=2, help="recordings of a tiny tenant")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each recording")
    parser.add_argument(
        "--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="tenant-days to measure"
    )
    parser.add_argument("--profile-out", type=Path, help="also write the profile here (pstats)")
    parser.add_argument("--temp-dir", type=Path, help="where the temporary folder goes")
    args = parser.parse_args(argv)
    if args.tenants < 2 or args.materialize_tenants < 2 or args.profile_tenants < 1:
        parser.error("--tenants and --materialize-tenants at least 2, --profile-tenants at least 1")
    if not 1 <= args.recordings <= HOURS or args.seconds <= 0:
        parser.error("--recordings 1-24 and --seconds positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    print(
        f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, Dagster "
        f"{dg.__version__}; load average at start {load_average()}. Day {day}; SQLite run, event "
        f"and application storage. Tiny tenant-day: {args.recordings} recording(s) of "
        f"{args.seconds:g} s."
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-overhead-", dir=args.temp_dir) as name,
        local_stack(
            Path(name), source_bucket=SOURCE_BUCKET, archive_bucket=ARCHIVE_BUCKET
        ) as local,
    ):
        s3_pid = local.s3.server.running_pid()
        if s3_pid is None:
            raise RuntimeError("the local S3 server is not running")
        # The in-process runs' resources read the stack's environment, as a run process would.
        os.environ.update(local.environment())
        scratch = Path(name) / "scratch"
        scratch.mkdir()
        tenants = Tenants(
            local.database_url, local.s3.client, day, args.recordings, args.seconds, scratch
        )
        with dg.DagsterInstance.from_config(str(local.home)) as instance:
            progress("in process: warm-up tenant-day")
            run_in_process(instance, day, tenants.make("empty", 1), s3_pid)
            in_process: dict[str, tuple[InProcess, InProcess]] = {}
            for kind in args.kinds:
                progress(f"in process: 1 {kind} tenant-day, then {args.tenants} in one run")
                one = run_in_process(instance, day, tenants.make(kind, 1), s3_pid)
                many = run_in_process(instance, day, tenants.make(kind, args.tenants), s3_pid)
                in_process[kind] = (one, many)
            progress(
                f"profile: {args.profile_tenants} {args.profile_kind} tenant-days under cProfile"
            )
            profiles: list[cProfile.Profile] = []
            names = tenants.make(args.profile_kind, args.profile_tenants)
            with profiled(profiles):
                run_in_process(instance, day, names, s3_pid)
            stats = pstats.Stats(*profiles)
            if args.profile_out is not None:
                stats.dump_stats(args.profile_out)
            events = {kind: event_counts(instance, many) for kind, (_, many) in in_process.items()}
        materialized: dict[str, tuple[Materialized, Materialized]] = {}
        for kind in args.kinds:
            progress(f"materialize: 1 {kind} tenant")
            one = run_materialize(local, day, tenants.make(kind, 1), s3_pid)
            progress(f"materialize: {args.materialize_tenants} {kind} tenants")
            many = run_materialize(local, day, tenants.make(kind, args.materialize_tenants), s3_pid)
            materialized[kind] = (one, many)
        print_in_process(in_process)
        print_materialize(materialized, in_process)
        print_profile(stats, args.profile_tenants, args.profile_kind)
        print_events(events)
        growth = [
            Growth(f"{kind}, in process", in_process_split(*pair), DEFAULT_MAX_TENANTS_PER_RUN)
            for kind, pair in in_process.items()
        ]
        growth += [
            Growth(
                f"{kind}, `recordings materialize`",
                materialize_split(*pair),
                DEFAULT_MAX_TENANTS_PER_RUN,
            )
            for kind, pair in materialized.items()
        ]
        print_growth(growth)
    print(f"\n_Load average at the end {load_average()}; bench runtime {elapsed():.0f} s._")


if __name__ == "__main__":
    main()
