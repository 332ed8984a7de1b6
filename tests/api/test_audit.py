"""The audit log through the API: each tenant reads exactly its own entries, the host reads
everyone's (including requests that proved no tenant), filters and pages without gaps."""

import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from minio import Minio

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import session_scope
from recordings.keys import archive_key, day_hours
from recordings.tokens import HOST_PERMISSION, READ_PERMISSION, mint_development_token
from recordings_api.app import create_app
from recordings_api.settings import ApiSettings
from tests.api.conftest import JWT_SECRET
from tests.support import DAY

pytestmark = pytest.mark.integration

LINKS = "/api/v1/daily-conversation-audio-recordings"
TENANT_AUDIT = f"{LINKS}/audit"
HOST_AUDIT = "/api/v1/host/daily-conversation-audio-recordings/audit"


def _auth(tenant: str | None, permission: str = READ_PERMISSION) -> dict[str, str]:
    token = mint_development_token(
        JWT_SECRET, subject=f"client-of-{tenant}", tenant_id=tenant, permissions=[permission]
    )
    return {"Authorization": f"Bearer {token}"}


HOST = _auth(None, HOST_PERMISSION)


@pytest.fixture
def app_settings(api_settings: Callable[..., ApiSettings]) -> ApiSettings:
    return api_settings()


@pytest.fixture
def client(
    app_settings: ApiSettings,
    dagster_instance: dg.DagsterInstance,
    engine: sa.Engine,
    s3_client: Minio,
    recordings_env: dict[str, str],
) -> Iterator[TestClient]:
    """acme and globex enabled; one archive object per tenant at hour 0 of DAY (an empty
    Dagster instance: the listings say pending, the downloads still work by link)."""
    with session_scope(engine) as session:
        for tenant in ("acme", "globex"):
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="test", enabled=True)
    for tenant in ("acme", "globex"):
        s3_client.put_object(
            recordings_env["RECORDINGS_ARCHIVE_BUCKET"],
            archive_key(tenant, day_hours(DAY)[0]),
            io.BytesIO(b"PK"),
            2,
        )
    with TestClient(create_app(app_settings, dagster_instance)) as c:
        yield c


def _download(client: TestClient, settings: ApiSettings, tenant: str) -> httpx.Response:
    link = settings.link_signer.sign(
        tenant_id=tenant,
        hour=day_hours(DAY)[0],
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        issued_to=f"client-of-{tenant}",
    )
    return client.get(f"{LINKS}/downloads/{link}", follow_redirects=False)


def _traffic(client: TestClient, settings: ApiSettings) -> None:
    for tenant in ("acme", "globex"):
        assert client.get(
            LINKS, params={"utcDay": DAY.isoformat()}, headers=_auth(tenant)
        ).is_success
        assert _download(client, settings, tenant).status_code == 307
    assert client.get(LINKS, params={"utcDay": DAY.isoformat()}).status_code == 401
    assert client.get(f"{LINKS}/downloads/forged.link", follow_redirects=False).status_code == 401


def test_each_tenant_reads_only_its_own_entries(
    client: TestClient, app_settings: ApiSettings
) -> None:
    _traffic(client, app_settings)
    for tenant in ("acme", "globex"):
        response = client.get(TENANT_AUDIT, headers=_auth(tenant))
        assert response.status_code == 200, response.text
        entries = response.json()["entries"]
        assert [(e["action"], e["outcome"]) for e in entries] == [
            ("download", "granted"),
            ("list_links", "listed"),
        ]
        assert {e["tenantId"] for e in entries} == {tenant}
        assert {e["clientSubject"] for e in entries} == {f"client-of-{tenant}"}
        assert entries[0]["objectKey"] == archive_key(tenant, day_hours(DAY)[0])
        assert entries[1]["utcDay"] == DAY.isoformat()


def test_the_host_reads_everything_filters_and_pages_without_gaps(
    client: TestClient, app_settings: ApiSettings
) -> None:
    _traffic(client, app_settings)
    everything = client.get(HOST_AUDIT, headers=HOST).json()["entries"]
    assert len(everything) == 6
    assert sum(1 for e in everything if "tenantId" not in e) == 2  # proved no tenant
    only_acme = client.get(HOST_AUDIT, params={"tenantId": "acme"}, headers=HOST).json()
    assert {e["tenantId"] for e in only_acme["entries"]} == {"acme"}
    granted = client.get(
        HOST_AUDIT, params={"action": "download", "outcome": "granted"}, headers=HOST
    ).json()["entries"]
    assert sorted(e["tenantId"] for e in granted) == ["acme", "globex"]
    # Pages of two, newest first, cover every entry exactly once.
    seen: list[int] = []
    params: dict[str, str | int] = {"limit": 2}
    while True:
        page = client.get(HOST_AUDIT, params=params, headers=HOST).json()
        seen += [e["id"] for e in page["entries"]]
        if "nextCursor" not in page:
            break
        params["cursor"] = page["nextCursor"]
    assert seen == [e["id"] for e in everything] == sorted(seen, reverse=True)
    window = client.get(
        HOST_AUDIT,
        params={"since": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()},
        headers=HOST,
    )
    assert window.json()["entries"] == []


@pytest.mark.parametrize(
    ("path", "headers", "params", "status", "code"),
    [
        (TENANT_AUDIT, {}, {}, 401, "missing_token"),
        (TENANT_AUDIT, HOST, {}, 403, "permission_missing"),  # a host token names no tenant
        (HOST_AUDIT, _auth("acme"), {}, 403, "permission_missing"),
        (HOST_AUDIT, {}, {"cursor": "x"}, 401, "missing_token"),  # strangers learn nothing
        (HOST_AUDIT, {}, {"limit": 0}, 401, "missing_token"),  # not even the bounds
        (HOST_AUDIT, HOST, {"cursor": "x"}, 400, "invalid_cursor"),
        (HOST_AUDIT, HOST, {"limit": 0}, 400, "invalid_request"),
        (HOST_AUDIT, HOST, {"limit": 5000}, 400, "invalid_request"),
        (HOST_AUDIT, HOST, {"since": "yesterday"}, 400, "invalid_request"),
        (HOST_AUDIT, HOST, {"action": "delete"}, 400, "invalid_request"),
        (
            HOST_AUDIT,
            HOST,
            {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            400,
            "invalid_request",
        ),
    ],
)
def test_refusals(
    client: TestClient,
    path: str,
    headers: dict[str, str],
    params: dict[str, str | int],
    status: int,
    code: str,
) -> None:
    response = client.get(path, params=params, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
