"""A tenant compliance team's nightly job, end to end, as the docs describe it: the tenant
registers its webhook over HTTP and keeps the secret shown once; the nightly run archives the
day; the Dagster sensors queue and post day.ready; the tenant's receiver verifies it with the
client's own `verify_webhook` and the `recordings-client` command fetches the day it names into
a folder, verified, with its manifest. And when the receiver is down at first: the event comes
again with the same webhook-id, and every attempt is listed for the tenant and the host, never
for another tenant.

Real components only: the API served over HTTP on loopback, a real Dagster instance, database
and S3 server, a receiver on loopback (allowed by the loopback setting, as in development).
"""

import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from socket import socket
from typing import Any

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from recordings.db.engine import session_scope
from recordings.db.models import DownloadAuditEntry, WebhookEvent
from recordings.tokens import (
    HOST_PERMISSION,
    READ_PERMISSION,
    WEBHOOK_PERMISSION,
    mint_development_token,
)
from recordings_client import WebhookVerificationError, verify_webhook
from recordings_client.api import DAY_PATH
from recordings_client.fetch import MANIFEST, archive_path, file_digest
from recordings_dagster.resources import DatabaseResource, WebhookResource
from recordings_dagster.sensors import webhook_delivery_sensor, webhook_events_sensor
from tests.api.conftest import JWT_SECRET
from tests.client.conftest import HOURS_WITH_RECORDINGS, ServeApi, archive_day, tenant_token
from tests.webhooks.receivers import Receiver, answer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEBHOOK_PATH = "/api/v1/daily-conversation-audio-recordings/webhook"
HOST_WEBHOOK_PATH = "/api/v1/host/tenants/{}/daily-conversation-audio-recordings/webhook"
# The service's webhook key, shared by the API (which derives the secret it shows) and the
# sensors (which sign with it), as RECORDINGS_WEBHOOK_KEY is in a deployment.
WEBHOOK_KEY = secrets.token_bytes(32)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# The compliance team's token: read the archives, manage the webhook.
ACME = _bearer(tenant_token("acme", [READ_PERMISSION, WEBHOOK_PERMISSION]))
GLOBEX = _bearer(tenant_token("globex", [READ_PERMISSION, WEBHOOK_PERMISSION]))
HOST = _bearer(
    mint_development_token(
        JWT_SECRET, subject="host-admin", tenant_id=None, permissions=[HOST_PERMISSION]
    )
)


@dataclass
class TenantReceiver:
    """The tenant's endpoint as docs/CLIENT.md writes it: every post verified with
    `recordings_client.verify_webhook` under the secret kept at registration, 400 if it does not
    verify, 204 at once if it does. Its first `failures` posts are answered 500 (the receiver
    down)."""

    secret: str = ""
    failures: int = 0
    webhook_ids: list[str] = field(default_factory=list)  # of every post, verified or not
    events: list[dict[str, Any]] = field(default_factory=list)  # verified

    def __post_init__(self) -> None:
        self.server = Receiver(self._respond)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/hooks/recordings"

    def _respond(self, conn: socket, receiver: Receiver) -> None:
        request = receiver.requests[-1]  # the delivery sensor posts one event at a time
        self.webhook_ids.append(request.headers["webhook-id"])
        if self.failures:
            self.failures -= 1
            answer("500 Internal Server Error")(conn, receiver)
            return
        try:
            event = verify_webhook(self.secret, request.headers, request.body)
        except WebhookVerificationError as error:
            answer("400 Bad Request", body=str(error).encode())(conn, receiver)
            return
        self.events.append(event)
        answer("204 No Content")(conn, receiver)


@pytest.fixture
def tenant_receiver() -> Iterator[TenantReceiver]:
    receiver = TenantReceiver()
    yield receiver
    receiver.server.stop()


@dataclass
class Sensors:
    """The two webhook sensors as the daemon evaluates them, on the test's instance and
    database, the events sensor's cursor carried from one evaluation to the next."""

    instance: dg.DagsterInstance
    database_url: str
    events_cursor: str | None = None

    def _resources(self) -> dict[str, object]:
        return {
            "database": DatabaseResource(url=self.database_url),
            "webhook": WebhookResource(
                webhook_key=base64.b64encode(WEBHOOK_KEY).decode(),
                allow_loopback=True,
                timeout_seconds=5,
            ),
        }

    def events(self) -> str:
        with dg.build_sensor_context(
            instance=self.instance, cursor=self.events_cursor, resources=self._resources()
        ) as context:
            result = webhook_events_sensor(context)
            self.events_cursor = context.cursor
        assert isinstance(result, dg.SkipReason)
        return result.skip_message or ""

    def delivery(self) -> str:
        with dg.build_sensor_context(
            instance=self.instance, resources=self._resources()
        ) as context:
            result = webhook_delivery_sensor(context)
        assert isinstance(result, dg.SkipReason)
        return result.skip_message or ""


@pytest.fixture
def sensors(dagster_instance: dg.DagsterInstance, database_url: str) -> Sensors:
    return Sensors(dagster_instance, database_url)


def _register(base: str, receiver: TenantReceiver) -> None:
    """The tenant registers its receiver and keeps the secret, shown this once."""
    registered = httpx.put(f"{base}{WEBHOOK_PATH}", json={"url": receiver.url}, headers=ACME)
    assert registered.status_code == 201, registered.text
    assert registered.json()["url"] == receiver.url
    receiver.secret = registered.json()["secret"]
    assert "secret" not in httpx.get(f"{base}{WEBHOOK_PATH}", headers=ACME).json()


def _deliveries(base: str, path: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    listing = httpx.get(f"{base}{path}/deliveries", headers=headers)
    assert listing.status_code == 200, listing.text
    return listing.json()["events"]


def _fetch_cli(
    base: str, utc_day: str, dest: Path, token_file: Path
) -> subprocess.CompletedProcess[str]:
    """The installed `recordings-client` command, the token read from a file."""
    command = Path(sys.executable).with_name("recordings-client")
    token_file.write_text(ACME["Authorization"].removeprefix("Bearer "))
    return subprocess.run(
        [
            str(command),
            "fetch",
            "--api",
            base,
            "--day",
            utc_day,
            "--dest",
            str(dest),
            "--token-file",
            str(token_file),
        ],
        env={k: v for k, v in os.environ.items() if k != "RECORDINGS_TOKEN"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_the_nightly_job_hears_the_day_is_ready_and_fetches_it_verified(
    recorded_day: date,
    dagster_instance: dg.DagsterInstance,
    serve_api: ServeApi,
    sensors: Sensors,
    tenant_receiver: TenantReceiver,
    engine: sa.Engine,
    tmp_path: Path,
) -> None:
    base = serve_api(
        webhook_key=WEBHOOK_KEY, download_limit=8, download_window=timedelta(seconds=2)
    )
    _register(base, tenant_receiver)
    assert sensors.events().startswith("started: ")  # the daemon's first look, before the night

    archive_day(dagster_instance, recorded_day)
    day = recorded_day.isoformat()
    queued = sensors.events()
    assert queued.startswith(f"1 event: day.ready acme {day} ("), queued  # globex has no webhook
    delivered = sensors.delivery()
    assert delivered.startswith("1 delivery: acme day.ready msg_"), delivered
    assert ": delivered 204 in " in delivered

    # The receiver verified the post with the client's function; the job reads what to fetch.
    (event,) = tenant_receiver.events
    assert event["type"] == "day.ready"
    data = event["data"]
    assert (data["tenantId"], data["utcDay"], data["hours"]) == ("acme", day, 24)
    assert data["recordingCount"] == len(HOURS_WITH_RECORDINGS)
    assert data["linksPath"] == f"{DAY_PATH}?utcDay={day}"  # where the client asks
    links = httpx.get(f"{base}{data['linksPath']}", headers=ACME)
    assert links.status_code == 200 and len(links.json()["hours"]) == 24

    dest = tmp_path / "compliance"
    fetched = _fetch_cli(base, data["utcDay"], dest, tmp_path / "recordings-token")

    assert fetched.returncode == 0, fetched.stderr
    assert "24 fetched" in fetched.stdout
    with engine.connect() as connection:
        outcomes = list(connection.scalars(sa.select(DownloadAuditEntry.outcome)))
    assert outcomes.count("granted") == 24  # one download an hour...
    assert "rate_limited" in outcomes  # ...the limit met mid-day, and waited out unattended
    entries = [json.loads(line) for line in (dest / MANIFEST).read_text().splitlines()]
    assert sorted(entry["hour"] for entry in entries) == list(range(24))
    for entry in entries:
        path = dest / entry["file"]
        assert path == archive_path(dest, day, entry["hour"])
        assert file_digest(path) == (entry["sizeBytes"], entry["sha256"])
        assert (entry["tenantId"], entry["utcDay"]) == ("acme", day)

    (listed,) = _deliveries(base, WEBHOOK_PATH, ACME)
    assert (listed["id"], listed["type"], listed["status"]) == (
        tenant_receiver.webhook_ids[0],
        "day.ready",
        "delivered",
    )
    assert [(a["outcome"], a["statusCode"]) for a in listed["attempts"]] == [("delivered", 204)]


def test_a_receiver_down_at_first_gets_the_event_again_and_every_attempt_is_listed(
    recorded_day: date,
    serve_api: ServeApi,
    sensors: Sensors,
    tenant_receiver: TenantReceiver,
    engine: sa.Engine,
) -> None:
    """The tenant tries its receiver with a test event while the receiver is down: the 500 is
    recorded, the event is retried (due now rather than in five seconds) with the same
    webhook-id, verified, and both attempts read back by the tenant and the host alone."""
    base = serve_api(webhook_key=WEBHOOK_KEY)
    _register(base, tenant_receiver)
    tenant_receiver.failures = 1
    queued = httpx.post(f"{base}{WEBHOOK_PATH}/test", headers=ACME)
    assert queued.status_code == 202, queued.text
    event_id = queued.json()["id"]

    assert f"{event_id}: http_error 500" in sensors.delivery()
    (pending,) = _deliveries(base, WEBHOOK_PATH, ACME)
    assert (pending["status"], pending["attemptCount"]) == ("pending", 1)
    assert "nextAttemptAt" in pending
    with session_scope(engine) as session:
        session.get_one(WebhookEvent, event_id).next_attempt_at = datetime.now(UTC)
    assert f"{event_id}: delivered 204" in sensors.delivery()

    assert tenant_receiver.webhook_ids == [event_id, event_id]
    (event,) = tenant_receiver.events
    assert (event["type"], event["data"]["tenantId"]) == ("webhook.test", "acme")
    for path, headers in [(WEBHOOK_PATH, ACME), (HOST_WEBHOOK_PATH.format("acme"), HOST)]:
        (listed,) = _deliveries(base, path, headers)
        assert (listed["id"], listed["status"], listed["attemptCount"]) == (
            event_id,
            "delivered",
            2,
        )
        assert "nextAttemptAt" not in listed and "deliveredAt" in listed
        assert [(a["outcome"], a.get("statusCode"), a["url"]) for a in listed["attempts"]] == [
            ("http_error", 500, tenant_receiver.url),
            ("delivered", 204, tenant_receiver.url),
        ]

    assert _deliveries(base, WEBHOOK_PATH, GLOBEX) == []  # globex sees its own, none
    foreign = httpx.get(f"{base}{HOST_WEBHOOK_PATH.format('acme')}/deliveries", headers=GLOBEX)
    assert (foreign.status_code, foreign.json()["code"]) == (403, "permission_missing")
