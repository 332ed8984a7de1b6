"""Host administration: only a host token may read or change a tenant's settings; bad values
get a 400 that says what is allowed, and every change is recorded with who made it."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import dagster as dg
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import session_scope
from recordings.db.models import ArchiveDeletion, TenantRecordingSettingsChange
from recordings.tokens import (
    HOST_PERMISSION,
    READ_PERMISSION,
    mint_development_token,
)
from recordings_api.app import create_app
from recordings_api.settings import ApiSettings
from tests.api.conftest import JWT_SECRET

pytestmark = pytest.mark.integration

PATH = "/api/v1/host/tenants/{}/daily-conversation-audio-recordings/settings"


def _auth(permission: str, subject: str = "host-admin") -> dict[str, str]:
    token = mint_development_token(
        JWT_SECRET, subject=subject, tenant_id=None, permissions=[permission]
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(
    api_settings: Callable[..., ApiSettings],
    dagster_instance: dg.DagsterInstance,
    engine: sa.Engine,
) -> Iterator[TestClient]:
    with session_scope(engine) as session:
        ensure_tenant(session, "acme")
        set_recording_settings(session, "acme", changed_by="seed", enabled=True, retention_days=7)
    settings = api_settings()
    with TestClient(create_app(settings, dagster_instance)) as test:
        yield test


def test_the_host_reads_and_changes_settings_and_the_change_is_recorded(
    client: TestClient, engine: sa.Engine
) -> None:
    response = client.get(PATH.format("acme"), headers=_auth(HOST_PERMISSION))
    assert response.status_code == 200
    assert response.json()["retentionDays"] == 7
    response = client.put(
        PATH.format("acme"),
        json={"enabled": False, "retentionDays": 3},
        headers=_auth(HOST_PERMISSION, "alice"),
    )
    assert response.status_code == 200, response.text
    assert response.json() | {"updatedAt": None} == {
        "tenantId": "acme",
        "enabled": False,
        "retentionDays": 3,
        "legalHold": False,
        "updatedBy": "alice",
        "updatedAt": None,
    }
    with session_scope(engine) as session:
        last = session.scalars(
            sa.select(TenantRecordingSettingsChange).order_by(
                TenantRecordingSettingsChange.id.desc()
            )
        ).first()
        assert last is not None
        assert (last.changed_by, last.retention_days_before, last.retention_days_after) == (
            "alice",
            7,
            3,
        )


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"retentionDays": 8}, "invalid_settings", "choose 1 to 7 days"),
        ({"retentionDays": 0}, "invalid_settings", "choose 1 to 7 days"),
        ({}, "invalid_settings", "at least one of enabled, retentionDays, legalHold"),
        ({"retention": 3}, "invalid_request", "retention"),
        ({"enabled": "yes"}, "invalid_request", "enabled"),
    ],
)
def test_bad_settings_are_400_and_change_nothing(
    client: TestClient, body: dict[str, object], code: str, message: str
) -> None:
    response = client.put(PATH.format("acme"), json=body, headers=_auth(HOST_PERMISSION))
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert message in response.json()["detail"]
    after = client.get(PATH.format("acme"), headers=_auth(HOST_PERMISSION)).json()
    assert (after["enabled"], after["retentionDays"]) == (True, 7)


def test_tenant_tokens_and_missing_tokens_cannot_administer(client: TestClient) -> None:
    assert client.get(PATH.format("acme")).status_code == 401
    tenant = client.put(
        PATH.format("acme"), json={"retentionDays": 1}, headers=_auth(READ_PERMISSION)
    )
    assert tenant.status_code == 403
    assert tenant.json()["code"] == "permission_missing"
    unknown = client.get(PATH.format("ghost"), headers=_auth(HOST_PERMISSION))
    assert unknown.status_code == 404


def test_the_host_lists_tenants_and_reads_a_tenants_settings_history(client: TestClient) -> None:
    host = _auth(HOST_PERMISSION, subject="ops-alice")
    client.put(PATH.format("acme"), json={"retentionDays": 3}, headers=host)
    client.put(PATH.format("acme"), json={"enabled": False}, headers=host)
    listed = client.get("/api/v1/host/daily-conversation-audio-recordings/settings", headers=host)
    assert listed.status_code == 200
    assert [t["tenantId"] for t in listed.json()["tenants"]] == ["acme"]
    history = client.get(PATH.format("acme") + "/changes", headers=host)
    assert history.status_code == 200
    changes = history.json()["changes"]
    assert [(c["changedBy"], c.get("enabledBefore"), c["enabledAfter"]) for c in changes] == [
        ("ops-alice", True, False),
        ("ops-alice", True, True),
        ("seed", None, True),
    ]
    assert (changes[1]["retentionDaysBefore"], changes[1]["retentionDaysAfter"]) == (7, 3)
    assert client.get(PATH.format("nobody") + "/changes", headers=host).status_code == 404
    tenant = _auth(READ_PERMISSION)
    assert client.get(PATH.format("acme") + "/changes", headers=tenant).status_code == 403


def test_a_legal_hold_is_set_by_the_host_and_recorded(client: TestClient) -> None:
    host = _auth(HOST_PERMISSION, subject="counsel")
    response = client.put(PATH.format("acme"), json={"legalHold": True}, headers=host)
    assert response.status_code == 200, response.text
    assert response.json()["legalHold"] is True
    assert client.get(PATH.format("acme"), headers=host).json()["legalHold"] is True
    latest = client.get(PATH.format("acme") + "/changes", headers=host).json()["changes"][0]
    assert (latest["changedBy"], latest["legalHoldBefore"], latest["legalHoldAfter"]) == (
        "counsel",
        False,
        True,
    )
    bad = client.put(PATH.format("acme"), json={"legalHold": "yes"}, headers=host)
    assert bad.status_code == 400
    assert client.get(PATH.format("acme"), headers=host).json()["legalHold"] is True


def test_the_host_reads_the_deletion_evidence(client: TestClient, engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        for index in range(3):
            session.add(
                ArchiveDeletion(
                    tenant_id="acme" if index < 2 else "globex",
                    hour=datetime(2026, 3, 10 + index, 7, tzinfo=UTC),
                    object_key=f"tenants/x/{index}.zip",
                    sha256=f"{index:02d}" * 32,
                    size_bytes=10,
                    retention_days=3,
                    state="deleted",
                    deleted_at=datetime(2026, 3, 20, tzinfo=UTC),
                    run_id="run-9",
                )
            )
    host = _auth(HOST_PERMISSION)
    url = "/api/v1/host/daily-conversation-audio-recordings/deletions"
    page = client.get(url, params={"limit": 2}, headers=host).json()
    assert [d["hour"] for d in page["deletions"]] == [
        "2026-03-12T07:00:00Z",
        "2026-03-11T07:00:00Z",
    ]
    rest = client.get(url, params={"cursor": page["nextCursor"]}, headers=host).json()
    assert [d["tenantId"] for d in rest["deletions"]] == ["acme"]
    only = client.get(url, params={"tenantId": "globex"}, headers=host).json()["deletions"]
    assert [(d["sha256"], d["retentionDays"], d["runId"]) for d in only] == [
        ("02" * 32, 3, "run-9")
    ]
    assert client.get(url, headers=_auth(READ_PERMISSION)).status_code == 403
