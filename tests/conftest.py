"""Shared fixtures: a real S3 server (SeaweedFS), a real database, a real Dagster instance.

The S3 server is started once per test session on free loopback ports with fresh credentials
(identities enforced), so tests never touch a developer's demo server or data. Each test gets
its own SQLite database file and its own buckets.
"""

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from minio import Minio

from recordings.db.engine import create_db_engine
from recordings.db.migrate import upgrade_database
from recordings.local_s3 import LocalS3Ports, LocalS3Server, new_credentials
from recordings.storage import S3Connection, ensure_bucket

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3Server]:
    access_key, secret_key = new_credentials()
    server = LocalS3Server(
        data_dir=tmp_path_factory.mktemp("s3"),
        access_key=access_key,
        secret_key=secret_key,
        ports=LocalS3Ports.free(),
    )
    server.start()
    yield server
    server.stop(timeout=3)


@pytest.fixture(scope="session")
def s3_connection(s3_server: LocalS3Server) -> S3Connection:
    return S3Connection(
        endpoint=f"http://{s3_server.endpoint}",
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
    )


@pytest.fixture
def s3_client(s3_connection: S3Connection) -> Minio:
    return s3_connection.client()


@pytest.fixture
def buckets(s3_client: Minio) -> tuple[str, str]:
    """Fresh (source, archive) buckets for one test."""
    suffix = secrets.token_hex(4)
    source, archive = f"src-{suffix}", f"arc-{suffix}"
    ensure_bucket(s3_client, source)
    ensure_bucket(s3_client, archive)
    return source, archive


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'recordings.db'}"
    upgrade_database(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def recordings_env(
    monkeypatch: pytest.MonkeyPatch,
    s3_connection: S3Connection,
    database_url: str,
    buckets: tuple[str, str],
    tmp_path: Path,
) -> dict[str, str]:
    """The RECORDINGS_* environment that Dagster's EnvVar-bound resources read.

    The CLI's project folder is a fresh one holding only the repository's dagster.yaml, so a
    developer's `.env` in the checkout is never read by tests.
    """
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / "dagster.yaml", project / "dagster.yaml")
    env = {
        "RECORDINGS_PROJECT_DIR": str(project),
        "RECORDINGS_DATABASE_URL": database_url,
        "RECORDINGS_S3_ENDPOINT": s3_connection.endpoint,
        "RECORDINGS_S3_ACCESS_KEY": s3_connection.access_key,
        "RECORDINGS_S3_SECRET_KEY": s3_connection.secret_key,
        "RECORDINGS_SOURCE_BUCKET": buckets[0],
        "RECORDINGS_ARCHIVE_BUCKET": buckets[1],
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def no_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run CLI commands from an empty project folder so a developer's .env is never read."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.setenv("RECORDINGS_PROJECT_DIR", str(project))
    for key in list(os.environ):
        if key.startswith("RECORDINGS_") and key != "RECORDINGS_PROJECT_DIR":
            monkeypatch.delenv(key)
    return project


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    from tests.postgres import temporary_postgres

    with temporary_postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, migrated database on the session's PostgreSQL server."""
    name = f"recordings_{secrets.token_hex(4)}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"
    upgrade_database(url)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()
