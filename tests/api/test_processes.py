"""The API as it is deployed: several uvicorn processes sharing one database.

50 download requests arrive at once, split over two API processes, for one tenant whose limit
is 10 an hour: exactly 10 are redirected, 40 get 429 with Retry-After, and all 50 are in the
audit log. On SQLite and on PostgreSQL (the PostgreSQL run only repeats the PostgreSQL case, with
the Dagster instance on PostgreSQL too, as deployed).
"""

import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from minio import Minio

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import create_db_engine, session_scope
from recordings.db.models import DownloadAuditEntry
from recordings.keys import archive_key, day_hours
from recordings.links import LinkSigner, parse_link_keys
from recordings_cli.local_api import LocalApiServer, free_port
from tests.api.conftest import JWT_SECRET
from tests.support import DAY

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.resilience]

LINK_KEYS = "k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="  # 32 bytes, test only


@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.sqlite_run_only), "postgresql"])
def shared_database(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


@pytest.fixture
def two_api_processes(
    recordings_env: dict[str, str], shared_database: str, dagster_home: Path, tmp_path: Path
) -> Iterator[list[LocalApiServer]]:
    env = {
        **recordings_env,
        "RECORDINGS_DATABASE_URL": shared_database,
        "RECORDINGS_JWT_DEV_SECRET": JWT_SECRET,
        "RECORDINGS_LINK_KEYS": LINK_KEYS,
        "DAGSTER_HOME": str(dagster_home),
    }
    servers = [
        LocalApiServer(port=free_port(), env=env, log_path=tmp_path / f"api-{i}.log")
        for i in range(2)
    ]
    try:
        # One after the other: on SQLite the first creates the (empty) Dagster instance's tables.
        for server in servers:
            server.start()
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_fifty_simultaneous_downloads_over_two_processes_grant_exactly_ten(
    two_api_processes: list[LocalApiServer],
    shared_database: str,
    s3_client: Minio,
    recordings_env: dict[str, str],
) -> None:
    engine = create_db_engine(shared_database)
    with session_scope(engine) as session:
        ensure_tenant(session, "acme")
        set_recording_settings(session, "acme", changed_by="test", enabled=True)
    hour = day_hours(DAY)[0]
    s3_client.put_object(
        recordings_env["RECORDINGS_ARCHIVE_BUCKET"], archive_key("acme", hour), io.BytesIO(b"PK"), 2
    )
    link = LinkSigner(parse_link_keys(LINK_KEYS), "k1").sign(
        tenant_id="acme", hour=hour, expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    path = f"/api/v1/daily-conversation-audio-recordings/downloads/{link}"
    start = threading.Barrier(50)

    def attempt(i: int) -> httpx.Response:
        server = two_api_processes[i % 2]
        with httpx.Client(base_url=server.url, timeout=60) as client:
            start.wait()
            return client.get(path)

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(attempt, range(50)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [307] * 10 + [429] * 40, [r.text for r in responses if r.status_code >= 500]
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.json()["code"] == "rate_limited"
        assert 0 < int(refused.headers["retry-after"]) <= 3600
    # The limit is shared, not per process, and every attempt is evidence.
    with session_scope(engine) as session:
        outcomes = session.scalars(
            sa.select(DownloadAuditEntry.outcome).where(DownloadAuditEntry.action == "download")
        ).all()
    engine.dispose()
    assert sorted(outcomes) == ["granted"] * 10 + ["rate_limited"] * 40
