"""The application database (PostgreSQL, as in production) goes down during a run and during
API requests, then comes back.

A run that has read its hours loses none of them to an outage; a run that starts during one
fails with a message that names the database and recovers on retry;
the API answers 503 with a JSON error naming no driver and no stack, `/health/ready` says the
database is down, and both recover without a restart once it is back.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from minio import Minio

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import create_db_engine, session_scope
from recordings.db.migrate import upgrade_database
from recordings.db.models import ArchiveHourLease
from recordings.keys import archive_partition_key, day_hours
from recordings.tokens import READ_PERMISSION, mint_development_token
from recordings_api.app import create_app
from recordings_api.settings import ApiSettings
from recordings_dagster.execution import run_failure_message
from tests.api.conftest import JWT_SECRET
from tests.postgres import PostgresServer
from tests.resilience.support import (
    assert_latest_evidence_matches_objects,
    materializations,
    range_tags,
    retry_like_the_daemon,
    run_id_of,
    seed_hours,
    start_run_process,
    wait_for,
)
from tests.support import DAY

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.resilience,
    pytest.mark.sqlite_run_only,  # brings its own PostgreSQL server, whatever the backend
    pytest.mark.run_retries,
]


@pytest.fixture
def app_database(
    monkeypatch: pytest.MonkeyPatch, recordings_env: dict[str, str]
) -> Iterator[tuple[PostgresServer, str]]:
    """A PostgreSQL server of this test's own holding the application database (migrated),
    with RECORDINGS_DATABASE_URL pointed at it."""
    server = PostgresServer()
    server.start()
    admin = create_db_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql("CREATE DATABASE recordings")
    admin.dispose()
    url = server.admin_url.rsplit("/", 1)[0] + "/recordings"
    upgrade_database(url)
    monkeypatch.setenv("RECORDINGS_DATABASE_URL", url)
    try:
        yield server, url
    finally:
        server.remove()


def test_a_database_outage_mid_run_costs_no_hour_and_a_run_started_in_it_fails_clearly(
    dagster_instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    app_database: tuple[PostgresServer, str],
    s3_client: Minio,
    tmp_path: Path,
) -> None:
    """A run reads what it needs from the database up front (its hours' leases and
    recordings, in bulk): once it has, an outage costs it nothing but the leases it cannot
    give back, which the next run of those hours takes over. A run that starts while the
    database is down archives nothing and says why; its retry recovers."""
    server, url = app_database
    engine = create_db_engine(url)
    seed_hours(
        engine, s3_client, recordings_env["RECORDINGS_SOURCE_BUCKET"], tmp_path, tenant="acme",
        day=DAY, hours=range(24), per_hour=2, seconds=60.0, sample_rate=16000,
    )  # fmt: skip
    engine.dispose()
    partitions = [archive_partition_key("acme", hour) for hour in day_hours(DAY)]

    worker = start_run_process(
        dagster_instance, range_tags(dagster_instance, "acme", DAY), tmp_path, "nightly"
    )
    first_run = run_id_of(worker[1])
    wait_for(
        lambda: len(materializations(dagster_instance, [first_run])) >= 2,
        300,
        "two archived hours",
        worker,
    )
    server.stop()
    assert worker[0].wait(timeout=600) == 0, worker[1].read_text()
    assert sorted(materializations(dagster_instance, [first_run])) == sorted(partitions)
    assert "could not release 24 hour leases" in worker[1].read_text()

    # A run of the day started while the database is still down fails at once, saying so.
    still_down = start_run_process(
        dagster_instance, range_tags(dagster_instance, "acme", DAY), tmp_path, "rerun"
    )
    assert still_down[0].wait(timeout=600) == 1, still_down[1].read_text()
    rerun = run_id_of(still_down[1])
    message = run_failure_message(dagster_instance, rerun) or ""
    assert message.startswith("no hour was archived: the application database is unreachable")
    assert "RECORDINGS_DATABASE_URL" in message
    assert not materializations(dagster_instance, [rerun])

    server.start()
    recovered = retry_like_the_daemon(dagster_instance, rerun)
    assert recovered.status == dg.DagsterRunStatus.SUCCESS
    assert sorted(materializations(dagster_instance, [recovered.run_id])) == sorted(partitions)
    every = materializations(dagster_instance)
    assert all(len(records) == 2 for records in every.values()), "the first run, the re-run"
    assert_latest_evidence_matches_objects(
        dagster_instance, s3_client, recordings_env["RECORDINGS_ARCHIVE_BUCKET"], partitions,
        tmp_path,
    )  # fmt: skip
    engine = create_db_engine(url)
    with engine.connect() as connection:
        leases = connection.execute(sa.select(sa.func.count()).select_from(ArchiveHourLease))
        assert leases.scalar() == 0, "the first run's leases were taken over and released"
    engine.dispose()


def test_the_api_answers_503_while_the_database_is_down_and_recovers_after(
    api_settings: Callable[..., ApiSettings],
    dagster_instance: dg.DagsterInstance,
    app_database: tuple[PostgresServer, str],
) -> None:
    server, url = app_database
    engine = create_db_engine(url)
    with session_scope(engine) as session:
        ensure_tenant(session, "acme")
        set_recording_settings(session, "acme", changed_by="test", enabled=True)
    engine.dispose()
    token = mint_development_token(
        JWT_SECRET, subject="c", tenant_id="acme", permissions=[READ_PERMISSION]
    )
    headers = {"Authorization": f"Bearer {token}"}
    params = {"utcDay": DAY.isoformat()}
    path = "/api/v1/daily-conversation-audio-recordings"
    with TestClient(create_app(api_settings(database_url=url), dagster_instance)) as client:
        assert client.get(path, params=params, headers=headers).status_code == 200
        assert client.get("/health/ready").status_code == 200

        server.stop()
        down = client.get(path, params=params, headers=headers)
        ready = client.get("/health/ready")
        assert down.status_code == 503
        assert down.headers["content-type"].startswith("application/json")
        assert down.json()["code"] == "database_unavailable"
        assert down.headers["retry-after"] == "30"
        assert "Traceback" not in down.text
        assert not [w for w in ("postgres", "psycopg", "sqlalchemy") if w in down.text.lower()]
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("unreachable")
        assert ready.json()["checks"]["s3"] == "ok"
        assert ready.json()["detail"] == "not ready: database unreachable"

        server.start()
        assert client.get(path, params=params, headers=headers).status_code == 200
        assert client.get("/health/ready").status_code == 200
