"""Day-ready webhooks from the Dagster side: the events sensor queues day.ready, hour.archived and
day.expired from what the pipeline and retention really did (real runs, real S3, a real
database, a real Dagster instance), and the delivery sensor posts them to a real HTTP receiver on
loopback, where the Standard Webhooks reference library verifies them; retries, the end of the
schedule, a secret's rotation and a DNS answer turned private are recorded as the tenant will
read them."""

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from minio import Minio
from standardwebhooks.webhooks import Webhook

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import session_scope
from recordings.db.models import ArchiveDeletion, WebhookAttempt, WebhookEndpoint, WebhookEvent
from recordings.keys import archive_key, archive_partition_key, day_hours, hour_partition_key
from recordings.webhooks import retries
from recordings.webhooks.events import new_event
from recordings.webhooks.signing import derive_secret, new_salt
from recordings_dagster.definitions import defs
from recordings_dagster.execution import run_request_job
from recordings_dagster.resources import DatabaseResource, WebhookResource
from recordings_dagster.sensors import (
    late_recordings_sensor,
    new_archive_records,
    webhook_delivery_sensor,
    webhook_events_sensor,
)
from recordings_instance.archives import archive_asset_key, latest_storage_ids
from tests.dagster.test_late_recordings import _register
from tests.dagster.test_pipeline import _run_day
from tests.support import DAY, register_unreadable_source

pytestmark = pytest.mark.integration

KEY_TEXT = base64.b64encode(secrets.token_bytes(32)).decode()
KEY = base64.b64decode(KEY_TEXT)


class ResolvingWebhookResource(WebhookResource):
    """Webhook delivery whose DNS answers are the ones the test gives (`hosts`), so a name can
    point at the receiver on loopback, then at a private address."""

    hosts: dict[str, list[str]]

    def resolve(self, host: str, port: int) -> list[str]:
        if host not in self.hosts:
            raise OSError(f"{host} is not a name this test resolves")
        return self.hosts[host]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 recording every request; it answers the statuses in
    `answers` in turn, then 200."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/recordings"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            state.requests.append(Received(self.path, dict(self.headers.items()), body))
            status = state.answers.pop(0) if state.answers else 200
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def _resources(database_url: str, webhook: WebhookResource | None = None) -> dict[str, object]:
    return {
        "database": DatabaseResource(url=database_url),
        "webhook": webhook
        or WebhookResource(webhook_key=KEY_TEXT, allow_loopback=True, timeout_seconds=5),
    }


def _tenants(engine: sa.Engine, *tenants: str, retention_days: int = 7) -> None:
    with session_scope(engine) as session:
        for tenant in tenants:
            ensure_tenant(session, tenant)
            set_recording_settings(
                session, tenant, changed_by="test", enabled=True, retention_days=retention_days
            )


def _endpoint(engine: sa.Engine, tenant: str, url: str) -> str:
    """Register the tenant's webhook; its secret."""
    salt = new_salt()
    with session_scope(engine) as session:
        session.add(
            WebhookEndpoint(
                tenant_id=tenant, url=url, secret_salt=salt, created_by="t", updated_by="t"
            )
        )
    return derive_secret(KEY, salt)


def _events_tick(
    instance: dg.DagsterInstance, database_url: str, cursor: str | None
) -> tuple[str, str | None]:
    """One evaluation of the events sensor: its summary and its new cursor."""
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=_resources(database_url)
    ) as context:
        result = webhook_events_sensor(context)
        assert isinstance(result, dg.SkipReason)
        return result.skip_message or "", context.cursor


def _delivery_tick(
    instance: dg.DagsterInstance, database_url: str, webhook: WebhookResource | None = None
) -> str:
    with dg.build_sensor_context(
        instance=instance, resources=_resources(database_url, webhook)
    ) as context:
        result = webhook_delivery_sensor(context)
    assert isinstance(result, dg.SkipReason)
    return result.skip_message or ""


def _events(engine: sa.Engine) -> list[tuple[str, str, dict]]:
    """Every queued event: (tenant, type, data), oldest first."""
    with session_scope(engine) as session:
        rows = session.scalars(sa.select(WebhookEvent).order_by(WebhookEvent.created_at))
        return [(e.tenant_id, e.event_type, json.loads(e.body)["data"]) for e in rows]


def _latest_metadata(instance: dg.DagsterInstance, tenant: str, hour: datetime) -> dict:
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=archive_asset_key(tenant),
            asset_partitions=[archive_partition_key(tenant, hour)],
        ),
        limit=1,
    ).records[0]
    assert record.asset_materialization is not None
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


@pytest.mark.slow
def test_a_complete_day_is_announced_once_to_tenants_with_a_webhook(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    database_url: str,
    engine: sa.Engine,
    s3_client: Minio,
    tmp_path: Path,
) -> None:
    """acme (a webhook, 24 hours archived) hears of its day once; globex (24 hours, no
    webhook) and initech (a webhook, but an hour that failed) hear nothing."""
    source = recordings_env["RECORDINGS_SOURCE_BUCKET"]
    _tenants(engine, "acme", "globex", "initech")
    _endpoint(engine, "acme", "https://hooks.acme.example/recordings")
    _endpoint(engine, "initech", "https://hooks.initech.example/recordings")
    started, first_cursor = _events_tick(instance, database_url, None)
    assert started.startswith("started: events for archives recorded after storage id")

    hours = day_hours(DAY)
    _register(engine, s3_client, source, tmp_path, "acme", "a-r1", hours[5] + timedelta(minutes=2))
    _register(engine, s3_client, source, tmp_path, "acme", "a-r2", hours[5] + timedelta(minutes=9))
    _register(engine, s3_client, source, tmp_path, "globex", "g-r1", hours[8])
    register_unreadable_source(engine, "initech", hours[11], source)
    assert _run_day(instance, "acme", DAY).success
    assert _run_day(instance, "globex", DAY).success
    assert not _run_day(instance, "initech", DAY).success  # 23 hours archived

    archived = latest_storage_ids(
        instance, [archive_partition_key(t, h) for t in ("globex", "initech") for h in hours]
    )
    assert sorted(len(by_key) for by_key in archived.values()) == [23, 24]
    summary, cursor = _events_tick(instance, database_url, first_cursor)
    assert summary == (
        f"1 event: day.ready acme {DAY.isoformat()} (71 new archive(s) and 0 deletion(s) "
        "looked at, 3 tenant-day(s), 2 with a webhook)"
    )
    assert _events(engine) == [
        (
            "acme",
            "day.ready",
            {
                "tenantId": "acme",
                "utcDay": DAY.isoformat(),
                "hours": 24,
                "recordingCount": 2,
                "failedRecordingCount": 0,
                "linksPath": "/api/v1/daily-conversation-audio-recordings?utcDay="
                + DAY.isoformat(),
            },
        )
    ]
    again, _ = _events_tick(instance, database_url, cursor)
    assert again.startswith("no webhook event")
    # A lost cursor replays the batch: the day is still announced once.
    replayed, _ = _events_tick(instance, database_url, first_cursor)
    assert replayed.startswith("no webhook event")
    assert len(_events(engine)) == 1


@pytest.mark.slow
def test_a_rearchived_hour_and_an_expired_day_are_announced(
    instance: dg.DagsterInstance,
    recordings_env: dict[str, str],
    database_url: str,
    engine: sa.Engine,
    s3_client: Minio,
    tmp_path: Path,
) -> None:
    source = recordings_env["RECORDINGS_SOURCE_BUCKET"]
    _tenants(engine, "acme", retention_days=1)
    _endpoint(engine, "acme", "https://hooks.acme.example/recordings")
    _, cursor = _events_tick(instance, database_url, None)
    hour = day_hours(DAY)[3]
    _register(engine, s3_client, source, tmp_path, "acme", "on-time", hour)
    assert _run_day(instance, "acme", DAY).success
    ready, cursor = _events_tick(instance, database_url, cursor)
    assert ready.startswith("1 event: day.ready acme")

    # A late recording: the late-recordings sensor re-archives hour 3.
    def late_tick(cursor: str | None) -> dg.SensorResult:
        with dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={"database": DatabaseResource(url=database_url)},
        ) as context:
            result = late_recordings_sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    late_cursor = late_tick(None).cursor
    _register(engine, s3_client, source, tmp_path, "acme", "late", hour + timedelta(minutes=30))
    (request,) = late_tick(late_cursor).run_requests or []
    with dg.execute_job(
        run_request_job(request),
        instance=instance,
        tags={**request.tags, "dagster/partition": archive_partition_key("acme", hour)},
    ) as result:
        assert result.success
    rearchived, cursor = _events_tick(instance, database_url, cursor)
    hour_text = hour.isoformat().replace("+00:00", "Z")
    assert rearchived.startswith(f"1 event: hour.archived acme {hour_text} (")
    metadata = _latest_metadata(instance, "acme", hour)
    assert _events(engine)[-1] == (
        "acme",
        "hour.archived",
        {
            "tenantId": "acme",
            "utcDay": DAY.isoformat(),
            "hour": hour_text,
            "sha256": metadata["sha256"],
            "sizeBytes": metadata["size_bytes"],
            "recordingCount": 2,
        },
    )
    with session_scope(engine) as session:
        dedup = session.scalar(
            sa.select(WebhookEvent.dedup_key).where(WebhookEvent.event_type == "hour.archived")
        )
    assert dedup is not None
    assert dedup.startswith(f"hour.archived/acme/{hour_partition_key(hour)}/")

    # Retention (1 day) deletes the day three days later.
    result = defs.resolve_job_def("retention_job").execute_in_process(
        instance=instance,
        run_config={
            "ops": {
                "apply_archive_retention": {
                    "config": {"today": (DAY + timedelta(days=3)).isoformat()}
                }
            }
        },
    )
    assert result.success
    expired, cursor = _events_tick(instance, database_url, cursor)
    assert expired.startswith(f"1 event: day.expired acme {DAY.isoformat()} (")
    assert _events(engine)[-1] == (
        "acme",
        "day.expired",
        {"tenantId": "acme", "utcDay": DAY.isoformat(), "deletedHours": 24, "retentionDays": 1},
    )
    assert _events_tick(instance, database_url, cursor)[0].startswith("no webhook event")
    assert [event_type for _, event_type, _ in _events(engine)] == [
        "day.ready",
        "hour.archived",
        "day.expired",
    ]


def test_the_events_sensor_reads_a_bounded_page_and_carries_on(
    instance: dg.DagsterInstance, database_url: str, engine: sa.Engine
) -> None:
    """History before the first evaluation is not replayed; after it, each evaluation reads at
    most a page per shard and the next one carries on where it stopped."""
    _tenants(engine, "acme", "initech")

    def archived(tenant: str, hour: datetime) -> None:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                archive_asset_key(tenant),
                partition=archive_partition_key(tenant, hour),
                metadata={"sha256": "00" * 32},
            )
        )

    archived("acme", day_hours(DAY)[0])
    _, cursor = _events_tick(instance, database_url, None)
    after = json.loads(cursor or "{}")["archives"]
    assert new_archive_records(instance, after) == ([], after)

    for hour in day_hours(DAY)[1:5]:
        archived("acme", hour)  # acme and initech are in different shards
        archived("initech", hour)
    first, first_to = new_archive_records(instance, after, page=3)
    # acme's shard had more than a page: the batch stops at its third record.
    assert [r.partition_key for r in first if "acme" in (r.partition_key or "")] == [
        archive_partition_key("acme", hour) for hour in day_hours(DAY)[1:4]
    ]
    assert first_to == max(r.storage_id for r in first)
    rest, rest_to = new_archive_records(instance, first_to, page=3)
    keys = {r.partition_key for r in first + rest}
    assert len(keys) == 8  # every record read once over the two evaluations
    assert not {r.storage_id for r in first} & {r.storage_id for r in rest}
    assert new_archive_records(instance, rest_to, page=3) == ([], rest_to)


def _queue(engine: sa.Engine, tenant: str = "acme", utc_day: date = DAY) -> str:
    with session_scope(engine) as session:
        event = new_event(
            session,
            tenant,
            "day.ready",
            {"tenantId": tenant, "utcDay": utc_day.isoformat()},
            dedup_key=f"day.ready/{tenant}/{utc_day.isoformat()}",
            now=datetime.now(UTC),
        )
        assert event is not None
        return event.id


def _event(engine: sa.Engine, event_id: str) -> tuple[WebhookEvent, list[WebhookAttempt]]:
    with session_scope(engine) as session:
        event = session.get_one(WebhookEvent, event_id)
        attempts = list(event.attempts)
        session.expunge_all()
    return event, attempts


def _make_due(engine: sa.Engine, event_id: str) -> None:
    """The event's next attempt is due now (instead of waiting for the schedule)."""
    with session_scope(engine) as session:
        session.get_one(WebhookEvent, event_id).next_attempt_at = datetime.now(UTC)


def test_an_event_is_delivered_signed_and_recorded(
    instance: dg.DagsterInstance, database_url: str, engine: sa.Engine, receiver: Receiver
) -> None:
    _tenants(engine, "acme")
    secret = _endpoint(engine, "acme", receiver.url)
    event_id = _queue(engine)

    summary = _delivery_tick(instance, database_url)
    assert summary.startswith(f"1 delivery: acme day.ready {event_id}: delivered 200 in ")
    (request,) = receiver.requests
    assert request.path == "/hooks/recordings"
    assert request.headers["webhook-id"] == event_id
    assert request.headers["content-type"] == "application/json"
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload == {
        "type": "day.ready",
        "timestamp": payload["timestamp"],
        "data": {"tenantId": "acme", "utcDay": DAY.isoformat()},
    }
    event, (attempt,) = _event(engine, event_id)
    assert (event.status, event.attempt_count, event.next_attempt_at) == ("delivered", 1, None)
    assert event.delivered_at == attempt.attempted_at == event.last_attempt_at
    assert (attempt.outcome, attempt.status_code, attempt.address) == (
        "delivered",
        200,
        "127.0.0.1",
    )
    assert attempt.url == receiver.url
    assert _delivery_tick(instance, database_url) == "no webhook event due"


def test_a_failed_attempt_is_retried_on_schedule_then_delivered(
    instance: dg.DagsterInstance, database_url: str, engine: sa.Engine, receiver: Receiver
) -> None:
    _tenants(engine, "acme")
    secret = _endpoint(engine, "acme", receiver.url)
    event_id = _queue(engine)
    receiver.answers = [500]

    assert "http_error 500" in _delivery_tick(instance, database_url)
    event, (first,) = _event(engine, event_id)
    assert (first.outcome, first.status_code) == ("http_error", 500)
    assert event.status == "pending"
    assert event.attempt_count == 1
    assert event.next_attempt_at == retries.next_attempt_at(1, first.attempted_at)
    assert event.next_attempt_at == first.attempted_at + timedelta(seconds=5)

    _make_due(engine, event_id)
    assert "delivered 200" in _delivery_tick(instance, database_url)
    event, attempts = _event(engine, event_id)
    assert [(a.outcome, a.status_code) for a in attempts] == [
        ("http_error", 500),
        ("delivered", 200),
    ]
    assert (event.status, event.attempt_count) == ("delivered", 2)
    # Both attempts carried the event's id; each verifies on its own.
    assert [r.headers["webhook-id"] for r in receiver.requests] == [event_id, event_id]
    for request in receiver.requests:
        Webhook(secret).verify(request.body, request.headers)


def test_an_event_fails_once_the_schedule_is_spent(
    instance: dg.DagsterInstance, database_url: str, engine: sa.Engine, receiver: Receiver
) -> None:
    _tenants(engine, "acme")
    _endpoint(engine, "acme", receiver.url)
    event_id = _queue(engine)
    with session_scope(engine) as session:
        session.get_one(WebhookEvent, event_id).attempt_count = retries.MAX_ATTEMPTS - 1
    receiver.answers = [503]

    assert "http_error 503" in _delivery_tick(instance, database_url)
    event, (attempt,) = _event(engine, event_id)
    assert (event.status, event.attempt_count, event.next_attempt_at) == (
        "failed",
        retries.MAX_ATTEMPTS,
        None,
    )
    assert attempt.outcome == "http_error"
    assert _delivery_tick(instance, database_url) == "no webhook event due"


def test_during_a_rotation_both_secrets_sign_until_the_previous_expires(
    instance: dg.DagsterInstance, database_url: str, engine: sa.Engine, receiver: Receiver
) -> None:
    _tenants(engine, "acme")
    previous = _endpoint(engine, "acme", receiver.url)
    salt = new_salt()
    with session_scope(engine) as session:
        endpoint = session.get_one(WebhookEndpoint, "acme")
        endpoint.previous_secret_salt = endpoint.secret_salt
        endpoint.secret_salt = salt
        endpoint.previous_secret_expires_at = datetime.now(UTC) + timedelta(hours=24)
    current = derive_secret(KEY, salt)
    _queue(engine)
    _delivery_tick(instance, database_url)
    (request,) = receiver.requests
    assert len(request.headers["webhook-signature"].split()) == 2
    for secret in (current, previous):
        Webhook(secret).verify(request.body, request.headers)

    with session_scope(engine) as session:
        endpoint = session.get_one(WebhookEndpoint, "acme")
        endpoint.previous_secret_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    _queue(engine, utc_day=DAY - timedelta(days=1))
    _delivery_tick(instance, database_url)
    latest = receiver.requests[-1]
    assert len(latest.headers["webhook-signature"].split()) == 1
    Webhook(current).verify(latest.body, latest.headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(previous).verify(latest.body, latest.headers)


def test_a_name_that_now_resolves_to_a_private_address_is_refused_at_delivery(
    instance: dg.DagsterInstance, database_url: str, engine: sa.Engine, receiver: Receiver
) -> None:
    """The URL passed when registered (its name resolved to the receiver); its DNS now answers
    a private address, and the delivery refuses to connect."""
    _tenants(engine, "acme")
    name = "hooks.acme.test"
    _endpoint(engine, "acme", f"http://{name}:{receiver.port}/hooks/recordings")

    def resolving(address: str) -> WebhookResource:
        return ResolvingWebhookResource(
            webhook_key=KEY_TEXT, allow_loopback=True, timeout_seconds=5, hosts={name: [address]}
        )

    first = _queue(engine)
    assert "delivered 200" in _delivery_tick(instance, database_url, resolving("127.0.0.1"))
    assert _event(engine, first)[1][0].address == "127.0.0.1"

    second = _queue(engine, utc_day=DAY - timedelta(days=1))
    assert "address_forbidden" in _delivery_tick(instance, database_url, resolving("10.1.2.3"))
    event, (attempt,) = _event(engine, second)
    assert attempt.outcome == "address_forbidden"
    assert attempt.address is None
    assert "10.1.2.3, a private address" in attempt.detail
    assert event.status == "pending"  # DNS may be put right: retried on the schedule
    assert len(receiver.requests) == 1  # nothing was sent


def test_an_event_of_a_tenant_without_a_webhook_any_more_is_cancelled(
    instance: dg.DagsterInstance, database_url: str, engine: sa.Engine, receiver: Receiver
) -> None:
    _tenants(engine, "acme")
    _endpoint(engine, "acme", receiver.url)
    event_id = _queue(engine)
    with session_scope(engine) as session:
        session.delete(session.get_one(WebhookEndpoint, "acme"))
    assert _delivery_tick(instance, database_url) == "no webhook delivery (1 due, 1 cancelled)"
    event, attempts = _event(engine, event_id)
    assert (event.status, attempts, receiver.requests) == ("cancelled", [], [])


def test_the_sensors_skip_until_the_webhook_key_is_set(
    instance: dg.DagsterInstance, database_url: str
) -> None:
    off = {"database": DatabaseResource(url=database_url), "webhook": WebhookResource()}
    for sensor in (webhook_events_sensor, webhook_delivery_sensor):
        with dg.build_sensor_context(instance=instance, resources=off) as context:
            result = sensor(context)
        assert isinstance(result, dg.SkipReason)
        assert (result.skip_message or "").startswith(
            "webhooks are off until RECORDINGS_WEBHOOK_KEY is set"
        )


def test_a_day_is_announced_expired_once_its_deletions_are_settled(
    instance: dg.DagsterInstance, database_url: str, engine: sa.Engine
) -> None:
    """Deletions still `deleting` (their S3 delete under way) hold the sensor back until they
    are recorded `deleted`; one left `deleting` by a cleanup that died long ago is passed
    over."""
    _tenants(engine, "acme")
    _endpoint(engine, "acme", "https://hooks.acme.example/recordings")
    _, cursor = _events_tick(instance, database_url, None)
    now = datetime.now(UTC)

    def deletion(hour: datetime, state: str, requested_at: datetime) -> ArchiveDeletion:
        return ArchiveDeletion(
            tenant_id="acme",
            hour=hour,
            object_key=archive_key("acme", hour),
            sha256="00" * 32,
            retention_days=3,
            state=state,
            requested_at=requested_at,
        )

    stuck_day, settling_day = DAY - timedelta(days=5), DAY - timedelta(days=4)
    with session_scope(engine) as session:
        session.add(deletion(day_hours(stuck_day)[0], "deleting", now - timedelta(hours=1)))
        session.add_all(deletion(hour, "deleting", now) for hour in day_hours(settling_day))
    held, held_cursor = _events_tick(instance, database_url, cursor)
    assert held.startswith("no webhook event (0 new archive(s) and 0 deletion(s) looked at")

    with session_scope(engine) as session:
        session.execute(
            sa.update(ArchiveDeletion)
            .where(ArchiveDeletion.hour >= day_hours(settling_day)[0])
            .values(state="deleted", deleted_at=now)
        )
    settled, cursor = _events_tick(instance, database_url, held_cursor)
    assert settled.startswith(f"1 event: day.expired acme {settling_day.isoformat()} (")
    assert _events(engine) == [
        (
            "acme",
            "day.expired",
            {
                "tenantId": "acme",
                "utcDay": settling_day.isoformat(),
                "deletedHours": 24,
                "retentionDays": 3,
            },
        )
    ]
    assert _events_tick(instance, database_url, cursor)[0].startswith("no webhook event")
