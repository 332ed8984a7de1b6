"""Tenants' webhooks through the API, on the real database: the secret shown once and derivable
only with the service's key, rotation with an overlap, the webhook permission, tenant
isolation, the host acting for a tenant, unsafe URLs refused with their codes and nothing
stored, and the outbox (test events, one at a time, cancellation, the deliveries listing,
dedup of events).

Names resolve through a fixed map (`RESOLVER`), so the checks of resolved addresses run without
DNS; IP literals are checked as the delivery checks them.
"""

import json
import secrets
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import session_scope
from recordings.db.models import WebhookAttempt, WebhookEndpoint, WebhookEvent
from recordings.tokens import (
    HOST_PERMISSION,
    READ_PERMISSION,
    WEBHOOK_PERMISSION,
    mint_development_token,
)
from recordings.webhooks.events import event_body, new_event, webhook_test_data
from recordings.webhooks.signing import derive_secret
from recordings_api.app import create_app
from recordings_api.settings import ApiSettings
from tests.api.conftest import JWT_SECRET

pytestmark = pytest.mark.integration

TENANT_PATH = "/api/v1/daily-conversation-audio-recordings/webhook"
HOST_PATH = "/api/v1/host/tenants/{}/daily-conversation-audio-recordings/webhook"
URL = "https://hooks.acme.example/recordings"
KEY = secrets.token_bytes(32)
ADDRESSES = {
    "hooks.acme.example": ["93.184.215.14"],
    "hooks.globex.example": ["93.184.215.15", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "inside.acme.example": ["93.184.215.14", "10.20.30.40"],  # one bad address is enough
    "metadata.acme.example": ["169.254.169.254"],
}


def resolve(host: str, port: int) -> list[str]:
    if host not in ADDRESSES:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return ADDRESSES[host]


def _auth(
    tenant: str | None = "acme", permissions: tuple[str, ...] = (WEBHOOK_PERMISSION,)
) -> dict[str, str]:
    token = mint_development_token(
        JWT_SECRET, subject=f"{tenant or 'host'}-admin", tenant_id=tenant, permissions=permissions
    )
    return {"Authorization": f"Bearer {token}"}


HOST = _auth(None, (HOST_PERMISSION,))


@pytest.fixture
def make_client(
    api_settings: Callable[..., ApiSettings],
    dagster_instance: dg.DagsterInstance,
    engine: sa.Engine,
) -> Iterator[Callable[..., TestClient]]:
    with session_scope(engine) as session:
        for tenant in ("acme", "globex"):
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="seed", enabled=True)
        ensure_tenant(session, "initech")  # the feature never enabled
    opened: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        values: dict[str, object] = {
            "webhook_key": KEY,
            "webhook_allow_loopback": False,
            "webhook_resolver": resolve,
        }
        settings = api_settings(**(values | overrides))
        client = TestClient(create_app(settings, dagster_instance))
        opened.append(client.__enter__())
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def _salts(engine: sa.Engine, tenant: str) -> tuple[bytes, bytes | None]:
    with session_scope(engine) as session:
        row = session.get(WebhookEndpoint, tenant)
        assert row is not None
        return row.secret_salt, row.previous_secret_salt


def test_the_secret_is_shown_once_and_is_the_derived_one(
    client: TestClient, engine: sa.Engine
) -> None:
    created = client.put(TENANT_PATH, json={"url": URL}, headers=_auth())
    assert created.status_code == 201, created.text
    body = created.json()
    salt, _ = _salts(engine, "acme")
    assert body["secret"] == derive_secret(KEY, salt)
    assert body["secret"].startswith("whsec_")
    assert body["url"] == URL and body["createdBy"] == body["updatedBy"] == "acme-admin"
    assert "day.ready" in body["eventTypes"]

    read = client.get(TENANT_PATH, headers=_auth())
    assert read.status_code == 200
    assert "secret" not in read.json() and body["secret"] not in read.text
    assert read.json() == {key: value for key, value in body.items() if key != "secret"}

    changed = client.put(TENANT_PATH, json={"url": URL + "/v2"}, headers=_auth())
    assert changed.status_code == 200, changed.text
    assert "secret" not in changed.json() and changed.json()["url"] == URL + "/v2"
    assert _salts(engine, "acme")[0] == salt  # the secret stays
    listing = client.get(f"{TENANT_PATH}/deliveries", headers=_auth())
    assert body["secret"] not in listing.text


def test_rotation_shows_a_new_secret_and_keeps_the_previous_one_for_a_day(
    client: TestClient, engine: sa.Engine
) -> None:
    first = client.put(TENANT_PATH, json={"url": URL}, headers=_auth()).json()["secret"]
    old_salt, _ = _salts(engine, "acme")
    rotated = client.post(f"{TENANT_PATH}/secret", headers=_auth())
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    new_salt, previous = _salts(engine, "acme")
    assert previous == old_salt and new_salt != old_salt
    assert body["secret"] == derive_secret(KEY, new_salt) != first
    rotated_at = datetime.fromisoformat(body["secretRotatedAt"])
    expires = datetime.fromisoformat(body["previousSecretExpiresAt"])
    assert expires - rotated_at == timedelta(hours=24)
    assert "secret" not in client.get(TENANT_PATH, headers=_auth()).json()


def test_the_read_permission_alone_manages_no_webhook(client: TestClient) -> None:
    reader = _auth(permissions=(READ_PERMISSION,))
    for method, path in [
        ("PUT", TENANT_PATH),
        ("GET", TENANT_PATH),
        ("DELETE", TENANT_PATH),
        ("POST", f"{TENANT_PATH}/secret"),
        ("POST", f"{TENANT_PATH}/test"),
        ("GET", f"{TENANT_PATH}/deliveries"),
    ]:
        response = client.request(method, path, json={"url": URL}, headers=reader)
        assert response.status_code == 403, f"{method} {path}"
        assert response.json()["code"] == "permission_missing"
        assert WEBHOOK_PERMISSION in response.json()["detail"]
    no_tenant = client.get(TENANT_PATH, headers=_auth(None))
    assert no_tenant.status_code == 403
    assert client.get(TENANT_PATH).status_code == 401


def test_a_tenant_never_sees_or_changes_another_tenants_webhook(
    client: TestClient, engine: sa.Engine
) -> None:
    acme = client.put(TENANT_PATH, json={"url": URL}, headers=_auth()).json()
    globex = _auth("globex")
    assert client.get(TENANT_PATH, headers=globex).json()["code"] == "webhook_not_registered"
    assert client.post(f"{TENANT_PATH}/secret", headers=globex).status_code == 404
    assert client.post(f"{TENANT_PATH}/test", headers=globex).status_code == 404
    assert client.delete(TENANT_PATH, headers=globex).status_code == 404
    client.post(f"{TENANT_PATH}/test", headers=_auth())
    assert client.get(f"{TENANT_PATH}/deliveries", headers=globex).json() == {"events": []}
    own = client.put(TENANT_PATH, json={"url": "https://hooks.globex.example/"}, headers=globex)
    assert own.status_code == 201 and own.json()["tenantId"] == "globex"
    assert own.json()["secret"] != acme["secret"]
    assert client.get(TENANT_PATH, headers=_auth()).json()["url"] == URL
    with session_scope(engine) as session:
        events = session.scalars(sa.select(WebhookEvent)).all()
        assert [event.tenant_id for event in events] == ["acme"]


def test_the_host_manages_a_tenants_webhook_on_its_behalf(
    client: TestClient, engine: sa.Engine
) -> None:
    path = HOST_PATH.format("acme")
    created = client.put(path, json={"url": URL}, headers=HOST)
    assert created.status_code == 201, created.text
    assert created.json()["createdBy"] == "host:host-admin"
    assert created.json()["secret"] == derive_secret(KEY, _salts(engine, "acme")[0])
    assert client.get(TENANT_PATH, headers=_auth()).json()["createdBy"] == "host:host-admin"
    changed = client.put(TENANT_PATH, json={"url": URL + "/2"}, headers=_auth())
    assert changed.json()["updatedBy"] == "acme-admin"
    assert client.get(path, headers=HOST).json()["url"] == URL + "/2"
    assert client.post(f"{path}/secret", headers=HOST).json()["updatedBy"] == "host:host-admin"
    queued = client.post(f"{path}/test", headers=HOST)
    assert queued.status_code == 202
    events = client.get(f"{path}/deliveries", headers=HOST).json()["events"]
    assert [event["id"] for event in events] == [queued.json()["id"]]
    assert client.delete(path, headers=HOST).status_code == 204
    assert client.get(path, headers=HOST).json()["code"] == "webhook_not_registered"

    unknown = client.get(HOST_PATH.format("nobody"), headers=HOST)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_tenant")
    assert client.get(HOST_PATH.format("Not A Slug"), headers=HOST).status_code == 400
    tenant_token = client.get(path, headers=_auth())
    assert tenant_token.json()["code"] == "permission_missing"


def test_a_tenant_without_the_feature_registers_nothing(client: TestClient) -> None:
    for path, headers in [(TENANT_PATH, _auth("initech")), (HOST_PATH.format("initech"), HOST)]:
        response = client.put(path, json={"url": URL}, headers=headers)
        assert (response.status_code, response.json()["code"]) == (403, "feature_disabled")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.acme.example/", "webhook_url_not_https"),
        ("ftp://hooks.acme.example/", "webhook_url_not_https"),
        ("https://127.0.0.1/hook", "webhook_address_forbidden"),
        ("https://10.0.0.1/hook", "webhook_address_forbidden"),
        ("https://169.254.169.254/latest/meta-data/", "webhook_address_forbidden"),
        ("https://[::1]/hook", "webhook_address_forbidden"),
        ("https://inside.acme.example/", "webhook_address_forbidden"),
        ("https://metadata.acme.example/", "webhook_address_forbidden"),
        ("https://user:pass@hooks.acme.example/", "webhook_url_invalid"),
        ("https://2130706433/", "webhook_url_invalid"),
        ("hooks.acme.example/hook", "webhook_url_invalid"),
        ("https://nowhere.acme.example/", "webhook_name_unresolvable"),
    ],
)
def test_unsafe_urls_are_refused_with_their_code_and_nothing_is_stored(
    client: TestClient, engine: sa.Engine, url: str, code: str
) -> None:
    for path, headers in [(TENANT_PATH, _auth()), (HOST_PATH.format("acme"), HOST)]:
        response = client.put(path, json={"url": url}, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == code
        assert response.json()["detail"]
    with session_scope(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 0


def test_a_refused_change_keeps_the_registered_url(client: TestClient) -> None:
    client.put(TENANT_PATH, json={"url": URL}, headers=_auth())
    refused = client.put(TENANT_PATH, json={"url": "https://10.0.0.1/"}, headers=_auth())
    assert refused.status_code == 422
    assert client.get(TENANT_PATH, headers=_auth()).json()["url"] == URL


def test_loopback_is_allowed_only_when_the_setting_says_so(
    make_client: Callable[..., TestClient],
) -> None:
    local = make_client(webhook_allow_loopback=True)
    for url in ["https://127.0.0.1:8443/hook", "http://127.0.0.1:8080/hook"]:
        response = local.put(TENANT_PATH, json={"url": url}, headers=_auth())
        assert response.status_code in (200, 201), response.text
    private = local.put(TENANT_PATH, json={"url": "https://10.0.0.1/"}, headers=_auth())
    assert private.json()["code"] == "webhook_address_forbidden"


def test_without_a_key_the_webhook_endpoints_answer_503(
    make_client: Callable[..., TestClient],
) -> None:
    unconfigured = make_client(webhook_key=None)
    for method, path, headers in [
        ("PUT", TENANT_PATH, _auth()),
        ("GET", f"{TENANT_PATH}/deliveries", _auth()),
        ("POST", f"{HOST_PATH.format('acme')}/test", HOST),
    ]:
        response = unconfigured.request(method, path, json={"url": URL}, headers=headers)
        assert response.status_code == 503
        assert response.json()["code"] == "webhooks_not_configured"
        assert "RECORDINGS_WEBHOOK_KEY" in response.json()["detail"]
    assert unconfigured.get("/health/live").status_code == 200
    reader = _auth(permissions=(READ_PERMISSION,))
    audit = unconfigured.get("/api/v1/daily-conversation-audio-recordings/audit", headers=reader)
    assert audit.status_code == 200


def test_a_test_event_is_queued_for_delivery(client: TestClient, engine: sa.Engine) -> None:
    assert client.post(f"{TENANT_PATH}/test", headers=_auth()).status_code == 404
    client.put(TENANT_PATH, json={"url": URL}, headers=_auth())
    queued = client.post(f"{TENANT_PATH}/test", headers=_auth())
    assert queued.status_code == 202, queued.text
    assert queued.json()["type"] == "webhook.test" and queued.json()["status"] == "pending"
    with session_scope(engine) as session:
        event = session.get(WebhookEvent, queued.json()["id"])
        assert event is not None and event.id.startswith("msg_")
        assert event.tenant_id == "acme" and event.status == "pending"
        assert event.next_attempt_at == event.created_at
        assert event.body == event_body(
            "webhook.test", webhook_test_data("acme"), at=event.created_at
        )
        assert json.loads(event.body)["data"]["tenantId"] == "acme"


def _set_delivered(engine: sa.Engine, event_id: str) -> None:
    with session_scope(engine) as session:
        event = session.get_one(WebhookEvent, event_id)
        event.status, event.next_attempt_at = "delivered", None
        event.delivered_at = datetime.now(UTC)


@pytest.mark.parametrize(
    ("path", "headers", "other_path", "other_headers"),
    [
        (TENANT_PATH, _auth(), HOST_PATH.format("acme"), HOST),
        (HOST_PATH.format("acme"), HOST, TENANT_PATH, _auth()),
    ],
    ids=["tenant", "host"],
)
def test_one_test_event_at_a_time_per_tenant(
    client: TestClient,
    engine: sa.Engine,
    path: str,
    headers: dict[str, str],
    other_path: str,
    other_headers: dict[str, str],
) -> None:
    """A tenant (or the host for it) cannot fill the outbox with test events: a new one is
    refused while the previous is pending and not attempted yet, whichever path asked; once an
    attempt failed, asking again makes that event due at once; other event types and other
    tenants' tests do not count."""
    client.put(TENANT_PATH, json={"url": URL}, headers=_auth())
    client.put(TENANT_PATH, json={"url": "https://hooks.globex.example/"}, headers=_auth("globex"))
    with session_scope(engine) as session:
        assert new_event(session, "acme", "day.ready", {}, now=datetime.now(UTC)) is not None
    first = client.post(f"{path}/test", headers=headers)
    assert first.status_code == 202, first.text
    first_id = first.json()["id"]

    for refused in (
        client.post(f"{path}/test", headers=headers),
        client.post(f"{other_path}/test", headers=other_headers),
    ):
        assert (refused.status_code, refused.json()["code"]) == (409, "webhook_test_pending")
        detail = refused.json()["detail"]
        assert f"the previous test event {first_id} is still pending" in detail
        assert "delivered within a minute" in detail
    assert client.post(f"{TENANT_PATH}/test", headers=_auth("globex")).status_code == 202

    retry_at = datetime(2026, 12, 1, 3, 0, 5, tzinfo=UTC)
    with session_scope(engine) as session:
        event = session.get_one(WebhookEvent, first_id)
        event.attempt_count, event.next_attempt_at = 1, retry_at
    # Its attempt failed: asking again makes the same event due at once, no second event.
    asked_at = datetime.now(UTC)
    failed_once = client.post(f"{path}/test", headers=headers)
    assert failed_once.status_code == 202, failed_once.text
    assert failed_once.json()["id"] == first_id
    with session_scope(engine) as session:
        due = session.get_one(WebhookEvent, first_id).next_attempt_at
        assert due is not None and asked_at - timedelta(seconds=1) <= due <= datetime.now(UTC)

    _set_delivered(engine, first_id)
    second = client.post(f"{path}/test", headers=headers)
    assert second.status_code == 202, second.text
    assert second.json()["id"] != first_id
    with session_scope(engine) as session:
        tests = session.scalars(
            sa.select(WebhookEvent.status).where(
                WebhookEvent.tenant_id == "acme", WebhookEvent.event_type == "webhook.test"
            )
        ).all()
    assert sorted(tests) == ["delivered", "pending"]


def test_removing_the_webhook_cancels_pending_events_only(
    client: TestClient, engine: sa.Engine
) -> None:
    client.put(TENANT_PATH, json={"url": URL}, headers=_auth())
    delivered = client.post(f"{TENANT_PATH}/test", headers=_auth()).json()["id"]
    _set_delivered(engine, delivered)
    pending = client.post(f"{TENANT_PATH}/test", headers=_auth()).json()["id"]
    assert client.delete(TENANT_PATH, headers=_auth()).status_code == 204
    assert client.delete(TENANT_PATH, headers=_auth()).status_code == 404
    events = client.get(f"{TENANT_PATH}/deliveries", headers=_auth()).json()["events"]
    states = {event["id"]: (event["status"], event.get("nextAttemptAt")) for event in events}
    assert states == {pending: ("cancelled", None), delivered: ("delivered", None)}


def test_deliveries_list_events_newest_first_with_their_attempts_by_pages(
    client: TestClient, engine: sa.Engine
) -> None:
    client.put(TENANT_PATH, json={"url": URL}, headers=_auth())
    start = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        ids = []
        for index in range(5):
            event = new_event(
                session, "acme", "day.ready", {"n": index}, now=start + timedelta(minutes=index)
            )
            assert event is not None
            ids.append(event.id)
        session.add_all(
            [
                WebhookAttempt(
                    event_id=ids[0],
                    attempted_at=start + timedelta(seconds=5),
                    url=URL,
                    address="93.184.215.14",
                    outcome="http_error",
                    status_code=503,
                    duration_ms=120,
                    detail="503 Service Unavailable",
                ),
                WebhookAttempt(
                    event_id=ids[0],
                    attempted_at=start + timedelta(seconds=10),
                    url=URL,
                    address=None,
                    outcome="name_unresolvable",
                    duration_ms=3,
                    detail="hooks.acme.example does not resolve",
                ),
            ]
        )
        first = session.get(WebhookEvent, ids[0])
        assert first is not None
        first.attempt_count = 2
    page = client.get(f"{TENANT_PATH}/deliveries?limit=2", headers=_auth()).json()
    assert [event["id"] for event in page["events"]] == [ids[4], ids[3]]
    seen = [event["id"] for event in page["events"]]
    while "nextCursor" in page:
        page = client.get(
            f"{TENANT_PATH}/deliveries",
            params={"limit": 2, "cursor": page["nextCursor"]},
            headers=_auth(),
        ).json()
        seen += [event["id"] for event in page["events"]]
    assert seen == ids[::-1]
    oldest = client.get(f"{TENANT_PATH}/deliveries?limit=100", headers=_auth()).json()
    entry = oldest["events"][-1]
    assert entry["attemptCount"] == 2 and entry["status"] == "pending"
    assert entry["createdAt"] == "2026-01-05T03:00:00Z"
    assert entry["attempts"] == [
        {
            "attemptedAt": "2026-01-05T03:00:05Z",
            "url": URL,
            "address": "93.184.215.14",
            "outcome": "http_error",
            "statusCode": 503,
            "durationMs": 120,
            "detail": "503 Service Unavailable",
        },
        {
            "attemptedAt": "2026-01-05T03:00:10Z",
            "url": URL,
            "outcome": "name_unresolvable",
            "durationMs": 3,
            "detail": "hooks.acme.example does not resolve",
        },
    ]
    for cursor in ["msg_unknown", ids[0] + "x"]:
        bad = client.get(f"{TENANT_PATH}/deliveries", params={"cursor": cursor}, headers=_auth())
        assert (bad.status_code, bad.json()["code"]) == (400, "invalid_cursor")
    foreign = client.get(
        f"{TENANT_PATH}/deliveries", params={"cursor": ids[2]}, headers=_auth("globex")
    )
    assert foreign.json()["code"] == "invalid_cursor"  # another tenant's event is no cursor


def test_new_event_is_idempotent_on_its_dedup_key_and_needs_a_webhook(
    client: TestClient, engine: sa.Engine
) -> None:
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        assert new_event(session, "acme", "day.ready", {}, dedup_key="k", now=now) is None
    client.put(TENANT_PATH, json={"url": URL}, headers=_auth())
    with session_scope(engine) as session:
        first = new_event(
            session, "acme", "day.ready", {"day": "2026-01-04"}, dedup_key="k", now=now
        )
        assert first is not None and first.status == "pending"
        again = new_event(
            session, "acme", "day.ready", {"day": "2026-01-04"}, dedup_key="k", now=now
        )
        assert again is None
        other = new_event(session, "acme", "day.expired", {}, dedup_key="k2", now=now)
        assert other is not None  # the transaction went on after the duplicate
    with session_scope(engine) as session:
        again = new_event(session, "acme", "day.ready", {}, dedup_key="k", now=now)
        assert again is None
        keys = session.scalars(sa.select(WebhookEvent.dedup_key).order_by(WebhookEvent.dedup_key))
        assert list(keys) == ["k", "k2"]


def test_event_bodies_are_compact_standard_webhooks_payloads() -> None:
    at = datetime(2026, 1, 5, 0, 0, 1, tzinfo=UTC)
    body = event_body("day.ready", {"tenantId": "acme", "utcDay": "2026-01-04"}, at=at)
    assert body == (
        '{"type":"day.ready","timestamp":"2026-01-05T00:00:01Z",'
        '"data":{"tenantId":"acme","utcDay":"2026-01-04"}}'
    )
    with pytest.raises(ValueError, match="naive"):
        event_body("day.ready", {}, at=at.replace(tzinfo=None))
