"""Partition space and schedule tick cost with 1,000 tenants.

Dagster advises at most ~100,000 partitions per asset. The tenant x hour space is bounded by a
sliding 8-day window (retention plus yesterday) and split over the shards' assets; this script
reports how many keys that is for 1,000 tenants (all shards together), what listing them costs,
and how long the nightly tick (every shard's schedule) takes to build its ranged run requests,
against the reference of the same tick for 10 tenants — all on one temporary Dagster instance
and SQLite database, in one run.

    .venv/bin/python bench/partitions.py [--tenants 1000]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import create_db_engine, session_scope
from recordings.db.migrate import upgrade_database
from recordings.keys import SHARD_COUNT
from recordings_dagster.partitions import hour_partitions, tenant_partitions_name
from recordings_dagster.resources import ArchiveBuildResource, DatabaseResource
from recordings_dagster.schedules import NIGHTLY_ARCHIVES_SCHEDULES


def _median_seconds(action: Callable[[], object], repeat: int = 3) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def _list_keys_cold(instance: dg.DagsterInstance, now: datetime) -> int:
    """List every shard's keys once, cold: Dagster caches the keys of equal definitions
    in-process."""
    count = 0
    for shard in range(SHARD_COUNT):
        fresh = dg.MultiPartitionsDefinition(
            {
                "tenant": dg.DynamicPartitionsDefinition(name=tenant_partitions_name(shard)),
                "hour": dg.HourlyPartitionsDefinition(
                    start_date=hour_partitions.start.strftime("%Y-%m-%d-%H:%M"),
                    timezone="UTC",
                    fmt="%Y-%m-%d-%H:%M",
                ),
            }
        )
        keys = fresh.get_partition_keys(current_time=now, dynamic_partitions_store=instance)
        count += len(keys)
    return count


def _tick(instance: dg.DagsterInstance, url: str, now: datetime) -> int:
    """Every shard's nightly schedule evaluated for `now`; the runs they request."""
    runs = 0
    for schedule in NIGHTLY_ARCHIVES_SCHEDULES:
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=now,
            resources={
                "database": DatabaseResource(url=url),
                "archive_build": ArchiveBuildResource(),
            },
        ) as context:
            result = schedule(context)
        runs += len(result) if isinstance(result, list) else 0
    return runs


def _setup(root: Path, tenants: int) -> str:
    url = f"sqlite:///{root / f'recordings-{tenants}.db'}"
    upgrade_database(url)
    engine = create_db_engine(url)
    with session_scope(engine) as session:
        for index in range(tenants):
            tenant_id = f"tenant-{index:05d}"
            ensure_tenant(session, tenant_id)
            set_recording_settings(session, tenant_id, changed_by="bench", enabled=True)
    engine.dispose()
    return url


def _measure(tenants: int, now: datetime) -> tuple[int, int, float, float, float]:
    """One tenant count, in its own process: Dagster keeps partition-loading state per process."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        url = _setup(root, tenants)
        with dg.instance_for_test(temp_dir=str(root)) as instance:
            first = _median_seconds(lambda: _tick(instance, url, now), repeat=1)
            again = _median_seconds(lambda: _tick(instance, url, now))
            listing = _median_seconds(lambda: _list_keys_cold(instance, now), repeat=1)
            count = _list_keys_cold(instance, now)
    return tenants, count, first, again, listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--only", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    now = datetime.now(UTC).replace(hour=0, minute=30, second=0, microsecond=0)
    if args.only:
        print(json.dumps(_measure(args.only, now)))
        return
    rows = []
    for tenants in (10, args.tenants):
        child = subprocess.run(
            [sys.executable, __file__, "--only", str(tenants)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(tuple(json.loads(child.stdout.strip().splitlines()[-1])))
        print(f"measured {tenants} tenants", file=sys.stderr)
    hours = len(hour_partitions.get_partition_keys(current_time=now))
    start = now - timedelta(hours=hours)
    print(f"Hourly dimension at {now:%Y-%m-%d %H:%M} UTC: {hours} hours from {start:%Y-%m-%d}\n")
    print(
        "| tenants | partitions | first tick (adds partitions) | next ticks (median of 3) "
        "| list all keys (cold) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: |")
    for tenants, count, first, again, listing in rows:
        print(f"| {tenants:,} | {count:,} | {first:.2f} s | {again:.2f} s | {listing:.2f} s |")
    small, large = rows
    print(
        f"\nper-tenant tick cost: {large[3] / large[0] * 1000:.2f} ms at {large[0]:,} tenants vs "
        f"{small[3] / small[0] * 1000:.2f} ms at {small[0]} (ratio "
        f"{(large[3] / large[0]) / (small[3] / small[0]):.2f}: below 1 means fixed costs dominate)"
    )


if __name__ == "__main__":
    main()
