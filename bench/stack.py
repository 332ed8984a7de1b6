"""The local stack a benchmark runs on, started one way for every benchmark.

A SeaweedFS S3 server of the benchmark's own (free loopback ports, fresh credentials, its data in
the benchmark's temporary folder) with the buckets the benchmark names, a migrated application
database, a DAGSTER_HOME, and the environment the benchmark's processes read (Dagster's, the
API's, the resources of jobs run in process). Nothing here touches a developer's demo server,
`.env` or data, and everything started is stopped on the way out, however the benchmark ends.
"""

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from minio import Minio
from sqlalchemy.orm import Session

from recordings.catalog import ensure_tenant, register_recording, set_recording_settings
from recordings.db.engine import create_db_engine, session_scope
from recordings.db.migrate import upgrade_database
from recordings.keys import source_key, tenants_by_shard
from recordings.storage import S3Connection, ensure_bucket, upload_file
from recordings.tokens import READ_PERMISSION, mint_development_token
from recordings_cli.demo_data import SOURCE_MIX
from recordings_cli.local_s3 import LocalS3Ports, LocalS3Server, new_credentials
from recordings_cli.synth import FORMATS, write_conversation
from recordings_dagster.partitions import tenant_partitions_name
from recordings_instance.archives import INSTANCE_ENVIRONMENT

REPO = Path(__file__).resolve().parents[1]
LINK_KEYS = "k1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="  # benchmark only
JWT_DEV_SECRET = "bench-" + "s" * 40  # benchmark only
_STARTED = time.perf_counter()


def elapsed() -> float:
    """Seconds since the benchmark started (since this module was first imported)."""
    return time.perf_counter() - _STARTED


def progress(message: str) -> None:
    """A progress line on stderr, stamped with `elapsed()`: stdout is kept for the report."""
    print(f"[{elapsed():6.1f} s] {message}", file=sys.stderr, flush=True)


def tenant_headers(tenant_id: str, subject: str) -> dict[str, str]:
    """The Authorization header of a client reading `tenant_id`'s archives: a development token
    signed with the secret `LocalStack.environment()` gives the API."""
    token = mint_development_token(
        JWT_DEV_SECRET, subject=subject, tenant_id=tenant_id, permissions=[READ_PERMISSION]
    )
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class LocalS3:
    """A running S3 server of the benchmark's own, and a client on it."""

    server: LocalS3Server
    connection: S3Connection
    client: Minio


@contextlib.contextmanager
def local_s3(folder: Path, buckets: Sequence[str]) -> Iterator[LocalS3]:
    """SeaweedFS with its data in `folder / "s3"`, holding `buckets`; stopped on the way out."""
    access_key, secret_key = new_credentials()
    server = LocalS3Server(folder / "s3", access_key, secret_key, LocalS3Ports.free())
    progress("starting the local S3 server")
    try:
        server.start()
        connection = S3Connection(f"http://{server.endpoint}", access_key, secret_key)
        client = connection.client()
        for bucket in buckets:
            ensure_bucket(client, bucket)
        yield LocalS3(server, connection, client)
    finally:
        progress("stopping the local S3 server")
        server.stop(timeout=3)


@dataclass(frozen=True)
class LocalStack:
    """S3, the application database and a Dagster home, all in one benchmark's folder."""

    folder: Path
    s3: LocalS3
    database_url: str
    home: Path  # DAGSTER_HOME: its dagster.yaml is the instance of every Dagster process
    source_bucket: str
    archive_bucket: str

    def environment(self) -> dict[str, str]:
        """What the benchmark's processes read: the application database, S3 and the buckets,
        the development token secret and link keys, the project folder (so no `.env` of the
        checkout is read), DAGSTER_HOME, and a PYTHONPATH with this checkout first (the
        virtualenv may have been installed from another one) and bench/ (the API factories the
        benchmarks serve, `api:create_bench_app` and `scale:create_pooled_app`). Each benchmark
        adds its own extras."""
        connection = self.s3.connection
        python_path = [str(REPO), str(REPO / "bench"), *filter(None, [os.getenv("PYTHONPATH")])]
        return {
            "RECORDINGS_DATABASE_URL": self.database_url,
            "RECORDINGS_S3_ENDPOINT": connection.endpoint,
            "RECORDINGS_S3_ACCESS_KEY": connection.access_key,
            "RECORDINGS_S3_SECRET_KEY": connection.secret_key,
            "RECORDINGS_SOURCE_BUCKET": self.source_bucket,
            "RECORDINGS_ARCHIVE_BUCKET": self.archive_bucket,
            "RECORDINGS_JWT_DEV_SECRET": JWT_DEV_SECRET,
            "RECORDINGS_LINK_KEYS": LINK_KEYS,
            "RECORDINGS_PROJECT_DIR": str(self.folder),
            "DAGSTER_HOME": str(self.home),
            "PYTHONPATH": os.pathsep.join(python_path),
            **INSTANCE_ENVIRONMENT,
        }


@contextlib.contextmanager
def local_stack(
    folder: Path,
    *,
    source_bucket: str,
    archive_bucket: str,
    database_url: str | None = None,
    dagster_yaml: str | None = None,
) -> Iterator[LocalStack]:
    """The S3 server with both buckets, the application database migrated (SQLite in `folder`
    unless `database_url` names another) and `folder / "dagster_home"` holding `dagster_yaml`
    (the repository's `dagster.yaml` unless given). The S3 server is stopped on the way out."""
    with local_s3(folder, [source_bucket, archive_bucket]) as s3:
        database_url = database_url or f"sqlite:///{folder / 'recordings.db'}"
        upgrade_database(database_url)
        home = folder / "dagster_home"
        home.mkdir()
        if dagster_yaml is None:
            dagster_yaml = (REPO / "dagster.yaml").read_text(encoding="utf-8")
        (home / "dagster.yaml").write_text(dagster_yaml, encoding="utf-8")
        yield LocalStack(folder, s3, database_url, home, source_bucket, archive_bucket)


def stop_process_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop a process started with `start_new_session=True` and everything it started (a
    Dagster process starts code servers and runs): SIGTERM to its group, SIGKILL after
    `timeout` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class SourceRecordings:
    """Real recordings a benchmark registers as the platform does: the demo's source formats
    (`SOURCE_MIX`) synthesized once each into `scratch`, then uploaded to `bucket` and registered
    under fresh random ids for every recording asked for."""

    def __init__(
        self, client: Minio, bucket: str, seconds: float, scratch: Path, rng: random.Random
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.seconds = seconds
        self.scratch = scratch
        self.rng = rng
        self._files: dict[tuple[str, int, int], Path] = {}

    def add(self, session: Session, tenant: str, mix_index: int, started_at: datetime) -> int:
        """Upload and register one recording of `tenant` in the format `SOURCE_MIX[mix_index]`
        (cycling), starting at `started_at`; returns its size in bytes."""
        fmt_key, rate, channels = SOURCE_MIX[mix_index % len(SOURCE_MIX)]
        fmt = FORMATS[fmt_key]
        path = self._files.get((fmt_key, rate, channels))
        if path is None:
            path = self.scratch / f"{fmt_key}-{rate}-{channels}{fmt.extension}"
            write_conversation(path, fmt, self.seconds, rate, channels, seed=len(self._files))
            self._files[(fmt_key, rate, channels)] = path
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        conversation_id, session_id, recording_id = ids
        key = source_key(tenant, conversation_id, session_id, recording_id, fmt.extension)
        upload_file(self.client, self.bucket, key, path, "application/octet-stream")
        size = path.stat().st_size
        register_recording(
            session,
            tenant_id=tenant,
            conversation_id=conversation_id,
            session_id=session_id,
            recording_id=recording_id,
            bucket=self.bucket,
            object_key=key,
            started_at=started_at,
            duration_seconds=self.seconds,
            audio_format=fmt.format,
            channels=channels,
            sample_rate=rate,
            size_bytes=size,
        )
        return size


def enable_tenants(database_url: str, names: Sequence[str], retention_days: int = 7) -> None:
    """Every tenant in `names` created with the feature on, in one transaction."""
    engine = create_db_engine(database_url)
    with session_scope(engine) as session:
        for tenant in names:
            ensure_tenant(session, tenant)
            set_recording_settings(
                session, tenant, changed_by="bench", enabled=True, retention_days=retention_days
            )
    engine.dispose()


def register_tenant_partitions(instance: dg.DagsterInstance, names: Sequence[str]) -> None:
    """Every tenant in its shard's dynamic partitions, in the order given, as the tenant sensor
    adds them (one call per shard)."""
    for shard, ids in tenants_by_shard(names).items():
        instance.add_dynamic_partitions(tenant_partitions_name(shard), ids)


def create_postgres_database(admin_url: str, name: str, driver: str) -> str:
    """Create database `name` on the server of `admin_url`; its URL with `driver`."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    url = sa.make_url(admin_url).set(drivername=driver, database=name)
    return url.render_as_string(hide_password=False)


@dataclass(frozen=True)
class Databases:
    """Where a benchmark keeps its data: None for SQLite in the stack's folder."""

    application_url: str | None = None
    dagster_url: str | None = None


def benchmark_databases(stack: contextlib.ExitStack, backend: str, label: str) -> Databases:
    """SQLite (nothing to start), or a throwaway PostgreSQL server (tests/postgres.py, stopped
    with `stack`) holding the application database and Dagster's. Dagster's URL names psycopg2:
    with SQLAlchemy 2.1 a plain `postgresql://` means psycopg 3, under which dagster-postgres
    fails on its first event (`NOTIFY run_events, $1`)."""
    if backend != "postgresql":
        return Databases()
    if str(REPO) not in sys.path:  # `tests` is imported from the repository root
        sys.path.insert(0, str(REPO))
    from tests.postgres import temporary_postgres

    progress(f"[{label}] starting a throwaway PostgreSQL server")
    admin_url = stack.enter_context(temporary_postgres())
    return Databases(
        create_postgres_database(admin_url, "recordings", "postgresql+psycopg"),
        create_postgres_database(admin_url, "dagster", "postgresql+psycopg2"),
    )
