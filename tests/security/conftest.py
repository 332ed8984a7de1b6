"""One archived world for the hostile-input tests: three tenants whose day was archived by the
real nightly job into a real Dagster instance, real S3 and a real database.

Archiving takes the real job a while, so it is done once per test session; each test then gets
its own copy of the application database (a file copy on SQLite, a template copy on
PostgreSQL), so audit rows and download counts never leak from one test into another.
"""

import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import jwt
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from recordings.catalog import ensure_tenant, register_recording, set_recording_settings
from recordings.db.engine import create_db_engine, session_scope
from recordings.db.migrate import upgrade_database
from recordings.db.models import DownloadAuditEntry
from recordings.keys import day_hours, source_key
from recordings.links import DownloadLink, LinkSigner
from recordings.settings import S3Settings
from recordings.storage import S3Connection, ensure_bucket
from recordings.tokens import (
    HOST_PERMISSION,
    READ_PERMISSION,
    TokenSettings,
    mint_development_token,
)
from recordings_api.app import create_app
from recordings_api.settings import ApiSettings
from recordings_cli.synth import FORMATS, write_conversation
from recordings_dagster.execution import run_request_job
from recordings_dagster.schedules import nightly_run_requests
from tests.api.conftest import JWT_SECRET
from tests.api.conftest import api_settings as api_settings  # the API tests' fixture, shared
from tests.conftest import BACKEND, _create_database, _dagster_postgres_url, _drop_database

LINKS = "/api/v1/daily-conversation-audio-recordings"
DOWNLOADS = f"{LINKS}/downloads"
TENANT_AUDIT = f"{LINKS}/audit"
HOST_AUDIT = "/api/v1/host/daily-conversation-audio-recordings/audit"
TENANTS = ("acme", "globex", "initech")
RECORDED_HOUR = {"acme": 5, "globex": 6, "initech": 7}  # each tenant's hour with a recording
DOWNLOAD_LIMIT = 3


@dataclass(frozen=True)
class ArchivedWorld:
    """Every tenant's day archived (24 hours each); `database` is the template to copy."""

    instance: dg.DagsterInstance
    day: date
    database: str  # SQLite: the file's path; PostgreSQL: the template database's name
    s3: S3Settings


@pytest.fixture(scope="session")
def archived_world(
    tmp_path_factory: pytest.TempPathFactory,
    s3_connection: S3Connection,
    request: pytest.FixtureRequest,
) -> Iterator[ArchivedWorld]:
    folder = tmp_path_factory.mktemp("security-world")
    client = s3_connection.client()
    suffix = secrets.token_hex(4)
    s3 = S3Settings(
        endpoint=s3_connection.endpoint,
        access_key=s3_connection.access_key,
        secret_key=s3_connection.secret_key,
        region=s3_connection.region,
        archive_bucket=f"sec-arc-{suffix}",
        source_bucket=f"sec-src-{suffix}",
    )
    ensure_bucket(client, s3.archive_bucket)
    ensure_bucket(client, s3.source_bucket)
    dropped: list[str] = []
    if BACKEND == "sqlite":
        database = str(folder / "template.db")
        url = f"sqlite:///{database}"
        storage: dict[str, object] = {}
    else:
        admin = request.getfixturevalue("postgres_admin_url")
        url = _create_database(admin, "security_template")
        dagster_url = _create_database(
            admin, "security_dagster", template=request.getfixturevalue("dagster_postgres_template")
        )
        dropped += [url, dagster_url]
        database = str(sa.make_url(url).database)
        storage = {"storage": {"postgres": {"postgres_url": _dagster_postgres_url(dagster_url)}}}
    upgrade_database(url)
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    wav = folder / "call.wav"
    write_conversation(wav, FORMATS["wav-ulaw"], 2.0, 8000, 1, seed=11)
    engine = create_db_engine(url)
    with session_scope(engine) as session:
        for tenant in TENANTS:
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="test", enabled=True)
            key = source_key(tenant, f"{tenant}-c1", f"{tenant}-s1", f"{tenant}-r1", "wav")
            client.fput_object(s3.source_bucket, key, str(wav))
            register_recording(
                session,
                tenant_id=tenant,
                conversation_id=f"{tenant}-c1",
                session_id=f"{tenant}-s1",
                recording_id=f"{tenant}-r1",
                bucket=s3.source_bucket,
                object_key=key,
                started_at=day_hours(day)[RECORDED_HOUR[tenant]] + timedelta(minutes=2),
                duration_seconds=2.0,
                audio_format="WAV",
                channels=1,
            )
    engine.dispose()
    env = {
        "RECORDINGS_DATABASE_URL": url,
        "RECORDINGS_S3_ENDPOINT": s3.endpoint,
        "RECORDINGS_S3_ACCESS_KEY": s3.access_key,
        "RECORDINGS_S3_SECRET_KEY": s3.secret_key,
        "RECORDINGS_SOURCE_BUCKET": s3.source_bucket,
        "RECORDINGS_ARCHIVE_BUCKET": s3.archive_bucket,
    }
    instance_folder = folder / "dagster"
    instance_folder.mkdir()
    with (
        pytest.MonkeyPatch.context() as patch,
        dg.instance_for_test(
            temp_dir=str(instance_folder), overrides=storage, set_dagster_home=False
        ) as instance,
    ):
        for name, value in env.items():
            patch.setenv(name, value)
        for run_request in nightly_run_requests(instance, TENANTS, day):
            with dg.execute_job(
                run_request_job(run_request),
                instance=instance,
                tags=run_request.tags,
            ) as result:
                assert result.success
        patch.undo()
        yield ArchivedWorld(instance, day, database, s3)
    for dropped_url in dropped:
        _drop_database(request.getfixturevalue("postgres_admin_url"), dropped_url)


@pytest.fixture
def world_database_url(
    archived_world: ArchivedWorld, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A private copy of the archived world's application database for one test."""
    if BACKEND == "sqlite":
        copy = tmp_path / "security.db"
        shutil.copyfile(archived_world.database, copy)
        yield f"sqlite:///{copy}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    url = _create_database(admin, "security", template=archived_world.database)
    yield url
    _drop_database(admin, url)


@pytest.fixture
def world_engine(world_database_url: str) -> Iterator[sa.Engine]:
    engine = create_db_engine(world_database_url)
    yield engine
    engine.dispose()


class ClockedLinkSigner(LinkSigner):
    """The real signer, verifying at a clock the test moves forward (links live 24 hours, and
    no test may wait for one to expire)."""

    def __init__(self) -> None:
        super().__init__({"k1": secrets.token_bytes(32)}, "k1")
        self.ahead = timedelta(0)

    def verify(self, token: str, *, now: datetime | None = None) -> DownloadLink:
        return super().verify(token, now=(now or datetime.now(UTC)) + self.ahead)


@pytest.fixture
def world_settings(archived_world: ArchivedWorld, world_database_url: str) -> ApiSettings:
    return ApiSettings(
        database_url=world_database_url,
        s3=archived_world.s3,
        s3_public_endpoint=archived_world.s3.endpoint,
        tokens=TokenSettings(algorithm="HS256", key=JWT_SECRET),
        link_signer=ClockedLinkSigner(),
        public_base_url="http://testserver",
        download_limit=DOWNLOAD_LIMIT,
    )


@pytest.fixture
def world_client(
    archived_world: ArchivedWorld, world_settings: ApiSettings, world_engine: sa.Engine
) -> Iterator[TestClient]:
    app = create_app(world_settings, archived_world.instance)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def token(tenant: object = "acme", permissions: list[str] | None = None, **claims: object) -> str:
    """A validly signed tenant token; `tenant` may be any JSON value (or None: no claim)."""
    now = datetime.now(UTC)
    body: dict[str, object] = {
        "sub": f"client-of-{tenant}",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
        "permissions": [READ_PERMISSION] if permissions is None else permissions,
        **claims,
    }
    if tenant is not None:
        body["tenant_id"] = tenant
    return jwt.encode(body, JWT_SECRET, algorithm="HS256")


def bearer(tenant: object = "acme", **claims: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(tenant, None, **claims)}"}


def host_bearer() -> dict[str, str]:
    value = mint_development_token(
        JWT_SECRET, subject="host-operator", tenant_id=None, permissions=[HOST_PERMISSION]
    )
    return {"Authorization": f"Bearer {value}"}


def day_links(client: TestClient, day: date, tenant: str) -> list[dict[str, object]]:
    response = client.get(LINKS, params={"utcDay": day.isoformat()}, headers=bearer(tenant))
    assert response.status_code == 200, response.text
    return response.json()["hours"]


def link_path(url: object) -> str:
    return str(url).removeprefix("http://testserver")


def download(
    client: TestClient, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return client.get(path, headers=headers or {}, follow_redirects=False)


@dataclass(frozen=True)
class AuditRow:
    id: int
    action: str
    tenant_id: str | None
    client_subject: str | None
    outcome: str
    status_code: int
    object_key: str | None


def audit_rows(engine: sa.Engine) -> list[AuditRow]:
    with session_scope(engine) as session:
        return [
            AuditRow(
                r.id,
                r.action,
                r.tenant_id,
                r.client_subject,
                r.outcome,
                r.status_code,
                r.object_key,
            )
            for r in session.scalars(sa.select(DownloadAuditEntry).order_by(DownloadAuditEntry.id))
        ]
