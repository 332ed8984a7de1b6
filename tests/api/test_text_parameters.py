"""A NUL byte, which SQLite stores but PostgreSQL text cannot hold, is never a 5xx (found by
fuzzing on PostgreSQL): in the path or a query parameter it is a 400 before any handler runs,
and in a token's subject it is stored visibly replaced in the audit log."""

from collections.abc import Callable, Iterator

import dagster as dg
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from recordings.db.engine import session_scope
from recordings.db.models import DownloadAuditEntry
from recordings.tokens import HOST_PERMISSION, READ_PERMISSION, mint_development_token
from recordings_api.app import create_app
from recordings_api.settings import ApiSettings
from tests.api.conftest import JWT_SECRET

pytestmark = pytest.mark.integration

TENANT_AUDIT = "/api/v1/daily-conversation-audio-recordings/audit"
HOST_AUDIT = "/api/v1/host/daily-conversation-audio-recordings/audit"
HOST_SETTINGS = "/api/v1/host/tenants/{}/daily-conversation-audio-recordings/settings"


def _auth(tenant: str | None, permission: str) -> dict[str, str]:
    token = mint_development_token(
        JWT_SECRET, subject="nul-client", tenant_id=tenant, permissions=[permission]
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(
    api_settings: Callable[..., ApiSettings], dagster_instance: dg.DagsterInstance
) -> Iterator[TestClient]:
    app = create_app(api_settings(), dagster_instance)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("path", "params", "host"),
    [
        (TENANT_AUDIT, {"outcome": "granted\x00"}, False),
        (HOST_AUDIT, {"outcome": "granted\x00"}, True),
        (HOST_AUDIT, {"tenantId": "acme\x00"}, True),
        (HOST_SETTINGS.format("ac%00me"), {}, True),
    ],
    ids=["tenant-audit-outcome", "host-audit-outcome", "host-audit-tenant", "host-settings-path"],
)
def test_a_nul_byte_in_a_parameter_is_not_a_server_error(
    client: TestClient,
    path: str,
    params: dict[str, str],
    host: bool,
) -> None:
    headers = _auth(None, HOST_PERMISSION) if host else _auth("acme", READ_PERMISSION)
    response = client.get(path, params=params, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_request"


@pytest.mark.parametrize("token", [True, False], ids=["with-token", "without-token"])
def test_a_nul_byte_is_refused_before_authentication_and_never_audited(
    client: TestClient, engine: sa.Engine, token: bool
) -> None:
    headers = _auth("acme", READ_PERMISSION) if token else {}
    response = client.get(
        "/api/v1/daily-conversation-audio-recordings",
        params={"utcDay": "2025-01-01\x00"},
        headers=headers,
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_request"
    with session_scope(engine) as session:
        assert session.scalars(sa.select(DownloadAuditEntry)).all() == []


def test_a_nul_byte_in_the_token_subject_is_audited_visibly(
    client: TestClient, engine: sa.Engine
) -> None:
    token = mint_development_token(
        JWT_SECRET, subject="nul\x00client", tenant_id="acme", permissions=[READ_PERMISSION]
    )
    response = client.get(
        "/api/v1/daily-conversation-audio-recordings",
        params={"utcDay": "2025-01-01"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 403  # acme is not enabled here: refused, and audited
    with session_scope(engine) as session:
        subjects = session.scalars(sa.select(DownloadAuditEntry.client_subject)).all()
    assert subjects == ["nul\ufffdclient"]
