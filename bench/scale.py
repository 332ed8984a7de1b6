"""A synthetic instance of many tenants: does every operator- and tenant-facing figure stay usable?

For each backend (SQLite: the repository's `dagster.yaml` and a SQLite application database;
PostgreSQL: the same instance settings with `storage: postgres` and the application database on
one throwaway server from `tests/postgres.py`) and each tenant count, in a fresh child process:

Seeding (timed, reported, not the point):

- `--tenants` tenants in the application database (feature enabled, retention 7 days) and in
  their shards' dynamic partitions (`tenants_07`);
- in the Dagster event log, for every tenant, 24 materializations for yesterday plus one for
  hour 00:00 eight days ago (the hour the retention job deletes that day); with
  `--full-window`, the steady state instead: every hour of the eight days before today (192 a
  tenant, each archived once, so the UI's partition status has every key of the window to
  show). Each has the pipeline's own metadata (`hour_metadata` of
  `recordings_dagster/metadata.py`, over a template hour of three recordings in two
  conversations, one hour in six with a failed recording) and the multi-partition tags a run
  puts on them. `report_runless_asset_event` writes one event per call: one durable commit on
  each of SQLite's two shards, 20-60 ms an event here (PostgreSQL: 25-45 ms, a new connection
  per statement), so 25,000 events would take 10 to 25 minutes.
  Tenant 0's events go through it (the per-event figure is reported); the others are written
  in batches of the same `EventLogEntry` records: on PostgreSQL with the storage's own
  `store_event_batch`, on SQLite (whose storage has no batch path) with the statements
  `store_event` runs, one transaction per shard per batch;
- "little audio": in a local SeaweedFS S3, one tiny archive object (an empty ZIP, 22 bytes) per
  tenant for yesterday 00:00 and one for eight days ago 00:00, so the retention job has one
  archive to keep and one to delete for each tenant.

Measured, in this order:

1. The partitions of the largest shard's asset (the archive is one asset per shard of tenants,
   `recordings.keys.tenant_shard`; the UI shows one asset at a time): how many
   (`shard_partitions(shard).get_partition_keys` with the instance as dynamic-partitions store)
   and how long listing them takes: first call in the process (cold) and the median of the
   next 3.
2. The nightly tick: every shard's nightly schedule (`nightly_archives_shard_07`) evaluated
   with `build_schedule_context` at today 00:30 UTC, one after the other, their run requests
   counted; first evaluation and the median of the next 3.
3. The Dagster webserver (`dagster-webserver -w workspace.yaml`, its own process): the time
   from start until the code location is loaded, then the UI's partition-status query of the
   largest shard's asset page's Partitions tab (`PartitionHealthQuery`, the text copied from
   the webserver's bundle: partition keys by dimension and `assetPartitionStatuses`): the first
   answer (cold: the asset status cache is built) and the median of 3 more, and the
   `partitionStats` field the asset pages ask for (materialized, partitions, failed,
   materializing), median of 3. The answers are checked: 25 x the shard's tenants materialized
   (yesterday's 24 hours plus the expired hour, both inside the 8-day window), as many
   partitions as item 1 listed, none failed or in progress.
4. The links endpoint (`GET /api/v1/daily-conversation-audio-recordings?utcDay=yesterday`)
   for one tenant, one uvicorn process, one keep-alive client (`load` of bench/api.py), p50 and
   p99 over `--seconds` after 1 s of warm-up; and the Dagster lookup alone in this process
   (`day_statuses`, with and without the evidence cache), 100 calls each. Both again on a
   Dagster instance holding pooled connections (`optimize_for_webserver`, what the webserver
   does; the API as deployed does not, and dagster-postgres then opens a connection for every
   query): the lookup in process, and the endpoint served by `create_pooled_app` below.
5. The retention job through Dagster (`retention_job`, `execute_in_process` with
   `today` = today): wall time over all N tenants, checked to delete exactly N archives and keep
   N (database evidence rows and what is left in S3); then the same job again, with nothing
   left to delete: the difference is the cost of N deletions, and it projects the daily run of
   a steady state, where each tenant's whole day expires (24 x N deletions).

Everything is local and real on a shared 2-core machine: expect noise of 10-20 % on the short
figures. PostgreSQL runs with `fsync=off` (tests/postgres.py), SQLite with its defaults, so
write-heavy figures flatter PostgreSQL; its tables are analyzed once seeded, as autovacuum would
soon do in production (without statistics the links lookup took twice as long). Temporary
folders and every server (S3, PostgreSQL, webserver, API) are removed or stopped even when a
step fails.

Run::

    .venv/bin/python bench/scale.py [--tenants 1000] [--backend sqlite|postgresql|both]
                                    [--sizes 100,1000] [--seconds 5] [--full-window]

Markdown tables go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import sqlalchemy as sa
import yaml
from api import load, percentile, timed  # bench/api.py
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
from dagster._core.storage.event_log import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from litestar import Litestar
from minio import Minio
from population import register_population  # bench/population.py
from stack import (  # bench/stack.py
    REPO,
    benchmark_databases,
    enable_tenants,
    local_stack,
    progress,
    register_tenant_partitions,
    stop_process_group,
    tenant_headers,
)

from recordings.archive.hourly import ArchivedRecording, FailedRecording, HourArchive
from recordings.audio.convert import ConversionResult, SourceAudio
from recordings.catalog import SourceRecording
from recordings.db.engine import create_db_engine, session_scope
from recordings.db.models import ArchiveDeletion, AudioFile
from recordings.keys import (
    SHARD_COUNT,
    archive_key,
    archive_partition_key,
    day_hours,
    hour_partition_key,
    tenants_by_shard,
)
from recordings_api.archives.services import day_statuses
from recordings_cli.local_api import APP_FACTORY, LocalApiServer, free_port
from recordings_dagster.metadata import hour_metadata
from recordings_dagster.partitions import shard_partitions
from recordings_dagster.resources import ArchiveBuildResource, DatabaseResource
from recordings_dagster.schedules import NIGHTLY_ARCHIVES_SCHEDULES
from recordings_dagster.sensors import late_recordings_sensor, tenant_partitions_sensor
from recordings_instance.archives import EvidenceCache, archive_asset_key, shard_asset_key

ARCHIVE_BUCKET = "scale-archives"
SOURCE_BUCKET = "scale-sources"
LINKS = "/api/v1/daily-conversation-audio-recordings"
BATCH = 2000
RETENTION_DAYS = 7
EXPIRED_DAYS_AGO = RETENTION_DAYS + 1  # today - D = 8 > 7: deleted today
# The smallest valid ZIP: an end-of-central-directory record and nothing else.
TINY_ARCHIVE = b"PK\x05\x06" + bytes(18)
TINY_SHA256 = hashlib.sha256(TINY_ARCHIVE).hexdigest()

# The Partitions tab of an asset page, as the webserver's UI bundle sends it
# (dagster_webserver/webapp/build/_next/static/chunks/*.js, Dagster 1.13).
PARTITION_HEALTH_QUERY = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on TimePartitionStatuses {
          ranges { status startTime endTime startKey endKey }
        }
        ... on DefaultPartitionStatuses {
          materializedPartitions materializingPartitions failedPartitions
        }
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges {
            primaryDimStartKey primaryDimEndKey primaryDimStartTime primaryDimEndTime
            secondaryDim {
              ... on TimePartitionStatuses {
                ranges { status startTime endTime startKey endKey }
              }
              ... on DefaultPartitionStatuses {
                materializedPartitions materializingPartitions failedPartitions
              }
            }
          }
        }
      }
    }
  }
}
"""
# The `partitionStats` field the asset pages and the asset graph ask for (AssetNodeLiveFragment).
PARTITION_STATS_QUERY = """
query AssetPartitionStats($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionStats { numMaterialized numMaterializing numPartitions numFailed }
    }
  }
}
"""
WORKSPACE_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def tenant_name(index: int) -> str:
    return f"tenant-{index:05d}"


def seconds_of(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def first_and_median(action: Callable[[], object], repeats: int = 3) -> tuple[float, float]:
    first = seconds_of(action)
    return first, statistics.median(seconds_of(action) for _ in range(repeats))


# --- seeding -----------------------------------------------------------------------------------


def _template_recordings(hour: datetime) -> tuple[ArchivedRecording, ...]:
    """Three recordings in two conversations: what `hour_metadata` counts and sums."""
    audio = SourceAudio(
        format="WAV",
        subtype="ULAW",
        sample_rate=8000,
        channels=1,
        frames=8000 * 95,
        duration_seconds=95.0,
    )
    result = ConversionResult(
        source=audio,
        output_bytes=290_000,
        output_sha256="0" * 64,
        output_crc32=0,
        encoded_seconds=95.0,
        truncated=False,
        bitrate=24_000,
        opus_bandwidth="narrowband",
        opus_layout="mono",
        coded_sample_rate=8000,
        output_channels=1,
    )
    return tuple(
        ArchivedRecording(
            SourceRecording(
                recording_id=f"r{index}",
                conversation_id=f"c{index // 2}",
                session_id=f"s{index}",
                bucket=SOURCE_BUCKET,
                object_key=f"tenants/t/conversations/c{index // 2}/s{index}/r{index}.wav",
                started_at=hour + timedelta(minutes=10 * index),
                duration_seconds=95.0,
                format="WAV",
                channels=1,
                sample_rate=8000,
                size_bytes=760_044,
            ),
            f"c{index // 2}/s{index}/r{index}.opus",
            result,
        )
        for index in range(3)
    )


def _failed_recording(hour: datetime) -> FailedRecording:
    source = SourceRecording(
        recording_id="r-corrupt",
        conversation_id="c-corrupt",
        session_id="s-corrupt",
        bucket=SOURCE_BUCKET,
        object_key="tenants/t/conversations/c-corrupt/s-corrupt/r-corrupt.wav",
        started_at=hour + timedelta(minutes=47),
        duration_seconds=10.0,
        format="WAV",
        channels=1,
        sample_rate=8000,
        size_bytes=2068,
    )
    detail = "libsndfile cannot open it: Error in WAV/W64/RF64 file. Malformed 'fmt ' chunk."
    return FailedRecording(source, "corrupt", detail)


def materialization(tenant: str, hour: datetime, generated_at: datetime) -> dg.AssetMaterialization:
    """A materialization as the asset logs it for a tenant-hour: its metadata and the tags a
    run adds to a multi-partitioned asset's events."""
    archive = HourArchive(
        tenant_id=tenant,
        hour=hour,
        object_key=archive_key(tenant, hour),
        size_bytes=len(TINY_ARCHIVE),
        sha256=TINY_SHA256,
        etag=hashlib.md5(TINY_ARCHIVE).hexdigest(),  # noqa: S324 - what S3 answers as ETag
        generated_at=generated_at,
        archived=_template_recordings(hour),
        failed=(_failed_recording(hour),) if hour.hour % 6 == 3 else (),
    )
    return dg.AssetMaterialization(
        archive_asset_key(tenant),
        partition=archive_partition_key(tenant, hour),
        metadata=hour_metadata(archive, ARCHIVE_BUCKET),
        tags={
            "dagster/partition/hour": hour_partition_key(hour),
            "dagster/partition/tenant": tenant,
        },
    )


def _entry(event: dg.AssetMaterialization, timestamp: float) -> EventLogEntry:
    """The record `report_runless_asset_event` stores for `event` (see report_dagster_event)."""
    return EventLogEntry(
        user_message="",
        level=logging.INFO,
        job_name=RUNLESS_JOB_NAME,
        run_id=RUNLESS_RUN_ID,
        error_info=None,
        timestamp=timestamp,
        step_key=None,
        dagster_event=DagsterEvent(
            event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
            event_specific_data=StepMaterializationData(event),
            job_name=RUNLESS_JOB_NAME,
        ),
    )


def store_batch(instance: dg.DagsterInstance, entries: Sequence[EventLogEntry]) -> None:
    """Store materialization records in one go, with the storage's own statements."""
    storage = instance.event_log_storage
    if not isinstance(storage, SqliteEventLogStorage):
        storage.store_event_batch(entries)  # PostgreSQL: one INSERT ... RETURNING, then tags
        return
    # SQLite's store_event, per batch instead of per event: the run shard, then the index
    # shard with the asset event tags and the asset row (updated with the last event, as
    # PostgreSQL's store_event_batch does).
    rows = [storage._event_to_row(entry) for entry in entries]
    with storage.run_connection(RUNLESS_RUN_ID) as connection:
        connection.execute(SqlEventLogStorageTable.insert(), rows)
    with storage.index_transaction() as connection:
        result = connection.execute(
            SqlEventLogStorageTable.insert().returning(
                SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
            ),
            rows,
        )
        ids = [int(row[0]) for row in result]
        storage._store_asset_event_tags(connection, entries, ids)
        storage._store_asset_event(connection, entries[-1], ids[-1])


def seed_materializations(
    instance: dg.DagsterInstance, names: Sequence[str], hours: Sequence[datetime]
) -> tuple[int, float]:
    """The first tenant's hours through the public call (returns its seconds per event), the
    others in batches, each of one shard's asset (a batch updates the asset row of its last
    event's asset only, as the storages' own batch writes do); returns (events, seconds per
    event of the public call)."""
    generated_at = datetime.now(UTC) - timedelta(minutes=5)
    public = [materialization(names[0], hour, generated_at) for hour in hours]
    started = time.perf_counter()
    for event in public:
        instance.report_runless_asset_event(event)
    per_event = (time.perf_counter() - started) / len(public)
    count = len(public)
    for shard_names in tenants_by_shard(names[1:]).values():
        batch: list[EventLogEntry] = []
        for tenant in shard_names:
            for hour in hours:
                batch.append(_entry(materialization(tenant, hour, generated_at), time.time()))
                if len(batch) == BATCH:
                    store_batch(instance, batch)
                    count += len(batch)
                    batch = []
        if batch:
            store_batch(instance, batch)
            count += len(batch)
    return count, per_event


def seed_objects(client: Minio, names: Sequence[str], hours: Sequence[datetime]) -> int:
    keys = [archive_key(tenant, hour) for tenant in names for hour in hours]

    def put(key: str) -> None:
        client.put_object(
            ARCHIVE_BUCKET, key, io.BytesIO(TINY_ARCHIVE), len(TINY_ARCHIVE), "application/zip"
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))
    return len(keys)


def create_pooled_app() -> Litestar:
    """The API app on a Dagster instance that holds pooled connections, as the webserver's does
    (`optimize_for_webserver`); dagster-postgres otherwise opens a connection per query. For the
    comparison only (uvicorn factory `scale:create_pooled_app`), never deployed."""
    from recordings_api.app import create_app

    instance = dg.DagsterInstance.get()
    instance.optimize_for_webserver(statement_timeout=30_000, pool_recycle=3600, max_overflow=5)
    return create_app(instance=instance)


# --- the webserver -----------------------------------------------------------------------------


class Webserver:
    """`dagster-webserver` on a free port, in its own process group (it starts a code server)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            str(Path(sys.executable).parent / "dagster-webserver"),
            *("-h", "127.0.0.1", "-p", str(self.port), "-w", str(REPO / "workspace.yaml")),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                # Not the repository: Dagster reads `.env` from the working directory, and a
                # developer's `.env` (the demo's DAGSTER_HOME) would win over this instance.
                cwd=self.log_path.parent,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=900,
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_loaded(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"dagster-webserver exited; see {self.log_path}")
            try:
                data = self.graphql(WORKSPACE_QUERY)
            except (httpx.HTTPError, RuntimeError):
                time.sleep(0.5)
                continue
            entries = data["workspaceOrError"].get("locationEntries") or []
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                for entry in entries:
                    if entry["locationOrLoadError"]["__typename"] != "RepositoryLocation":
                        raise RuntimeError(f"code location failed to load: {entry}")
                return
            time.sleep(0.5)
        raise RuntimeError(f"the webserver did not load the code location in {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, timeout=15)


def count_materialized(answer: dict[str, Any]) -> dict[str, int]:
    """Materialized, failed and in-progress partitions in a PartitionHealthQuery answer."""
    node = answer["assetNodeOrError"]
    keys = {dim["name"]: dim["partitionKeys"] for dim in node["partitionKeysByDimension"]}
    statuses = node["assetPartitionStatuses"]
    primary = statuses["primaryDimensionName"]
    (secondary,) = (name for name in keys if name != primary)
    index = {name: {key: i for i, key in enumerate(values)} for name, values in keys.items()}
    totals = {"materialized": 0, "failed": 0, "materializing": 0}
    for block in statuses["ranges"]:
        width = (
            index[primary][block["primaryDimEndKey"]]
            - index[primary][block["primaryDimStartKey"]]
            + 1
        )
        inner = block["secondaryDim"]
        if "ranges" in inner:  # the secondary dimension is the time one
            for span in inner["ranges"]:
                size = index[secondary][span["endKey"]] - index[secondary][span["startKey"]] + 1
                status = span["status"].lower()
                totals[status] = totals.get(status, 0) + width * size
        else:
            for status in ("materialized", "failed", "materializing"):
                totals[status] += width * len(inner[f"{status}Partitions"])
    totals["partition_keys"] = len(keys[primary]) * len(keys[secondary])
    totals["response_bytes"] = len(json.dumps(answer))
    return totals


# --- one backend, one size (child process) -----------------------------------------------------


def analyze(url: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()


def _instance_yaml(storage_url: str | None) -> str:
    config = yaml.safe_load((REPO / "dagster.yaml").read_text(encoding="utf-8"))
    if storage_url is not None:
        config["storage"] = {"postgres": {"postgres_url": storage_url}}
    return yaml.safe_dump(config, sort_keys=False)


def measure_sensors(
    instance: dg.DagsterInstance,
    database_url: str,
    names: Sequence[str],
    day: date,
    backend: str,
) -> dict[str, Any]:
    """The tenant-partitions sensor and the late-recordings sensor, evaluated as the daemon
    does, on the day's registrations of a platform's population (bench/population.py): the
    late-recordings sensor in steady state (its cursor five minutes behind the last
    registration, as one tick every 5 minutes sees them) and on its first evaluation (no cursor:
    a day's registrations)."""
    progress(f"[{backend} {len(names)}] registering a platform's day of recordings")
    population = register_population(database_url, names, day, SOURCE_BUCKET)
    resources = {"database": DatabaseResource(url=database_url)}
    figures: dict[str, Any] = {"sensor_recordings": population.recordings}

    def tenants_sensor() -> None:
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            tenant_partitions_sensor(context)

    figures["tenant_sensor_first_s"], figures["tenant_sensor_s"] = first_and_median(tenants_sensor)
    engine = create_db_engine(database_url)
    with session_scope(engine) as session:
        last = session.scalar(sa.select(sa.func.max(AudioFile.registered_at)))
    engine.dispose()
    assert last is not None
    steady = (last - timedelta(minutes=5)).isoformat()
    found: list[int] = []

    def late(cursor: str | None) -> Callable[[], None]:
        def evaluate() -> None:
            with dg.build_sensor_context(
                instance=instance, cursor=cursor, resources=resources
            ) as context:
                result = late_recordings_sensor(context)
            assert isinstance(result, dg.SensorResult)
            found.append(len(result.run_requests or []))

        return evaluate

    figures["late_sensor_first_s"], figures["late_sensor_s"] = first_and_median(late(steady))
    progress(f"[{backend} {len(names)}] the late-recordings sensor with no cursor (a day back)")
    figures["late_sensor_day_s"] = seconds_of(late(None))
    figures["late_requests"] = found[-1]
    return figures


def measure(backend: str, tenants: int, seconds: float, full_window: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {"backend": backend, "tenants": tenants, "full": full_window}
    now = datetime.now(UTC)
    today = now.date()
    yesterday = today - timedelta(days=1)
    expired_hour = day_hours(today - timedelta(days=EXPIRED_DAYS_AGO))[0]
    kept_hour = day_hours(yesterday)[0]  # the archive retention keeps, one per tenant
    hours = [*day_hours(yesterday), expired_hour]
    if full_window:  # steady state: every hour of the window's days has been archived
        hours = [
            hour
            for days_ago in range(EXPIRED_DAYS_AGO, 0, -1)
            for hour in day_hours(today - timedelta(days=days_ago))
        ]
    names = [tenant_name(index) for index in range(tenants)]
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch,
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
        folder, client, database_url = local.folder, local.s3.client, local.database_url
        env = local.environment()
        os.environ.update(env)
        instance = stack.enter_context(dg.DagsterInstance.get())

        progress(f"[{backend} {tenants}] seeding {tenants} tenants")
        figures["seed_tenants_s"] = seconds_of(
            lambda: enable_tenants(database_url, names, RETENTION_DAYS)
        )
        figures["seed_partitions_s"] = seconds_of(
            lambda: register_tenant_partitions(instance, names)
        )
        by_shard = tenants_by_shard(names)
        shard = max(range(SHARD_COUNT), key=lambda s: len(by_shard.get(s, [])))
        figures["shard"], figures["shard_tenants"] = shard, len(by_shard.get(shard, []))
        progress(f"[{backend} {tenants}] seeding {len(hours) * tenants:,} materializations")
        started = time.perf_counter()
        figures["materializations"], figures["public_event_s"] = seed_materializations(
            instance, names, hours
        )
        figures["seed_materializations_s"] = time.perf_counter() - started
        progress(f"[{backend} {tenants}] seeding {2 * tenants:,} archive objects")
        started = time.perf_counter()
        figures["objects"] = seed_objects(client, names, [kept_hour, expired_hour])
        figures["seed_objects_s"] = time.perf_counter() - started

        if backend == "postgresql":
            # Autovacuum would analyze the freshly loaded tables within a minute or so; without
            # statistics the planner picks worse plans (the links lookup took twice as long).
            analyze(database_url)
            analyze(str(databases.dagster_url))
        progress(f"[{backend} {tenants}] listing the partitions of shard {shard:02d}")
        keys: list[str] = []

        def list_keys() -> None:
            keys[:] = shard_partitions(shard).get_partition_keys(dynamic_partitions_store=instance)

        figures["list_first_s"], figures["list_next_s"] = first_and_median(list_keys)
        figures["partitions"] = len(keys)

        progress(f"[{backend} {tenants}] evaluating the nightly schedules' tick")
        requests: list[dg.RunRequest] = []

        def tick() -> None:
            requests.clear()
            for schedule in NIGHTLY_ARCHIVES_SCHEDULES:
                with dg.build_schedule_context(
                    instance=instance,
                    scheduled_execution_time=now.replace(
                        hour=0, minute=30, second=0, microsecond=0
                    ),
                    resources={
                        "database": DatabaseResource(url=database_url),
                        "archive_build": ArchiveBuildResource(),
                    },
                ) as context:
                    result = schedule(context)
                if isinstance(result, list):
                    requests.extend(result)

        figures["tick_first_s"], figures["tick_next_s"] = first_and_median(tick)
        figures["run_requests"] = len(requests)
        assert {r.tags["recordings/utc_day"] for r in requests} == {yesterday.isoformat()}
        figures.update(measure_sensors(instance, database_url, names, yesterday, backend))

        progress(f"[{backend} {tenants}] starting dagster-webserver")
        webserver = Webserver(env, folder / "webserver.log")
        stack.callback(webserver.stop)
        started = time.perf_counter()
        webserver.start()
        webserver.wait_loaded()
        figures["webserver_start_s"] = time.perf_counter() - started
        progress(f"[{backend} {tenants}] partition-status queries")
        variables = {"assetKey": {"path": shard_asset_key(shard).path}}
        answers: list[dict[str, Any]] = []

        def health() -> None:
            answers.append(webserver.graphql(PARTITION_HEALTH_QUERY, variables))

        figures["health_cold_s"], figures["health_warm_s"] = first_and_median(health)
        stats: list[dict[str, Any]] = []

        def partition_stats() -> None:
            stats.append(webserver.graphql(PARTITION_STATS_QUERY, variables))

        figures["stats_first_s"], figures["stats_warm_s"] = first_and_median(partition_stats)
        webserver.stop()
        counted = count_materialized(answers[-1])
        numbers = stats[-1]["assetNodeOrError"]["partitionStats"]
        figures["health_answer"] = counted
        figures["partition_stats"] = numbers
        expected = len(hours) * figures["shard_tenants"]
        assert counted["materialized"] == expected, (counted, expected)
        assert counted["partition_keys"] == len(keys), (counted, len(keys))
        assert numbers == {
            "numMaterialized": expected,
            "numMaterializing": 0,
            "numPartitions": len(keys),
            "numFailed": 0,
        }, numbers

        tenant = names[len(names) // 2]
        progress(f"[{backend} {tenants}] the links lookup alone, in process ({tenant})")
        lookup = timed(lambda: day_statuses(instance, tenant, yesterday, RETENTION_DAYS), 100)
        cache = EvidenceCache()
        cached = timed(
            lambda: day_statuses(instance, tenant, yesterday, RETENTION_DAYS, cache=cache), 100
        )
        figures["lookup_p50_ms"] = statistics.median(lookup) * 1000
        figures["lookup_p99_ms"] = percentile(lookup, 0.99) * 1000
        figures["lookup_cached_p50_ms"] = statistics.median(cached) * 1000
        # The same lookup on an instance holding pooled connections, as the webserver's does:
        # dagster-postgres otherwise opens a new connection for every query (NullPool).
        with dg.DagsterInstance.get() as pooled:
            pooled.optimize_for_webserver(
                statement_timeout=30_000, pool_recycle=3600, max_overflow=5
            )
            held = timed(lambda: day_statuses(pooled, tenant, yesterday, RETENTION_DAYS), 100)
        figures["lookup_pooled_p50_ms"] = statistics.median(held) * 1000
        auth = tenant_headers(tenant, subject="bench-client")
        path = f"{LINKS}?utcDay={yesterday.isoformat()}"
        for label, factory in (("links", APP_FACTORY), ("links_pooled", "scale:create_pooled_app")):
            progress(f"[{backend} {tenants}] the API ({factory}), 1 client, {seconds:.0f} s")
            api = LocalApiServer(
                port=free_port(), env=env, log_path=folder / f"{label}.log", factory=factory
            )
            stack.callback(api.stop)
            api.start()
            api.wait_ready()
            body = httpx.get(f"{api.url}{path}", headers=auth, timeout=60).json()
            assert [hour["status"] for hour in body["hours"]] == ["available"] * 24, body
            result = load(api.url, [path], auth, 1, seconds)
            api.stop()
            assert set(result.statuses) == {200}, result.statuses
            figures[f"{label}_p50_ms"] = result.p(0.5)
            figures[f"{label}_p99_ms"] = result.p(0.99)

        progress(f"[{backend} {tenants}] the retention job")
        from recordings_dagster.definitions import defs

        job = defs.resolve_job_def("retention_job")
        run_config = {
            "ops": {"apply_archive_retention": {"config": {"today": today.isoformat()}}},
            # The job logs one line per tenant; keep them in the event log, off this terminal.
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        }
        outcome: list[dg.ExecuteInProcessResult] = []

        def retention() -> None:
            outcome.append(job.execute_in_process(instance=instance, run_config=run_config))

        figures["retention_s"] = seconds_of(retention)
        assert outcome[-1].success
        engine = create_db_engine(database_url)
        with session_scope(engine) as session:
            deleted = session.scalar(
                sa.select(sa.func.count())
                .select_from(ArchiveDeletion)
                .where(ArchiveDeletion.state == "deleted")
            )
        engine.dispose()
        left = list(client.list_objects(ARCHIVE_BUCKET, prefix="tenants/", recursive=True))
        figures["retention_deleted"] = deleted
        figures["retention_kept"] = len(left)
        assert deleted == tenants, deleted
        assert sorted(str(item.object_name) for item in left) == sorted(
            archive_key(name, kept_hour) for name in names
        )
        progress(f"[{backend} {tenants}] the retention job again, nothing to delete")
        figures["retention_again_s"] = seconds_of(retention)
        assert outcome[-1].success
    return figures


# --- the parent: one child per backend and size, then the tables -------------------------------


def run_child(backend: str, tenants: int, seconds: float, full_window: bool) -> dict[str, Any]:
    started = time.perf_counter()
    command = [sys.executable, __file__, "--only", backend, "--tenants", str(tenants)]
    child = subprocess.run(
        [*command, "--seconds", str(seconds), *(["--full-window"] if full_window else [])],
        check=False,
        stdout=subprocess.PIPE,
        text=True,
        timeout=3 * 3600,
    )
    if child.returncode != 0:
        raise SystemExit(f"the {backend} run with {tenants} tenants failed (see above)")
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    figures["wall_s"] = time.perf_counter() - started
    return figures


def _s(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def rows(f: dict[str, Any]) -> list[tuple[str, str]]:
    n = f["tenants"]
    per_deletion = (f["retention_s"] - f["retention_again_s"]) / n
    projected = f["retention_again_s"] + 24 * n * per_deletion
    stats = f["partition_stats"]
    return [
        ("seeding: tenants + settings in the database", _s(f["seed_tenants_s"])),
        ("seeding: dynamic partitions (one call per shard)", _s(f["seed_partitions_s"])),
        (
            "seeding: materializations (batched; tenant 0 one by one)",
            f"{f['materializations']:,} in {_s(f['seed_materializations_s'])}",
        ),
        (
            "`report_runless_asset_event`, per event (all of them that way)",
            f"{f['public_event_s'] * 1000:.0f} ms "
            f"({f['public_event_s'] * f['materializations'] / 60:.0f} min)",
        ),
        ("seeding: archive objects in S3", f"{f['objects']:,} in {_s(f['seed_objects_s'])}"),
        (
            "largest shard: tenants (partitions of its asset)",
            f"{f['shard_tenants']:,} ({f['partitions']:,})",
        ),
        ("list all partition keys: first call", _s(f["list_first_s"])),
        ("list all partition keys: next (median of 3)", _s(f["list_next_s"])),
        ("schedule tick (every shard's schedule): run requests", f"{f['run_requests']:,}"),
        ("schedule tick: first evaluation", _s(f["tick_first_s"])),
        ("schedule tick: next (median of 3)", _s(f["tick_next_s"])),
        (
            "tenant-partitions sensor: a tick (median of 3; first)",
            f"{_s(f['tenant_sensor_s'])} ({_s(f['tenant_sensor_first_s'])})",
        ),
        (
            "late-recordings sensor: a steady tick, 5 minutes of registrations (median of 3)",
            _s(f["late_sensor_s"]),
        ),
        (
            f"late-recordings sensor: first tick, a day of registrations "
            f"({f['sensor_recordings']:,})",
            _s(f["late_sensor_day_s"]),
        ),
        ("webserver: start until the code location is loaded", _s(f["webserver_start_s"])),
        ("UI partition status (`PartitionHealthQuery`): cold", _s(f["health_cold_s"])),
        ("UI partition status: warm (median of 3)", _s(f["health_warm_s"])),
        (
            "UI partition status: answer size",
            f"{f['health_answer']['response_bytes'] / 1000:,.0f} kB",
        ),
        ("`partitionStats`: warm (median of 3)", _s(f["stats_warm_s"])),
        (
            "`partitionStats` answer: materialized / partitions / failed / in progress",
            f"{stats['numMaterialized']:,} / {stats['numPartitions']:,} / "
            f"{stats['numFailed']} / {stats['numMaterializing']}",
        ),
        (
            "links lookup alone (in process): p50 / p99",
            f"{_ms(f['lookup_p50_ms'])} / {_ms(f['lookup_p99_ms'])}",
        ),
        ("links lookup alone, evidence cached: p50", _ms(f["lookup_cached_p50_ms"])),
        (
            "links lookup alone, pooled connections (`optimize_for_webserver`): p50",
            _ms(f["lookup_pooled_p50_ms"]),
        ),
        (
            "**links endpoint, 1 client: p50** / p99",
            f"**{_ms(f['links_p50_ms'])}** / {_ms(f['links_p99_ms'])}",
        ),
        (
            "links endpoint, API on pooled Dagster connections: p50 / p99",
            f"{_ms(f['links_pooled_p50_ms'])} / {_ms(f['links_pooled_p99_ms'])}",
        ),
        (
            "retention job: wall time (deleted / kept)",
            f"{_s(f['retention_s'])} ({f['retention_deleted']:,} / {f['retention_kept']:,})",
        ),
        ("retention job again, nothing to delete", _s(f["retention_again_s"])),
        ("retention: per deletion (difference / N)", _ms(per_deletion * 1000)),
        (
            f"retention projected for a full expired day ({24 * n:,} deletions)",
            f"{projected / 60:.1f} min",
        ),
        ("this measurement's wall time (child process)", f"{f['wall_s'] / 60:.1f} min"),
    ]


def report(results: list[dict[str, Any]]) -> None:
    backends = list(dict.fromkeys(f["backend"] for f in results))
    sizes = sorted({f["tenants"] for f in results})
    by = {(f["backend"], f["tenants"]): f for f in results}
    for backend in backends:
        label = "SQLite" if backend == "sqlite" else "PostgreSQL"
        print(f"\n**{label}**\n")
        print("| figure | " + " | ".join(f"{n:,} tenants" for n in sizes) + " |")
        print("| --- |" + " ---: |" * len(sizes))
        columns = [rows(by[(backend, n)]) for n in sizes]
        for index, (name, _) in enumerate(columns[0]):
            print(f"| {name} | " + " | ".join(column[index][1] for column in columns) + " |")
    largest = sizes[-1]
    if len(backends) == 2:
        sqlite, postgres = by[("sqlite", largest)], by[("postgresql", largest)]
        print(f"\n**SQLite against PostgreSQL, {largest:,} tenants**\n")
        print("| figure | SQLite | PostgreSQL | PostgreSQL / SQLite |")
        print("| --- | ---: | ---: | ---: |")
        for name, key, unit in COMPARED:
            a, b = sqlite[key], postgres[key]
            print(f"| {name} | {unit(a)} | {unit(b)} | {b / a:.2f} |")
    if len(sizes) >= 2:
        small = sizes[0]
        print(f"\n**Growth from {small:,} to {largest:,} tenants (x{largest / small:g})**\n")
        print("| figure | " + " | ".join(backends) + " |")
        print("| --- |" + " ---: |" * len(backends))
        for name, key, _ in COMPARED:
            ratios = [by[(b, largest)][key] / by[(b, small)][key] for b in backends]
            print(f"| {name} | " + " | ".join(f"x{r:.2f}" for r in ratios) + " |")


COMPARED: list[tuple[str, str, Callable[[float], str]]] = [
    ("list all partition keys, first call", "list_first_s", _s),
    ("schedule tick (median of 3)", "tick_next_s", _s),
    ("tenant-partitions sensor tick", "tenant_sensor_s", _s),
    ("late-recordings sensor, steady tick", "late_sensor_s", _s),
    ("late-recordings sensor, first tick (a day)", "late_sensor_day_s", _s),
    ("UI partition status, cold", "health_cold_s", _s),
    ("UI partition status, warm", "health_warm_s", _s),
    ("`partitionStats`, warm", "stats_warm_s", _s),
    ("links lookup alone p50", "lookup_p50_ms", _ms),
    ("links endpoint p50, 1 client", "links_p50_ms", _ms),
    ("links endpoint p50, pooled Dagster connections", "links_pooled_p50_ms", _ms),
    ("retention job", "retention_s", _s),
    ("retention job, nothing to delete", "retention_again_s", _s),
]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=1000, help="tenants (one size)")
    parser.add_argument(
        "--sizes", help="comma-separated tenant counts instead of --tenants, e.g. 100,1000"
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=5.0, help="links endpoint load time")
    parser.add_argument(
        "--full-window",
        action="store_true",
        help="seed every hour of the 8-day window (the steady state: 192 materializations a "
        "tenant) instead of yesterday's 24 and the expired hour",
    )
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.only:  # a child: one backend, one size; figures as JSON on the last stdout line
        print(json.dumps(measure(args.only, args.tenants, args.seconds, args.full_window)))
        return
    sizes = [int(size) for size in args.sizes.split(",")] if args.sizes else [args.tenants]
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    started = time.perf_counter()
    results = [run_child(b, n, args.seconds, args.full_window) for n in sizes for b in backends]
    print(
        f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"Dagster {dg.__version__}; {datetime.now(UTC):%Y-%m-%d}."
    )
    report(results)
    print(f"\n_Bench runtime: {(time.perf_counter() - started) / 60:.1f} min._")


if __name__ == "__main__":
    main()
