"""Retention of a whole expired day at 100, 1,000 and 10,000 tenants (issue 11, item 4).

In steady state every tenant's day expires each night: 24 deletions per tenant, 240,000 at
10,000 tenants, each with its evidence (an `archive_deletions` row, written `deleting` then
`deleted`) and its row in the observation of its tenant-day on the archive asset (one Dagster
event per tenant-day, listing its deleted hours). The target: the whole day in under 15 minutes
on this machine.

For each backend (SQLite: the repository's `dagster.yaml` and a SQLite application database;
PostgreSQL: the same instance settings with `storage: postgres` and the application database on
one throwaway server from `tests/postgres.py`) and each tenant count N, in a fresh child process:

Seeding (timed, reported, not the point): N tenants with 7-day retention; each has one archive
that is kept (yesterday 00:00, a 22-byte ZIP in a local SeaweedFS); a sample of K = min(N,
`--sample`) tenants also has a whole expired day (24 archives eight days ago) with the 24
materializations the pipeline would have recorded (its own `hour_metadata`, as
`bench/scale.py` writes them: the SHA-256 lookup reads and deserializes these).

Measured: the retention job through Dagster (`retention_job`, `execute_in_process`, `today` =
today), wall time and this process's CPU (the job runs in it; SeaweedFS and PostgreSQL are other
processes), checked to delete exactly 24 x K archives with one `deleted` row each, listed in
the run's observations (K of them, one per tenant-day), and to keep N; then the same job again
with nothing to delete (N listings, N kept). The difference is the cost of 24 x K deletions;
the projection of the whole day is

    T(day) = T(nothing to delete, N tenants) + 24 x N x (T(deleting) - T(nothing)) / (24 x K)

so at 10,000 tenants everything that grows with tenants is measured for real and the per-deletion
cost comes from the sample (K = 1,000 by default: 24,000 deletions).

`--events` (once per backend, at the first size) measures what one Dagster observation costs
through each public path tried, 500 events each: `context.log_event` in a run as the op logs
them (the step's instance as Dagster builds it, and with pooled connections, as the op now holds
them), the same with `DAGSTER_EVENT_BATCH_SIZE=500` (batches only events that carry batch
metadata, which a step's logged events never do), and `report_runless_asset_event`; and whether
`wipe_asset_partitions` is available on the storage.

`--baseline REF` runs the same measurement with the code of REF (a temporary `git worktree`,
first on the child's path) at the smallest size: the per-deletion path before issue 11.

Run::

    PYTHONPATH=. .venv/bin/python bench/retention.py [--sizes 100,1000,10000]
        [--backend sqlite|postgresql|both] [--sample 1000] [--events] [--baseline main]

Markdown tables go to stdout, progress to stderr.
"""

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from minio import Minio
from scale import (  # bench/scale.py
    ARCHIVE_BUCKET,
    BATCH,
    SOURCE_BUCKET,
    TINY_ARCHIVE,
    _entry,
    _instance_yaml,
    analyze,
    materialization,
    store_batch,
    tenant_name,
)
from stack import (  # bench/stack.py
    REPO,
    benchmark_databases,
    enable_tenants,
    local_stack,
    progress,
)

from recordings.db.engine import create_db_engine, session_scope
from recordings.db.models import ArchiveDeletion
from recordings.keys import archive_key, day_hours
from recordings_instance.archives import archive_asset_key

RETENTION_DAYS = 7
EXPIRED_DAYS_AGO = RETENTION_DAYS + 1  # today - D = 8 > 7: deleted today
TARGET_S = 15 * 60
PROBE_EVENTS = 500
# The job's events stay in the event log, off this terminal.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of `action`."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    action()
    return time.perf_counter() - wall, cpu_seconds() - cpu


# --- seeding -----------------------------------------------------------------------------------


def seed_objects(client: Minio, keys: Sequence[str]) -> None:
    def put(key: str) -> None:
        client.put_object(
            ARCHIVE_BUCKET, key, io.BytesIO(TINY_ARCHIVE), len(TINY_ARCHIVE), "application/zip"
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))


def seed_materializations(
    instance: dg.DagsterInstance, names: Sequence[str], hours: Sequence[datetime]
) -> int:
    """The pipeline's materialization of each tenant-hour, written in batches."""
    generated_at = datetime.now(UTC) - timedelta(days=EXPIRED_DAYS_AGO - 1)
    batch = []
    count = 0
    for tenant in names:
        for hour in hours:
            batch.append(_entry(materialization(tenant, hour, generated_at), time.time()))
            if len(batch) == BATCH:
                store_batch(instance, batch)
                count, batch = count + len(batch), []
    if batch:
        store_batch(instance, batch)
        count += len(batch)
    return count


# --- what one observation costs, by the public paths tried --------------------------------------


def _probe_observation(index: int) -> dg.AssetObservation:
    hour = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=index)
    return dg.AssetObservation(
        asset_key=archive_asset_key("events-probe"),
        partition=f"{hour:%Y-%m-%d-%H}:00|events-probe",
        description="expired: deleted by retention",
        metadata={
            "status": "expired",
            "object_key": archive_key("events-probe", hour),
            "sha256": "ab" * 32,
            "deleted_at": hour.isoformat(),
            "retention_days": RETENTION_DAYS,
        },
    )


@dg.op(config_schema={"events": int, "pooled": bool})
def log_observations(context: dg.OpExecutionContext) -> None:
    if context.op_config["pooled"]:
        context.instance.optimize_for_webserver(
            statement_timeout=60_000, pool_recycle=3600, max_overflow=2
        )
    for index in range(context.op_config["events"]):
        context.log_event(_probe_observation(index))


@dg.job
def observations_job() -> None:
    log_observations()


def measure_events() -> dict[str, Any]:
    """ms of wall and of CPU per observation, by path, each on a fresh instance (the retention
    job pools the connections of the instance it runs on); a run's fixed cost is taken off."""

    def in_run(events: int, pooled: bool) -> tuple[float, float]:
        config = {
            "ops": {"log_observations": {"config": {"events": events, "pooled": pooled}}},
            **QUIET,
        }
        with dg.DagsterInstance.get() as instance:
            return timed(lambda: observations_job.execute_in_process(config, instance=instance))

    def per_event(wall_cpu: tuple[float, float], base: tuple[float, float]) -> tuple[float, float]:
        return (
            (wall_cpu[0] - base[0]) / PROBE_EVENTS,
            (wall_cpu[1] - base[1]) / PROBE_EVENTS,
        )

    figures: dict[str, Any] = {}
    base = in_run(0, False)
    figures["log_event"] = per_event(in_run(PROBE_EVENTS, False), base)
    figures["log_event_pooled"] = per_event(in_run(PROBE_EVENTS, True), base)
    os.environ["DAGSTER_EVENT_BATCH_SIZE"] = str(PROBE_EVENTS)
    try:
        figures["log_event_batch_size"] = per_event(in_run(PROBE_EVENTS, False), base)
    finally:
        del os.environ["DAGSTER_EVENT_BATCH_SIZE"]
    with dg.DagsterInstance.get() as instance:
        wall, cpu = timed(
            lambda: [
                instance.report_runless_asset_event(_probe_observation(i))
                for i in range(PROBE_EVENTS)
            ]
        )
        figures["runless"] = (wall / PROBE_EVENTS, cpu / PROBE_EVENTS)
        try:
            instance.wipe_asset_partitions(
                archive_asset_key("events-probe"), ["2026-01-01-00:00|events-probe"]
            )
            figures["wipe_asset_partitions"] = "available"
        except NotImplementedError as exc:
            figures["wipe_asset_partitions"] = f"NotImplementedError: {exc}"
    return figures


# --- one backend, one size (child process) -----------------------------------------------------


def _deleted_rows(database_url: str) -> int:
    engine = create_db_engine(database_url)
    with session_scope(engine) as session:
        count = session.scalar(
            sa.select(sa.func.count())
            .select_from(ArchiveDeletion)
            .where(ArchiveDeletion.state == "deleted")
        )
    engine.dispose()
    return int(count or 0)


def observed_hours(instance: dg.DagsterInstance, run_id: str) -> tuple[int, int]:
    """(observations, the deleted hours they list) of the run, read a page of 10,000 (Dagster's
    limit) at a time. An observation of a tenant-day lists its hours (`hours_deleted`); the code
    before it (`--baseline`) observed each hour on its own."""
    observations = hours = 0
    cursor = None
    while True:
        page = instance.get_records_for_run(
            run_id, cursor, of_type=dg.DagsterEventType.ASSET_OBSERVATION, limit=10_000
        )
        for record in page.records:
            event = record.event_log_entry.dagster_event
            assert event is not None and event.asset_observation_data is not None
            metadata = event.asset_observation_data.asset_observation.metadata
            observations += 1
            hours += int(metadata["hours_deleted"].value) if "hours_deleted" in metadata else 1
        if not page.has_more:
            return observations, hours
        cursor = page.cursor


def measure(backend: str, tenants: int, sample: int, events: bool) -> dict[str, Any]:
    import recordings

    figures: dict[str, Any] = {
        "backend": backend,
        "tenants": tenants,
        "code": str(Path(recordings.__file__).resolve().parents[1]),
    }
    today = datetime.now(UTC).date()
    expired = day_hours(today - timedelta(days=EXPIRED_DAYS_AGO))
    kept_hour = day_hours(today - timedelta(days=1))[0]
    names = [tenant_name(index) for index in range(tenants)]
    # Spread over the tenant list, so the batches mix tenants with and without deletions.
    step = max(1, tenants // min(tenants, sample))
    sampled = names[::step][:sample]
    figures["sampled"] = len(sampled)
    with (
        tempfile.TemporaryDirectory(prefix="bench-retention-") as scratch,
        contextlib.ExitStack() as stack,
    ):
        databases = benchmark_databases(stack, backend, f"{backend} {tenants}")
        local = stack.enter_context(
            local_stack(
                Path(scratch),
                source_bucket=SOURCE_BUCKET,
                archive_bucket=ARCHIVE_BUCKET,
                database_url=databases.application_url,
                dagster_yaml=_instance_yaml(databases.dagster_url),
            )
        )
        client, database_url = local.s3.client, local.database_url
        os.environ.update(local.environment())
        instance = stack.enter_context(dg.DagsterInstance.get())

        from recordings_dagster.definitions import defs

        job = defs.resolve_job_def("retention_job")
        run_config = {
            "ops": {"apply_archive_retention": {"config": {"today": today.isoformat()}}},
            **QUIET,
        }
        # The first run in a process also loads the code and warms the storages: not measured
        # (run before seeding, it has no tenant to go through).
        assert job.execute_in_process(instance=instance, run_config=run_config).success

        progress(f"[{backend} {tenants}] seeding {tenants:,} tenants, {len(sampled):,} expiring")
        started = time.perf_counter()
        enable_tenants(database_url, names, RETENTION_DAYS)
        figures["materializations"] = seed_materializations(instance, sampled, expired)
        keys = [archive_key(name, kept_hour) for name in names]
        keys += [archive_key(name, hour) for name in sampled for hour in expired]
        seed_objects(client, keys)
        figures["objects"] = len(keys)
        if backend == "postgresql":
            analyze(database_url)
            analyze(str(databases.dagster_url))
        figures["seed_s"] = time.perf_counter() - started

        results: list[dg.ExecuteInProcessResult] = []

        def retention() -> None:
            results.append(job.execute_in_process(instance=instance, run_config=run_config))

        deletions = 24 * len(sampled)
        progress(f"[{backend} {tenants}] the retention job ({deletions:,} deletions)")
        figures["retention_s"], figures["retention_cpu_s"] = timed(retention)
        assert results[-1].success
        figures["deleted_rows"] = _deleted_rows(database_url)
        progress(
            f"[{backend} {tenants}] {figures['retention_s']:.1f} s, "
            f"CPU {figures['retention_cpu_s']:.1f} s; checking"
        )
        figures["observations"], figures["observed_hours"] = observed_hours(
            instance, results[-1].run_id
        )
        left = {
            item.object_name
            for item in client.list_objects(ARCHIVE_BUCKET, prefix="tenants/", recursive=True)
        }
        assert figures["deleted_rows"] == deletions, (figures["deleted_rows"], deletions)
        assert figures["observed_hours"] == deletions, (figures["observed_hours"], deletions)
        assert left == {archive_key(name, kept_hour) for name in names}, len(left)

        progress(f"[{backend} {tenants}] the retention job again, nothing to delete")
        figures["again_s"], figures["again_cpu_s"] = timed(retention)
        assert results[-1].success

        if events:
            progress(f"[{backend} {tenants}] one observation, by each public path")
            figures["events"] = measure_events()
    return figures


# --- the parent: one child per backend and size, then the tables -------------------------------


def run_child(
    backend: str, tenants: int, sample: int, events: bool, code: Path | None = None
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--only", backend, "--tenants", str(tenants)]
    command += ["--sample", str(sample), *(["--events"] if events else [])]
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    child = subprocess.run(
        command, check=False, stdout=subprocess.PIPE, text=True, timeout=4 * 3600, env=env
    )
    if child.returncode != 0:
        raise SystemExit(f"the {backend} run with {tenants} tenants failed (see above)")
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    figures["wall_s"] = time.perf_counter() - started
    return figures


def per_deletion(f: dict[str, Any]) -> tuple[float, float]:
    """(wall, CPU) seconds per deletion: the job minus the job with nothing to delete."""
    deletions = 24 * f["sampled"]
    return (
        (f["retention_s"] - f["again_s"]) / deletions,
        (f["retention_cpu_s"] - f["again_cpu_s"]) / deletions,
    )


def projection(f: dict[str, Any]) -> float:
    return f["again_s"] + 24 * f["tenants"] * per_deletion(f)[0]


def _s(value: float) -> str:
    return f"{value:,.1f} s" if value < 120 else f"{value / 60:,.1f} min"


def _ms(value: float) -> str:
    return f"{value * 1000:.2f} ms"


def report(results: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> None:
    columns = [*results, *baseline]
    labels = [
        f"{f['backend']}, {f['tenants']:,}" + (" (before)" if f in baseline else "")
        for f in columns
    ]
    print("| figure | " + " | ".join(labels) + " |")
    print("| --- |" + " ---: |" * len(columns))
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        (
            "tenants expiring a whole day (K) / deletions",
            lambda f: f"{f['sampled']:,} / {24 * f['sampled']:,}",
        ),
        ("seeding (objects)", lambda f: f"{_s(f['seed_s'])} ({f['objects']:,})"),
        (
            "Dagster observations / the deleted hours they list",
            lambda f: f"{f['observations']:,} / {f['observed_hours']:,}",
        ),
        (
            "**retention job**, wall (CPU of the job's process)",
            lambda f: f"{_s(f['retention_s'])} ({_s(f['retention_cpu_s'])})",
        ),
        (
            "retention job again, nothing to delete (N listings)",
            lambda f: f"{_s(f['again_s'])} ({_s(f['again_cpu_s'])})",
        ),
        (
            "per deletion, wall (CPU)",
            lambda f: f"{_ms(per_deletion(f)[0])} ({_ms(per_deletion(f)[1])})",
        ),
        ("per tenant with nothing to delete", lambda f: _ms(f["again_s"] / f["tenants"])),
        ("**whole expired day projected** (24 x N deletions)", lambda f: _s(projection(f))),
        (
            "the same for 10,000 tenants (target 15 min)",
            lambda f: _s(f["again_s"] / f["tenants"] * 10_000 + 240_000 * per_deletion(f)[0]),
        ),
    ]
    for label, cell in rows:
        print(f"| {label} | " + " | ".join(cell(f) for f in columns) + " |")
    print()
    print("Projection: T(day, N) = T(nothing to delete, N) + 24 x N x per deletion; the last row")
    print("scales the nothing-to-delete time linearly to 10,000 tenants.")
    for f in columns:
        wall, _ = per_deletion(f)
        print(
            f"- {f['backend']} {f['tenants']:,}: {f['again_s']:.1f} s + 24 x {f['tenants']:,} x "
            f"{wall * 1000:.2f} ms = {projection(f):.0f} s ({f['code']})"
        )
    events = [f for f in results if "events" in f]
    if events:
        print()
        print(
            "| one observation (ms per event, wall / CPU) | "
            + " | ".join(f["backend"] for f in events)
            + " |"
        )
        print("| --- |" + " ---: |" * len(events))
        for name, label in (
            ("log_event", "`context.log_event` in a run (today's path)"),
            ("log_event_pooled", "the same, the step's instance on pooled connections"),
            ("log_event_batch_size", "`context.log_event`, `DAGSTER_EVENT_BATCH_SIZE=500`"),
            ("runless", "`report_runless_asset_event`"),
        ):
            cells = [
                f"{f['events'][name][0] * 1000:.2f} / {f['events'][name][1] * 1000:.2f}"
                for f in events
            ]
            print(f"| {label} | " + " | ".join(cells) + " |")
        for f in events:
            print(
                f"\n{f['backend']}: `wipe_asset_partitions`: {f['events']['wipe_asset_partitions']}"
            )


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="bench-retention-baseline-")) / "code"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), ref],
        check=True,
        capture_output=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)], check=False
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--sample", type=int, default=1000, help="tenants whose day expires")
    parser.add_argument("--events", action="store_true", help="per-event cost by public path")
    parser.add_argument("--baseline", help="also measure this git ref at the smallest size")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help=argparse.SUPPRESS)
    parser.add_argument("--tenants", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.only:
        print(json.dumps(measure(args.only, args.tenants, args.sample, args.events)))
        return
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    sizes = [int(size) for size in args.sizes.split(",")]
    results, baseline = [], []
    for backend in backends:
        for index, size in enumerate(sizes):
            results.append(run_child(backend, size, args.sample, args.events and index == 0))
        if args.baseline:
            with checkout(args.baseline) as code:
                baseline.append(run_child(backend, sizes[0], args.sample, False, code))
    load = os.getloadavg()[0]
    print(f"Measured {datetime.now(UTC).date().isoformat()}, load average {load:.2f} at the end.\n")
    report(results, baseline)


if __name__ == "__main__":
    main()
