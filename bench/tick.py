"""The nightly tick at 100, 1,000 and 10,000 tenants: how its cost grows with tenants.

For each size in `--sizes`, on a fresh local stack (bench/stack.py: its own S3 server, SQLite
application database, DAGSTER_HOME holding deploy/dagster.prod.yaml's queue, retry and
monitoring settings minus its PostgreSQL storage, as bench/night.py builds it), with that many
tenants enabled in the application database (seeding is not measured):

1. The schedule functions' own evaluation, in process: every shard's nightly schedule
   (`nightly_archives_shard_07`) from `defs`, one after the other, called with
   `dg.build_schedule_context` and the `database` resource the definitions bind, wall and CPU
   seconds, on the first night (no tenant in the shards' dynamic partitions yet: the schedules
   register them all) and on a later night (all registered). The same work is also timed piece
   by piece: reading the enabled tenants, listing the registered partitions (every shard's),
   registering N new ones (on a probe partitions name, so the real ones stay as the first night
   left them), building the N run requests.
2. The tick through the real `dagster-daemon` scheduler, as bench/night.py submits its night:
   the code server on loopback, the nightly schedules' states stored so the daemon's first
   iteration evaluates exactly one late 00:30 UTC tick of each (every other schedule and every
   sensor
   stopped, so nothing else competes), and `DAGSTER_MAX_CONCURRENT_RUNS=0` so the queue
   launches nothing: only the tick is measured. From the instance's records: the tick's start,
   the first run created, the last run enqueued (its record's last update, the QUEUED status
   the QueuedRunCoordinator gives it); the daemon's and code server's CPU seconds from /proc.
   If `--time-cap` runs out before all N runs are queued, the daemon is stopped and the rate
   measured so far is projected to N (the report says so and prints the formula).

The tenants are a platform's population (bench/population.py: most small, a fifth without a
recording that day, some medium, a few heavy; only their database rows), so the schedule packs
them as on a real night: many small tenant-days per run, a heavy one alone (`--population
empty` gives every tenant an empty day: the fewest runs).

`--submit-workers K` sets Dagster's threaded schedule submission to K workers
(`schedules: {use_threads: true, num_submit_workers: K}`); without it the instance is
production's (deploy/dagster.prod.yaml: four submit workers). Runs plan their partitions in
one event (`DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`, as the deployment sets it);
`--planned-per-partition` measures the old way, one "materialization planned" event per hour.

Usage (Markdown on stdout, progress on stderr):

    .venv/bin/python bench/tick.py [--sizes 100,1000,10000] [--time-cap 900] [--submit-workers K]
        [--planned-per-partition] [--population platform|empty]
"""

import argparse
import contextlib
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import yaml
from night import (  # bench/night.py
    Process,
    daemon_process,
    instance_yaml,
    nightly_tick,
    start_code_server,
    store_schedule_states,
)
from population import Population, register_population  # bench/population.py
from stack import (  # bench/stack.py
    LocalStack,
    benchmark_databases,
    enable_tenants,
    local_stack,
    progress,
)

from recordings.catalog import enabled_tenant_ids_and_unusable, expected_audio_seconds
from recordings.keys import SHARD_COUNT
from recordings_dagster.definitions import defs
from recordings_dagster.partitions import tenant_partitions_name
from recordings_dagster.resources import DatabaseResource
from recordings_dagster.schedules import (
    NIGHTLY_ARCHIVES_SCHEDULES,
    nightly_run_requests,
    previous_utc_day,
)

DAY_TAG = "recordings/utc_day"
TARGET_TENANTS = 10_000
TARGET_SECONDS = 120.0  # the issue: the tick for 10,000 tenants submitted in under 2 minutes
SAMPLE_SECONDS = 1.0
PLANNED_SUBSET = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def tenant_name(index: int) -> str:
    return f"tick-{index:05d}"


@dataclass(frozen=True)
class Cost:
    wall: float
    cpu: float  # this process's CPU seconds (the SQLite database is in process too)


def timed(action: Callable[[], object]) -> Cost:
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return Cost(time.perf_counter() - wall, time.process_time() - cpu)


def tick_instance_yaml(submit_workers: int | None, storage_url: str | None = None) -> str:
    """bench/night.py's instance (production's minus PostgreSQL), on PostgreSQL at
    `storage_url` if given, with threaded schedule submission if `submit_workers` is given."""
    config = yaml.safe_load(instance_yaml())
    if storage_url is not None:
        config["storage"] = {"postgres": {"postgres_url": storage_url}}
    if submit_workers:
        config["schedules"] = {
            "use_threads": True,
            # Production's count of schedules evaluated at once (one per shard is due).
            "num_workers": config.get("schedules", {}).get("num_workers", 1),
            "num_submit_workers": submit_workers,
        }
    return yaml.safe_dump(config, sort_keys=False)


# --- 1. the schedule function in process ----------------------------------------------------


def evaluate_schedule(instance: dg.DagsterInstance, tick: datetime) -> list[dg.RunRequest]:
    """Every shard's nightly schedule as `defs` holds it, called with the resources `defs`
    binds (the database URL from the environment), as the code server evaluates them; their
    run requests together."""
    assert defs.resources is not None
    requests: list[dg.RunRequest] = []
    for nightly in NIGHTLY_ARCHIVES_SCHEDULES:
        with warnings.catch_warnings():  # get_schedule_def's note on unresolved resources
            warnings.simplefilter("ignore", UserWarning)
            schedule = defs.get_schedule_def(nightly.name)
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick,
            resources={
                "database": defs.resources["database"],
                "archive_build": defs.resources["archive_build"],
            },
        ) as context:
            result = schedule(context)
        if isinstance(result, list):
            requests += result
    return requests


def in_process(
    instance: dg.DagsterInstance, database_url: str, tick: datetime, tenants: int
) -> tuple[dict[str, Cost], int]:
    """The schedule's evaluation and its pieces; and how many runs it requests (the packs)."""
    day = previous_utc_day(tick)
    ids: list[str] = []

    def read() -> None:
        database = DatabaseResource(url=database_url)
        with database.session() as session:
            ids[:] = enabled_tenant_ids_and_unusable(session)[0]
        database.engine().dispose()

    costs = {"read": timed(read)}
    assert len(ids) == tenants, len(ids)
    probe = "tick-bench-probe"
    costs["register_all"] = timed(lambda: instance.add_dynamic_partitions(probe, ids))
    requests: list[dg.RunRequest] = []
    costs["first_night"] = timed(lambda: requests.extend(evaluate_schedule(instance, tick)))
    runs = len(requests)
    requests.clear()
    costs["later_night"] = timed(lambda: requests.extend(evaluate_schedule(instance, tick)))
    assert len(requests) == runs, (len(requests), runs)
    costs["list_registered"] = timed(
        lambda: [
            set(instance.get_dynamic_partitions(tenant_partitions_name(shard)))
            for shard in range(SHARD_COUNT)
        ]
    )
    start = datetime.combine(day, datetime.min.time(), UTC)

    def expected() -> None:
        database = DatabaseResource(url=database_url)
        with database.session() as session:
            expected_audio_seconds(session, ids, start, start + timedelta(days=1))
        database.engine().dispose()

    costs["expected_work"] = timed(expected)
    costs["build_requests"] = timed(lambda: nightly_run_requests(instance, ids, day))
    return costs, runs


# --- 2. the tick through dagster-daemon -----------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class DaemonTick:
    queued: int  # runs queued when measuring stopped (N unless the time cap ran out)
    capped: bool
    daemon_started: float  # time.time()
    tick_ended: float | None  # the tick record's end (its start is stored as the cron time)
    first_created: float | None
    last_enqueued: float | None
    stopped_at: float
    cpu: dict[str, float] = field(default_factory=dict)


def _started(process: Process) -> int:
    assert process.process is not None
    return process.process.pid


def daemon_tick(
    stack: contextlib.ExitStack,
    local: LocalStack,
    instance: dg.DagsterInstance,
    tick: datetime,
    runs: int,
    time_cap: float,
) -> DaemonTick:
    code_server, workspace = start_code_server(stack, local)
    schedule_ids = store_schedule_states(instance, workspace, tick, sensors_on=False)
    daemon = daemon_process(stack, local, workspace)
    cpu_before = {"code server": cpu_seconds(_started(code_server))}
    progress(f"starting dagster-daemon; it evaluates the {tick:%Y-%m-%d %H:%M} UTC tick")
    started = time.time()
    daemon.start()
    day_filter = dg.RunsFilter(tags={DAY_TAG: previous_utc_day(tick).isoformat()})
    queued_filter = dg.RunsFilter(
        tags={DAY_TAG: previous_utc_day(tick).isoformat()}, statuses=[dg.DagsterRunStatus.QUEUED]
    )
    queued, capped, last_report = 0, False, 0.0
    while True:
        time.sleep(SAMPLE_SECONDS)
        if not (daemon.alive() and code_server.alive()):
            raise RuntimeError(f"dagster-daemon or the code server exited; see {local.folder}")
        queued = instance.get_runs_count(queued_filter)
        if queued >= runs:
            break
        if time.time() - started > time_cap:
            capped = True
            break
        if time.time() - last_report > 15:
            last_report = time.time()
            progress(f"{queued:,} of {runs:,} runs queued")
    stopped_at = time.time()
    cpu = {
        "daemon": cpu_seconds(_started(daemon)),
        "code server": cpu_seconds(_started(code_server)) - cpu_before["code server"],
    }
    progress(f"{queued:,} of {runs:,} runs queued; stopping the daemon")
    daemon.stop()
    code_server.stop()
    records = instance.get_run_records(filters=day_filter)
    queued_records = [r for r in records if r.dagster_run.status == dg.DagsterRunStatus.QUEUED]
    ticks = [
        tick
        for origin_id, selector_id in schedule_ids
        for tick in instance.get_ticks(origin_id, selector_id, limit=1)
    ]
    ends = [tick.end_timestamp for tick in ticks if tick.end_timestamp is not None]
    return DaemonTick(
        queued=len(queued_records),
        capped=capped,
        daemon_started=started,
        # The last shard's tick to end (None unless every shard's tick ended).
        tick_ended=max(ends) if ends and len(ends) == len(schedule_ids) else None,
        first_created=min((r.create_timestamp.timestamp() for r in records), default=None),
        last_enqueued=max((r.update_timestamp.timestamp() for r in queued_records), default=None),
        stopped_at=stopped_at,
        cpu=cpu,
    )


# --- one size -------------------------------------------------------------------------------


@dataclass
class Size:
    tenants: int
    seed_s: float
    costs: dict[str, Cost]
    daemon: DaemonTick
    runs: int  # the schedule's run requests: tenant-days packed
    population: Population | None

    @property
    def to_first_run_s(self) -> float | None:
        """The daemon's start to its first run created: its start-up and loading the code
        location, then the schedule evaluated in the code server and its run requests returned
        over gRPC (the tick's own start is not stored: its record holds the cron time)."""
        d = self.daemon
        return None if d.first_created is None else d.first_created - d.daemon_started

    @property
    def whole_s(self) -> float | None:
        """The daemon's start to the last run enqueued (None if the cap ran out)."""
        d = self.daemon
        return None if d.capped or d.last_enqueued is None else d.last_enqueued - d.daemon_started

    @property
    def submission_s(self) -> float | None:
        """First run created to the last one enqueued (to the cap if it ran out)."""
        d = self.daemon
        if d.first_created is None:
            return None
        end = d.stopped_at if d.capped or d.last_enqueued is None else d.last_enqueued
        return end - d.first_created

    @property
    def runs_per_s(self) -> float | None:
        seconds = self.submission_s
        return None if not seconds else self.daemon.queued / seconds


def measure(tenants: int, args: argparse.Namespace) -> Size:
    tick = nightly_tick(datetime.now(UTC))
    with tempfile.TemporaryDirectory(prefix="bench-tick-") as tmp, contextlib.ExitStack() as stack:
        databases = benchmark_databases(stack, args.backend, f"{tenants:,}")
        local = stack.enter_context(
            local_stack(
                Path(tmp),
                source_bucket="tick-sources",
                archive_bucket="tick-archives",
                database_url=databases.application_url,
                dagster_yaml=tick_instance_yaml(args.submit_workers, databases.dagster_url),
            )
        )
        # The queue launches nothing: only the tick is measured (and no run competes for CPU).
        os.environ.update({**local.environment(), "DAGSTER_MAX_CONCURRENT_RUNS": "0"})
        if args.planned_per_partition:
            os.environ[PLANNED_SUBSET] = "false"
        instance = stack.enter_context(dg.DagsterInstance.from_config(str(local.home)))
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and queue.max_concurrent_runs == 0
        names = [tenant_name(index) for index in range(tenants)]
        progress(f"[{tenants:,}] seeding {tenants:,} enabled tenants")
        population: list[Population] = []

        def seed_tenants() -> None:
            enable_tenants(local.database_url, names)
            if args.population == "platform":
                day = previous_utc_day(tick)
                population.append(
                    register_population(local.database_url, names, day, "tick-sources")
                )

        seed = timed(seed_tenants)
        if population:
            progress(f"[{tenants:,}] {population[0].describe()}")
        progress(f"[{tenants:,}] the schedule function in process")
        costs, runs = in_process(instance, local.database_url, tick, tenants)
        progress(f"[{tenants:,}] the tick through dagster-daemon: {runs:,} runs")
        daemon = daemon_tick(stack, local, instance, tick, runs, args.time_cap)
        return Size(tenants, seed.wall, costs, daemon, runs, population[0] if population else None)


# --- the report -----------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cost(cost: Cost) -> str:
    return f"{cost.wall:.2f} / {cost.cpu:.2f}"


def projection(size: Size) -> tuple[float, str] | None:
    """The tick at TARGET_TENANTS from this size's figures: the schedule function (a later
    night, in process) grown in proportion to tenants, plus TARGET_TENANTS runs at the daemon's
    measured submission rate."""
    evaluation, rate = size.costs["later_night"].wall, size.runs_per_s
    if not rate:
        return None
    factor = TARGET_TENANTS / size.tenants
    runs = size.runs * factor
    seconds = evaluation * factor + runs / rate
    formula = (
        f"{evaluation:.2f} s x {factor:g} + ({size.runs:,} runs x {factor:g}) / {rate:.2f} runs/s"
    )
    return seconds, formula


def report(sizes: Sequence[Size], args: argparse.Namespace) -> None:
    heads = " | ".join(f"{s.tenants:,} tenants" for s in sizes)
    print(f"| figure | {heads} |")
    print("|---|" + "---|" * len(sizes))

    def row(label: str, values: Sequence[str]) -> None:
        print(f"| {label} | " + " | ".join(values) + " |")

    row("runs requested (tenant-days packed)", [f"{s.runs:,}" for s in sizes])
    row(
        "population: recordings / hours of audio that day",
        [
            f"{s.population.recordings:,} / {s.population.audio_hours:,.0f} h"
            if s.population
            else "none"
            for s in sizes
        ],
    )
    pieces = [
        ("schedule in process, first night (registers all), wall / CPU s", "first_night"),
        ("schedule in process, later night (all registered), wall / CPU s", "later_night"),
        ("- reading the enabled tenants, wall / CPU s", "read"),
        ("- the day's expected audio per tenant, wall / CPU s", "expected_work"),
        ("- listing the registered tenant partitions, wall / CPU s", "list_registered"),
        ("- registering N new tenant partitions, wall / CPU s", "register_all"),
        ("- packing and building the run requests, wall / CPU s", "build_requests"),
    ]
    for label, key in pieces:
        row(label, [_cost(s.costs[key]) for s in sizes])
    row(
        "daemon: daemon start to first run created (start-up + evaluation), s",
        [_s(s.to_first_run_s) for s in sizes],
    )
    row(
        "daemon: submission (first run created to last enqueued), s",
        [_s(s.submission_s) + (" (capped)" if s.daemon.capped else "") for s in sizes],
    )
    row("daemon: runs queued", [f"{s.daemon.queued:,}" for s in sizes])
    row("daemon: runs per second", [_s(s.runs_per_s) for s in sizes])
    row(
        "daemon: ms per run submitted",
        [_s(None if not s.runs_per_s else 1000 / s.runs_per_s) for s in sizes],
    )
    row(
        "daemon: whole tick (daemon start to last run enqueued), s",
        [_s(s.whole_s) for s in sizes],
    )
    row(
        "daemon: tick record ended after the last run enqueued, s",
        [
            _s(
                None
                if s.daemon.tick_ended is None or s.daemon.last_enqueued is None
                else s.daemon.tick_ended - s.daemon.last_enqueued
            )
            for s in sizes
        ],
    )
    row(
        "daemon process CPU s (whole process, from its start)",
        [_s(s.daemon.cpu["daemon"]) for s in sizes],
    )
    row("code server CPU s during the tick", [_s(s.daemon.cpu["code server"]) for s in sizes])
    row("seeding the tenants (not measured), s", [_s(s.seed_s) for s in sizes])

    measured = [s for s in sizes if s.tenants == TARGET_TENANTS and not s.daemon.capped]
    print()
    whole = measured[0].whole_s if measured else None
    if whole is not None:
        verdict = "meets" if whole < TARGET_SECONDS else "misses"
        print(
            f"**The tick at {TARGET_TENANTS:,} tenants, measured: {whole:.0f} s; it {verdict} "
            f"the target (under {TARGET_SECONDS:.0f} s).**"
        )
    for size in sizes:
        if size.tenants == TARGET_TENANTS and not size.daemon.capped:
            continue
        projected = projection(size)
        if projected is None:
            continue
        seconds, formula = projected
        verdict = "meets" if seconds < TARGET_SECONDS else "misses"
        basis = f"{size.tenants:,} tenants"
        if size.daemon.capped:
            basis += f", the rate over its first {size.daemon.queued:,} runs (time cap)"
        print(
            f"- projection from {basis} (not a measurement): {formula} = "
            f"**{seconds:.0f} s ({seconds / 60:.1f} min)** for {TARGET_TENANTS:,} tenants; it "
            f"{verdict} the target (under {TARGET_SECONDS:.0f} s)."
        )
    workers = args.submit_workers
    production = yaml.safe_load(instance_yaml()).get("schedules", {})
    submission = (
        f"threaded, {workers} submit workers"
        if workers
        else f"production's (threads: {production.get('use_threads', False)}, "
        f"{production.get('num_submit_workers', 1)} submit workers)"
    )
    planned = "one per hour" if args.planned_per_partition else f"one per run ({PLANNED_SUBSET})"
    backend = (
        "PostgreSQL (throwaway server, fsync off)" if args.backend == "postgresql" else "SQLite"
    )
    print(
        f"\n{backend}; population: {args.population}; schedule submission: {submission}; planned "
        f"events: {planned}; "
        f"queue: production's limits with `DAGSTER_MAX_CONCURRENT_RUNS=0` (nothing launched); "
        f"time cap {args.time_cap:.0f} s per size."
    )
    rates = [s.runs_per_s for s in sizes if s.runs_per_s]
    if len(rates) > 1:
        print(f"Submission rate across sizes: median {statistics.median(rates):.2f} runs/s.")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="tenant counts, comma-separated")
    parser.add_argument(
        "--time-cap",
        type=float,
        default=900,
        help="seconds per size for the daemon's submission; past it the rate is projected",
    )
    parser.add_argument(
        "--submit-workers",
        type=int,
        default=None,
        help="threaded schedule submission with this many workers (default: production's)",
    )
    parser.add_argument(
        "--planned-per-partition",
        action="store_true",
        help=f"{PLANNED_SUBSET}=false for the daemon: one planned event per hour (the old way)",
    )
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the instance's and the application database's storage",
    )
    parser.add_argument(
        "--population",
        choices=("platform", "empty"),
        default="platform",
        help="the day's recordings: a platform's tiers (bench/population.py), or none",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    results: list[Size] = []
    for tenants in sizes:
        results.append(measure(tenants, args))
        progress(f"[{tenants:,}] done")
    print(f"\n**The nightly tick, {', '.join(f'{n:,}' for n in sizes)} tenants**\n")
    report(results, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
