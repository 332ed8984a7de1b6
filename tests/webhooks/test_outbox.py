"""The webhook outbox's database work without Dagster, on the real database: the claim that
keeps two evaluations from making the same attempt. The sensors that call it are tested with a
real Dagster instance in tests/dagster/test_webhooks.py."""

import secrets
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import session_scope
from recordings.db.models import WebhookEndpoint
from recordings.webhooks.events import new_event
from recordings.webhooks.outbox import claim_event
from recordings.webhooks.signing import new_salt

pytestmark = pytest.mark.integration

KEY = secrets.token_bytes(32)


def _tenant_with_endpoint(engine: sa.Engine, tenant: str, url: str) -> None:
    with session_scope(engine) as session:
        ensure_tenant(session, tenant)
        set_recording_settings(session, tenant, changed_by="test", enabled=True, retention_days=7)
        session.add(
            WebhookEndpoint(
                tenant_id=tenant, url=url, secret_salt=new_salt(), created_by="t", updated_by="t"
            )
        )


def _queue(engine: sa.Engine, tenant: str) -> str:
    with session_scope(engine) as session:
        event = new_event(
            session,
            tenant,
            "day.ready",
            {"tenantId": tenant, "utcDay": "2026-12-01"},
            dedup_key=f"day.ready/{tenant}/2026-12-01",
            now=datetime.now(UTC),
        )
        assert event is not None
        return event.id


def test_an_event_is_claimed_by_one_evaluation_only(engine: sa.Engine) -> None:
    _tenant_with_endpoint(engine, "acme", "https://hooks.acme.example/recordings")
    event_id = _queue(engine, "acme")
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        assert not isinstance(claim_event(session, event_id, KEY, now), str)
    with session_scope(engine) as session:
        assert claim_event(session, event_id, KEY, now) == "taken"
