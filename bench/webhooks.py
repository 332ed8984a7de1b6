"""Day-ready webhooks at 100 and 1,000 tenants (10,000 with `--sizes`): how the two sensors'
cost grows with tenants, against what Dagster itself spends recording the night.

For each size N, on a fresh SQLite application database and a SQLite Dagster instance in a
temporary folder, with N enabled tenants that all have a webhook (the worst case: every tenant
subscribed) pointing at one loopback receiver:

1. **Events.** The events sensor is evaluated once (its cursor starts at "now"); then a night
   is recorded: 24 archive materializations per tenant, reported to the instance with the
   archive's evidence metadata, timed (the reference: what the event log itself costs). Then
   the sensor is evaluated until it has caught up, and every tick is timed. It must queue
   exactly N `day.ready` events. Printed: the ticks, the slowest tick, and how many times
   faster the sensor drains materializations than the instance records them (above 1: it keeps
   up with any night).
2. **Delivery.** The delivery sensor is evaluated until the N events are delivered to the
   receiver (it answers 204), every tick timed; the reference is the same N signed bodies posted
   by a bare `http.client` loop to the same receiver. Printed: deliveries per second, and the
   ratio of the sensor's time per delivery to the bare post's (the price of the SSRF checks,
   the claim and the attempt record).

Run (Markdown on stdout, progress on stderr):

    .venv/bin/python bench/webhooks.py [--sizes 100,1000]
"""

import argparse
import base64
import http.client
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from recordings.archive.evidence import ArchiveEvidence
from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import create_db_engine, session_scope
from recordings.db.migrate import upgrade_database
from recordings.db.models import WebhookEndpoint, WebhookEvent
from recordings.keys import archive_key, archive_partition_key, day_hours
from recordings.webhooks.signing import derive_secret, new_salt, sign
from recordings_dagster.resources import DatabaseResource, WebhookResource
from recordings_dagster.sensors import webhook_delivery_sensor, webhook_events_sensor
from recordings_instance.archives import archive_asset_key

KEY = bytes(range(32))
KEY_TEXT = base64.b64encode(KEY).decode()
DAY = (datetime.now(UTC) - timedelta(days=1)).date()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Receiver(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        Receiver.received += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@dataclass
class Figures:
    tenants: int
    materializations: int
    record_seconds: float
    event_ticks: list[float]
    events: int
    delivery_ticks: list[float]
    delivered: int
    bare_seconds: float


def _resources(database_url: str) -> dict[str, object]:
    return {
        "database": DatabaseResource(url=database_url),
        "webhook": WebhookResource(webhook_key=KEY_TEXT, allow_loopback=True, timeout_seconds=5),
    }


def _tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, url: str, cursor: str | None):
    started = time.perf_counter()
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=_resources(url)
    ) as context:
        result = sensor(context)
        return time.perf_counter() - started, context.cursor, result


def measure(tenants: int, folder: Path, receiver_url: str) -> Figures:
    database_url = f"sqlite:///{folder / 'recordings.db'}"
    upgrade_database(database_url)
    engine = create_db_engine(database_url)
    names = [f"tenant-{n:05d}" for n in range(tenants)]
    with session_scope(engine) as session:
        for name in names:
            ensure_tenant(session, name)
            set_recording_settings(session, name, changed_by="bench", enabled=True)
            session.add(
                WebhookEndpoint(
                    tenant_id=name,
                    url=receiver_url,
                    secret_salt=new_salt(),
                    created_by="bench",
                    updated_by="bench",
                )
            )
    (folder / "dagster_home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(folder / "dagster_home"))

    _, cursor, _ = _tick(webhook_events_sensor, instance, database_url, None)
    log(f"{tenants} tenants: recording {tenants * 24} materializations")
    started = time.perf_counter()
    for name in names:
        for hour in day_hours(DAY):
            evidence = ArchiveEvidence(archive_key(name, hour), 1000, "ab" * 32, 3, 2, 0)
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    archive_asset_key(name),
                    partition=archive_partition_key(name, hour),
                    metadata=evidence.to_metadata(),
                )
            )
    record_seconds = time.perf_counter() - started

    event_ticks: list[float] = []
    while True:
        seconds, cursor, result = _tick(webhook_events_sensor, instance, database_url, cursor)
        event_ticks.append(seconds)
        message = result.skip_message if isinstance(result, dg.SkipReason) else ""
        if (message or "").startswith("no webhook event (0 new"):
            break
    with engine.connect() as connection:
        events = connection.scalar(sa.select(sa.func.count()).select_from(WebhookEvent)) or 0
    log(f"  events: {events} queued in {len(event_ticks)} ticks")

    delivery_ticks: list[float] = []
    Receiver.received = 0
    while Receiver.received < events:
        seconds, _, _ = _tick(webhook_delivery_sensor, instance, database_url, None)
        delivery_ticks.append(seconds)
        if len(delivery_ticks) > events:  # no progress: stop rather than spin
            break
    delivered = Receiver.received
    log(f"  delivered {delivered} in {len(delivery_ticks)} ticks")

    # The reference: the same number of signed bodies, posted by a bare loop.
    body = b'{"type":"day.ready","timestamp":"2026-12-02T00:00:00Z","data":{}}'
    secret = derive_secret(KEY, new_salt())
    host, port = receiver_url.removeprefix("http://").split("/")[0].split(":")
    started = time.perf_counter()
    for n in range(events):
        headers = sign([secret], f"msg_{n}", int(time.time()), body)
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        connection.request("POST", "/hooks", body, {**headers, "content-type": "application/json"})
        connection.getresponse().read()
        connection.close()
    bare_seconds = time.perf_counter() - started
    instance.dispose()
    engine.dispose()
    return Figures(
        tenants,
        tenants * 24,
        record_seconds,
        event_ticks,
        events,
        delivery_ticks,
        delivered,
        bare_seconds,
    )


def report(rows: list[Figures]) -> str:
    lines = [
        "| tenants | materializations | recording them | events sensor: ticks, slowest, total "
        "| drains / records | `day.ready` queued | delivery: ticks, deliveries/s "
        "| per delivery: sensor / bare post |",
        "| ---: | ---: | ---: | --- | ---: | ---: | --- | ---: |",
    ]
    for f in rows:
        events_total = sum(f.event_ticks)
        delivery_total = sum(f.delivery_ticks)
        per_sensor = delivery_total / max(1, f.delivered)
        per_bare = f.bare_seconds / max(1, f.events)
        lines.append(
            f"| {f.tenants:,} | {f.materializations:,} | {f.record_seconds:.1f} s "
            f"| {len(f.event_ticks)}, {max(f.event_ticks):.2f} s, {events_total:.1f} s "
            f"| {f.record_seconds / events_total:.1f}x | {f.events:,} "
            f"| {len(f.delivery_ticks)}, {f.delivered / delivery_total:.0f}/s "
            f"| {per_sensor / per_bare:.1f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="tenant counts, comma-separated")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver_url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as folder:
            rows.append(measure(size, Path(folder), receiver_url))
    server.shutdown()
    print(report(rows))


if __name__ == "__main__":
    main()
