"""Shared fixtures: a real S3 server (SeaweedFS), a real database, a real Dagster instance.

The S3 server is started once per test session on free loopback ports with fresh credentials
(identities enforced), so tests never touch a developer's demo server or data. Each test gets
its own buckets, its own application database and its own Dagster storage.

One switch chooses the databases: `RECORDINGS_TEST_BACKEND=sqlite` (the default, the embedded
defaults: a SQLite file per test, Dagster's SQLite storage in the instance folder) or
`postgresql` (production's: one throwaway PostgreSQL server for the session, a fresh migrated
application database per test, and a fresh database per test for every Dagster instance the
test creates, in-process, through the CLI or in uvicorn processes). Tests that pick their
databases themselves are marked `sqlite_run_only`: the PostgreSQL run skips them rather than
repeat them.

The folders mirror the code, so a module's tests are found from its path:

- `tests/domain`: the modules at the top of `recordings/` (keys, links, tokens, retention,
  storage and settings); `tests/archive`, `tests/audio` and `tests/db`: the subpackages of
  `recordings/` of those names, `tests/db` also holding the modules that are mostly queries
  (catalog, downloads, leases) and the check that this run's backend is in effect;
- `tests/api`: `recordings_api`; `tests/dagster`: `recordings_dagster`; `tests/instance`:
  `recordings_instance`; `tests/cli`: `recordings_cli`; `tests/bench`: the scripts of `bench/`,
  run small so they keep running;
- across the packages: `tests/test_layers.py` (which package may import which),
  `tests/resilience` (faults, outages, concurrent and killed runs), `tests/security` (hostile
  input, tenant isolation), `tests/deploy` (deployment artefacts).

Fixtures live in the conftest of the folder whose tests use them, this one for those used
across folders; plain values several modules share live in `tests/support.py`.
"""

import base64
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from minio import Minio

from recordings.db.engine import create_db_engine
from recordings.db.migrate import upgrade_database
from recordings.storage import S3Connection, ensure_bucket
from recordings_cli.local_s3 import LocalS3Ports, LocalS3Server, new_credentials

REPO_ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("sqlite", "postgresql")
BACKEND = os.environ.get("RECORDINGS_TEST_BACKEND", "sqlite")
# Instances started from a DAGSTER_HOME (the CLI's, uvicorn's) get the repository's dagster.yaml
# and, on the PostgreSQL backend, PostgreSQL storage added to it.
REPO_DAGSTER_CONFIG: dict[str, Any] = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())


def pytest_configure(config: pytest.Config) -> None:
    if BACKEND not in BACKENDS:
        raise pytest.UsageError(
            f"RECORDINGS_TEST_BACKEND={BACKEND!r}; choose one of {', '.join(BACKENDS)}"
        )


def pytest_report_header(config: pytest.Config) -> str:
    return f"recordings test backend: {BACKEND} (RECORDINGS_TEST_BACKEND)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND == "sqlite":
        return
    skip = pytest.mark.skip(reason="picks its own databases: the SQLite run (make test) covers it")
    for item in items:
        if item.get_closest_marker("sqlite_run_only"):
            item.add_marker(skip)


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


@pytest.fixture(scope="session")
def database_backend() -> str:
    """This run's RECORDINGS_TEST_BACKEND: "sqlite" or "postgresql"."""
    return BACKEND


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh, migrated SQLite database, whatever the backend."""
    url = f"sqlite:///{tmp_path / 'recordings.db'}"
    upgrade_database(url)
    return url


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """This run's application database for one test: fresh and migrated, SQLite or PostgreSQL
    (RECORDINGS_TEST_BACKEND)."""
    return request.getfixturevalue("sqlite_url" if BACKEND == "sqlite" else "postgres_url")


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
    dagster_storage: dict[str, Any],
    buckets: tuple[str, str],
    tmp_path: Path,
) -> dict[str, str]:
    """The RECORDINGS_* environment that Dagster's EnvVar-bound resources read.

    The CLI's project folder is a fresh one holding only the repository's dagster.yaml (with
    this run's Dagster storage), so a developer's `.env` in the checkout is never read by tests.
    """
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    write_dagster_yaml(project, dagster_storage)
    env = {
        "RECORDINGS_PROJECT_DIR": str(project),
        "RECORDINGS_DATABASE_URL": database_url,
        "RECORDINGS_S3_ENDPOINT": s3_connection.endpoint,
        "RECORDINGS_S3_ACCESS_KEY": s3_connection.access_key,
        "RECORDINGS_S3_SECRET_KEY": s3_connection.secret_key,
        "RECORDINGS_SOURCE_BUCKET": buckets[0],
        "RECORDINGS_ARCHIVE_BUCKET": buckets[1],
        # Webhooks on, with loopback receivers allowed (tests' receivers listen on loopback).
        "RECORDINGS_WEBHOOK_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "RECORDINGS_WEBHOOK_ALLOW_LOOPBACK": "true",
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


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A throwaway Redis server for the session (Debian's redis-server, as PostgreSQL is): the
    Celery run engine's broker and result backend."""
    from tests.redis_server import temporary_redis

    with temporary_redis() as server:
        yield server.url


def _create_database(admin_url: str, prefix: str, template: str | None = None) -> str:
    """A new database on the session's server (a copy of `template` if given); its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            copy = f' TEMPLATE "{template}"' if template else ""
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
    finally:
        admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def _drop_database(admin_url: str, url: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{sa.make_url(url).database}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, migrated database on the session's PostgreSQL server, whatever the backend."""
    url = _create_database(postgres_admin_url, "recordings")
    upgrade_database(url)
    yield url
    _drop_database(postgres_admin_url, url)


def _dagster_postgres_url(url: str) -> str:
    # The driver is named, as in production's instance file: SQLAlchemy 2.1 maps a bare
    # postgresql:// to psycopg 3, with which dagster-postgres cannot write events (its
    # `NOTIFY run_events, %(id)s` is refused); it is written for psycopg2.
    return (
        sa.make_url(url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def dagster_postgres_template(postgres_admin_url: str) -> str:
    """A database holding Dagster's empty tables, copied for each test's instance: copying
    takes a tenth of the time dagster-postgres takes to create them."""
    url = _create_database(postgres_admin_url, "dagster_template")
    storage = {"storage": {"postgres": {"postgres_url": _dagster_postgres_url(url)}}}
    with dg.instance_for_test(overrides=storage) as instance:
        instance.get_runs(limit=1)
    name = sa.make_url(url).database
    assert name is not None
    return name


@pytest.fixture
def dagster_storage(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The `storage` section of this test's Dagster instances: none on SQLite (Dagster's
    default, SQLite files in the instance folder), a fresh PostgreSQL database on PostgreSQL.
    A test's instances (in-process, the CLI's, uvicorn's) all share it, like a deployment."""
    if BACKEND == "sqlite":
        yield {}
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    template = request.getfixturevalue("dagster_postgres_template")
    url = _create_database(admin_url, "dagster", template=template)
    yield {"storage": {"postgres": {"postgres_url": _dagster_postgres_url(url)}}}
    _drop_database(admin_url, url)


def write_dagster_yaml(folder: Path, storage: dict[str, Any]) -> Path:
    """The repository's dagster.yaml (queued runs, run retries) plus this run's storage."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dagster.yaml"
    path.write_text(yaml.safe_dump({**REPO_DAGSTER_CONFIG, **storage}, sort_keys=False))
    return path


@pytest.fixture
def dagster_home(tmp_path: Path, dagster_storage: dict[str, Any]) -> Path:
    """A DAGSTER_HOME holding the repository's dagster.yaml with this run's storage, for the
    processes a test starts (uvicorn) or instances loaded from configuration."""
    home = tmp_path / "dagster"
    write_dagster_yaml(home, dagster_storage)
    return home


@pytest.fixture
def dagster_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Instance settings for `dagster_instance` on top of Dagster's test defaults (runs launched
    in-process, no run retries). Tests marked `run_retries`, which retry failed runs the way the
    daemon does, get run retries turned on (two), as the repository's dagster.yaml has them."""
    if request.node.get_closest_marker("run_retries"):
        return {"run_retries": {"enabled": True, "max_retries": 2}}
    return {}


@pytest.fixture
def dagster_instance(
    tmp_path: Path, dagster_storage: dict[str, Any], dagster_overrides: dict[str, Any]
) -> Iterator[dg.DagsterInstance]:
    """The test's in-process Dagster instance, on this run's storage (DAGSTER_HOME points at its
    folder while the test runs). On SQLite its storage is its own folder's; on PostgreSQL it is
    the test's Dagster database, shared with `dagster_home` and the CLI's project instance."""
    folder = tmp_path / "dagster_instance"
    folder.mkdir()
    with dg.instance_for_test(
        temp_dir=str(folder), overrides={**dagster_overrides, **dagster_storage}
    ) as instance:
        yield instance
