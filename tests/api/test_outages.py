"""A backing service that is down is a 503 with a JSON error that says which one, never a
stack trace; /health/ready names it too."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
from litestar.testing import TestClient

from recordings.tokens import READ_PERMISSION, mint_development_token
from recordings_api.app import create_app
from recordings_api.settings import ApiSettings
from recordings_cli.local_api import free_port
from tests.api.conftest import JWT_SECRET
from tests.support import DAY

pytestmark = [pytest.mark.integration, pytest.mark.resilience]


def test_an_unreachable_database_is_a_503_that_says_so(
    api_settings: Callable[..., ApiSettings],
    dagster_instance: dg.DagsterInstance,
    database_backend: str,
    tmp_path: Path,
) -> None:
    if database_backend == "sqlite":
        unreachable = f"sqlite:///{tmp_path / 'missing-folder' / 'recordings.db'}"
    else:  # a loopback port nothing listens on
        unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/recordings"
    token = mint_development_token(
        JWT_SECRET, subject="c", tenant_id="acme", permissions=[READ_PERMISSION]
    )
    app = create_app(api_settings(database_url=unreachable), dagster_instance)
    with TestClient(app) as client:
        response = client.get(
            "/api/v1/daily-conversation-audio-recordings",
            params={"utcDay": DAY.isoformat()},
            headers={"Authorization": f"Bearer {token}"},
        )
        ready = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["retry-after"] == "30"
    assert "Traceback" not in response.text
    assert not [leak for leak in ("sqlite", "postgres", "psycopg") if leak in response.text.lower()]
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unreachable")


def test_a_refusal_whose_audit_entry_cannot_be_written_is_a_503(
    api_settings: Callable[..., ApiSettings],
    dagster_instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    """Every links request is audited, refusals included: with the database down, a request
    without a token is answered as the outage, never as an unrecorded 401."""
    unreachable = f"sqlite:///{tmp_path / 'missing-folder' / 'recordings.db'}"
    app = create_app(api_settings(database_url=unreachable), dagster_instance)
    with TestClient(app) as client:
        response = client.get(
            "/api/v1/daily-conversation-audio-recordings", params={"utcDay": DAY.isoformat()}
        )
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["retry-after"] == "30"
