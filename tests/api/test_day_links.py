"""The download API end to end: real pipeline output, real S3, real database, Litestar's client.

A tenant-day is archived by the real job into a temporary Dagster instance; the API then lists
its links and serves downloads, with every refusal checked for its status and stable code.
"""

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from minio import Minio

from recordings.audio.synth import FORMATS, write_conversation
from recordings.catalog import ensure_tenant, register_recording, set_recording_settings
from recordings.db.engine import session_scope
from recordings.db.models import DownloadAuditEntry
from recordings.keys import day_hours
from recordings.settings import S3Settings
from recordings.tokens import READ_PERMISSION, mint_development_token
from recordings_api.app import create_app
from recordings_api.settings import ApiSettings
from recordings_dagster.execution import hourly_archives_job_def
from recordings_dagster.schedules import nightly_run_requests
from tests.api.conftest import JWT_SECRET

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASE = "/api/v1/daily-conversation-audio-recordings"


def _token(tenant: str | None = "acme", permissions: list[str] | None = None) -> str:
    return mint_development_token(
        JWT_SECRET,
        subject="compliance-client",
        tenant_id=tenant,
        permissions=[READ_PERMISSION] if permissions is None else permissions,
    )


@pytest.fixture
def archived_day(
    tmp_path: Path, recordings_env: dict[str, str], engine: sa.Engine, s3_client: Minio
) -> Iterator[tuple[dg.DagsterInstance, date]]:
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    source = recordings_env["RECORDINGS_SOURCE_BUCKET"]
    with session_scope(engine) as session:
        for tenant in ("acme", "globex"):
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="test", enabled=True)
        wav = tmp_path / "call.wav"
        write_conversation(wav, FORMATS["wav-ulaw"], 3.0, 8000, 1, seed=1)
        s3_client.fput_object(source, "acme/call.wav", str(wav))
        register_recording(
            session,
            tenant_id="acme",
            conversation_id="c1",
            session_id="s1",
            recording_id="r1",
            bucket=source,
            object_key="acme/call.wav",
            started_at=day_hours(day)[5] + timedelta(minutes=3),
            duration_seconds=3.0,
            audio_format="WAV",
            channels=1,
        )
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        (request,) = nightly_run_requests(instance, ["acme"], day)
        with dg.execute_job(
            dg.reconstructable(hourly_archives_job_def), instance=instance, tags=request.tags
        ) as result:
            assert result.success
        yield instance, day


@pytest.fixture
def client(
    archived_day: tuple[dg.DagsterInstance, date], api_settings: Callable[..., ApiSettings]
) -> Iterator[TestClient]:
    with TestClient(app=create_app(api_settings(), archived_day[0])) as test_client:
        yield test_client


def _links(client: TestClient, day: date, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(BASE, params={"utcDay": day.isoformat()}, headers=headers)


def test_a_day_lists_24_hours_with_links_for_the_archived_ones(
    client: TestClient, archived_day: tuple[dg.DagsterInstance, date], s3_client: Minio
) -> None:
    day = archived_day[1]
    response = _links(client, day, _token())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tenantId"] == "acme" and body["utcDay"] == day.isoformat()
    assert len(body["hours"]) == 24
    assert {h["status"] for h in body["hours"]} == {"available"}
    hour5 = body["hours"][5]
    assert hour5["recordingCount"] == 1 and hour5["sizeBytes"] > 0 and len(hour5["sha256"]) == 64

    download = client.get(hour5["url"].removeprefix("http://testserver"), follow_redirects=False)
    assert download.status_code == 307
    archive = httpx.get(download.headers["location"])  # straight from S3, presigned
    assert archive.status_code == 200
    assert len(archive.content) == hour5["sizeBytes"]


def test_the_eleventh_download_in_an_hour_is_refused_with_retry_after(
    client: TestClient, archived_day: tuple[dg.DagsterInstance, date], engine: sa.Engine
) -> None:
    url = _links(client, archived_day[1], _token()).json()["hours"][0]["url"]
    path = url.removeprefix("http://testserver")
    codes = [client.get(path, follow_redirects=False).status_code for _ in range(11)]
    assert codes == [307] * 10 + [429]
    refused = client.get(path, follow_redirects=False)
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) > 0
    with session_scope(engine) as session:
        outcomes = session.scalars(
            sa.select(DownloadAuditEntry.outcome).where(DownloadAuditEntry.action == "download")
        ).all()
    assert outcomes.count("granted") == 10 and outcomes.count("rate_limited") == 2


@pytest.mark.parametrize(
    ("token", "day_offset", "status", "code"),
    [
        (None, 1, 401, "missing_token"),
        ("garbage", 1, 401, "malformed_token"),
        ("no-permission", 1, 403, "permission_missing"),
        ("no-tenant", 1, 403, "permission_missing"),
        ("disabled", 1, 403, "feature_disabled"),
        ("acme", 0, 400, "day_not_over"),
    ],
)
def test_refusals_have_their_status_and_code(
    client: TestClient,
    engine: sa.Engine,
    token: str | None,
    day_offset: int,
    status: int,
    code: str,
) -> None:
    tokens = {
        None: None,
        "garbage": "garbage",
        "no-permission": _token(permissions=[]),
        "no-tenant": _token(tenant=None),
        "disabled": _token(tenant="initech"),
        "acme": _token(),
    }
    with session_scope(engine) as session:
        ensure_tenant(session, "initech")
        set_recording_settings(session, "initech", changed_by="test", enabled=False)
    day = (datetime.now(UTC) - timedelta(days=day_offset)).date()
    response = _links(client, day, tokens[token])
    assert response.status_code == status
    assert response.json()["code"] == code
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_bad_days_are_400(client: TestClient) -> None:
    for value in ("2025-13-01", "yesterday", "2025-1-1"):
        response = client.get(
            BASE, params={"utcDay": value}, headers={"Authorization": f"Bearer {_token()}"}
        )
        assert response.status_code == 400, value
        assert response.json()["code"] == "invalid_day"


def test_a_tampered_or_foreign_link_is_401(
    client: TestClient, archived_day: tuple[dg.DagsterInstance, date]
) -> None:
    url = _links(client, archived_day[1], _token()).json()["hours"][3]["url"]
    path = url.removeprefix("http://testserver")
    payload, _, mac = path.rsplit("/", 1)[1].partition(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    edited = base64.urlsafe_b64encode(raw.replace(b'"acme"', b'"globex"')).rstrip(b"=").decode()
    response = client.get(f"{BASE}/downloads/{edited}.{mac}", follow_redirects=False)
    assert response.status_code == 401
    assert response.json()["code"] == "link_tampered"


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "s3": "ok", "dagster": "ok"}
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert BASE in paths or f"{BASE}/" in paths


def test_readiness_says_what_is_down(
    archived_day: tuple[dg.DagsterInstance, date], api_settings: Callable[..., ApiSettings]
) -> None:
    s3 = S3Settings.from_env()
    dead = S3Settings(
        endpoint="http://127.0.0.1:9",  # discard port: nothing listens
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        region=s3.region,
        archive_bucket=s3.archive_bucket,
        source_bucket=s3.source_bucket,
    )
    settings = api_settings(s3=dead, s3_public_endpoint=dead.endpoint)
    with TestClient(app=create_app(settings, archived_day[0])) as client:
        response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["checks"]["s3"].startswith("unreachable")
    assert body["checks"]["database"] == "ok"
