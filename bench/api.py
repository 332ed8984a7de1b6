"""The download API under load: the links endpoint against the Dagster lookup it cannot avoid,
and the download endpoint against a bare Litestar handler on the same server.

Everything is real and local: a SeaweedFS S3 server, a SQLite application database, a Dagster
instance (the repository's `dagster.yaml`) in which the real job archived the benchmark tenant's
day (24 hours, one short recording each), padded with the materializations of `--tenants` other
tenants over `--days` days so the event log is not trivially small, and one uvicorn process
serving the app plus one bare redirect handler (`create_bench_app` below).

Figures, all from one run:

1. Lookup alone: `day_statuses` (the storage-id lookup plus `fetch_materializations` for the
   day's 24 partitions, and the planned-run lookup for a day with nothing archived), called in
   this process, idle server: p50 and p99.
2. Links endpoint, `GET /api/v1/daily-conversation-audio-recordings?utcDay=`: throughput and
   p50/p99 latency at 1, 10 and 50 concurrent keep-alive clients. Target: p50 at one client at
   most 2x the full lookup's p50 (the API caches the archive evidence by storage id, so a
   repeated request pays only the storage-id lookup: the second row of the lookup table, also
   reported as a ratio). With more clients, p50 includes queueing by construction (50 clients
   on 2 cores wait for each other); throughput is the figure there.
3. Download endpoint (signed link, limit check and audit in one transaction, S3 existence check,
   presigned 307) against the bare handler's 307, at 1 and 10 clients: throughput ratio. The
   links rotate over `--download-tenants` tenants with one archive each, so at the production
   limit (10 an hour per tenant) every measured request takes the granting path and reads what
   it reads in production.

The load generator is a minimal asyncio HTTP/1.1 client (one keep-alive connection per client)
so it takes as little of the two cores as possible from the server; it still shares the machine,
which the ratios absorb because both sides of each ratio are measured the same way.

Run::

    .venv/bin/python bench/api.py [--seconds 8] [--tenants 10] [--days 7]

Markdown tables for docs/BENCHMARKS.md go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import httpx
from litestar import Litestar, get
from litestar.response import Redirect
from minio import Minio
from stack import LINK_KEYS, elapsed, local_stack, progress, tenant_headers  # bench/stack.py

from recordings.catalog import ensure_tenant, register_recording, set_recording_settings
from recordings.db.engine import create_db_engine, session_scope
from recordings.keys import archive_key, archive_partition_key, day_hours
from recordings.links import LinkSigner, parse_link_keys
from recordings_api.archives.services import day_statuses
from recordings_cli.local_api import LocalApiServer, free_port
from recordings_cli.synth import FORMATS, write_conversation
from recordings_dagster.execution import materialize_day
from recordings_instance.archives import EvidenceCache, archive_asset_key

TENANT = "bench-tenant"
SOURCE_BUCKET = "bench-sources"
ARCHIVE_BUCKET = "bench-archives"
LINKS = "/api/v1/daily-conversation-audio-recordings"
BARE_PATH = "/bench/bare-redirect"


@get(BARE_PATH, include_in_schema=False, status_code=307)
async def bare_redirect() -> Redirect:
    """The same 307 the download endpoint answers, with nothing behind it: no link check, no
    database, no S3. Its throughput on the same server is the download endpoint's ceiling."""
    return Redirect("http://127.0.0.1:1/object", status_code=307)


def create_bench_app() -> Litestar:
    """The API app plus the bare handler; the benchmark's uvicorn factory (`api:...` with this
    folder on PYTHONPATH). Never deployed."""
    from recordings_api.app import create_app

    app = create_app()
    app.register(bare_redirect)
    return app


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class LoadResult:
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def p(self, fraction: float) -> float:
        return percentile(self.latencies, fraction) * 1000


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as the load generator saw them."""

    tag: int  # which request: its index in the caller's list
    started: float  # perf_counter seconds
    finished: float
    status: int
    headers: dict[str, str]  # names in lower case


def encode_requests(
    url: str, paths: Sequence[str], headers: dict[str, str], user_agent: str = "bench-api"
) -> list[bytes]:
    """Keep-alive HTTP/1.1 GET requests for `paths` on `url`'s host, ready to write."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    common = [f"Host: {host}:{port}", f"User-Agent: {user_agent}"]
    common += [f"{name}: {value}" for name, value in headers.items()]
    return [
        ("\r\n".join([f"GET {path} HTTP/1.1", *common]) + "\r\n\r\n").encode("latin-1")
        for path in paths
    ]


async def keep_alive_client(
    url: str,
    requests: Iterator[tuple[int, bytes]],
    stop_at: float,
    answered: Callable[[Exchange], None],
    timeout: float | None = None,
) -> None:
    """Send `requests` back to back on one keep-alive connection to `url` until `stop_at` (or
    until `requests` runs out), reporting each answer to `answered`; the body is read and
    dropped. A request that takes longer than `timeout` raises TimeoutError, a dropped
    connection OSError or IncompleteReadError: the caller decides what those mean."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    try:
        while time.perf_counter() < stop_at and (item := next(requests, None)) is not None:
            tag, request = item
            started = time.perf_counter()
            async with asyncio.timeout(timeout):
                writer.write(request)
                await writer.drain()
                status = int((await reader.readuntil(b"\r\n")).split()[1])
                headers: dict[str, str] = {}
                while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                if "transfer-encoding" in headers:
                    raise RuntimeError("chunked responses are not expected here")
                if length := int(headers.get("content-length", 0)):
                    await reader.readexactly(length)
            answered(Exchange(tag, started, time.perf_counter(), status, headers))
    finally:
        writer.close()


def load(
    url: str, paths: Sequence[str], headers: dict[str, str], clients: int, seconds: float
) -> LoadResult:
    """`clients` keep-alive connections requesting `paths` in turn, back to back, for
    `seconds` (after one second of warm-up that is not measured)."""
    # shared: one event loop, no locking needed
    requests = itertools.cycle(list(enumerate(encode_requests(url, paths, headers))))
    result = LoadResult(clients, seconds)

    async def run() -> None:
        now = time.perf_counter()
        measure_from, stop_at = now + 1.0, now + 1.0 + seconds

        def answered(exchange: Exchange) -> None:
            if exchange.started >= measure_from:
                result.latencies.append(exchange.finished - exchange.started)
                result.statuses[exchange.status] += 1

        await asyncio.gather(
            *(keep_alive_client(url, requests, stop_at, answered) for _ in range(clients))
        )

    asyncio.run(run())
    return result


def timed(call: Callable[[], object], repeats: int) -> list[float]:
    call()  # warm caches and connections
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def bench_source_key(hour: datetime) -> str:
    """Where `seed` registers the benchmark tenant's recording of `hour` (inside its prefix)."""
    return f"tenants/{TENANT}/bench/{hour.hour}.wav"


def seed(folder: Path, engine_url: str, background_tenants: int, day: date) -> None:
    engine = create_db_engine(engine_url)
    wav = folder / "call.wav"
    write_conversation(wav, FORMATS["wav-ulaw"], 5.0, 8000, 1, seed=3)
    with session_scope(engine) as session:
        for tenant in [TENANT, *(f"tenant-{i:04d}" for i in range(background_tenants))]:
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="bench", enabled=True)
        for hour in day_hours(day):
            register_recording(
                session,
                tenant_id=TENANT,
                conversation_id=f"c{hour.hour}",
                session_id=f"s{hour.hour}",
                recording_id=f"r{hour.hour}",
                bucket=SOURCE_BUCKET,
                object_key=bench_source_key(hour),
                started_at=hour + timedelta(minutes=7),
                duration_seconds=5.0,
                audio_format="WAV",
                channels=1,
            )
    engine.dispose()


def download_links(database_url: str, client: Minio, tenants: int, hour: datetime) -> list[str]:
    """Download-link paths for `tenants` tenants, one archive object each, so that the
    production limit (10 an hour per tenant) leaves every measured request on the granting path
    and each grant reads what it reads in production (at most 10 rows)."""
    engine = create_db_engine(database_url)
    names = [f"dl-{index:04d}" for index in range(tenants)]
    with session_scope(engine) as session:
        for tenant in names:
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="bench", enabled=True)
    engine.dispose()
    signer = LinkSigner(parse_link_keys(LINK_KEYS), "k1")
    expires = datetime.now(UTC) + timedelta(hours=1)
    paths = []
    for tenant in names:
        client.put_object(ARCHIVE_BUCKET, archive_key(tenant, hour), io.BytesIO(b"PK"), 2)
        link = signer.sign(tenant_id=tenant, hour=hour, expires_at=expires, issued_to="bench")
        paths.append(f"{LINKS}/downloads/{link}")
    return paths


def pad_event_log(instance: dg.DagsterInstance, tenants: int, days: int, today: date) -> int:
    """Materializations shaped like the pipeline's for other tenants and days."""
    count = 0
    for index in range(tenants):
        tenant = f"tenant-{index:04d}"
        for back in range(1, days + 1):
            for hour in day_hours(today - timedelta(days=back)):
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(
                        archive_asset_key(tenant),
                        partition=archive_partition_key(tenant, hour),
                        metadata={
                            "object_key": archive_key(tenant, hour),
                            "size_bytes": 123_456,
                            "sha256": "0" * 64,
                            "recording_count": 3,
                            "conversation_count": 2,
                            "failed_recording_count": 0,
                        },
                    )
                )
                count += 1
    return count


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per level")
    parser.add_argument("--tenants", type=int, default=10, help="other tenants in the event log")
    parser.add_argument("--days", type=int, default=7, help="days of their materializations")
    parser.add_argument("--repeats", type=int, default=300, help="lookup-alone repetitions")
    parser.add_argument(
        "--download-tenants",
        type=int,
        default=400,
        help="tenants the download links rotate over (10 grants an hour each)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    today = datetime.now(UTC).date()
    day = today - timedelta(days=1)
    print(f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, one API process.")
    with (
        tempfile.TemporaryDirectory(prefix="bench-api-") as name,
        local_stack(
            Path(name), source_bucket=SOURCE_BUCKET, archive_bucket=ARCHIVE_BUCKET
        ) as local,
    ):
        folder, client = local.folder, local.s3.client
        env = local.environment()
        os.environ.update(env)
        progress("seeding the database and archiving the benchmark day with the real job")
        seed(folder, local.database_url, args.tenants, day)
        for hour in day_hours(day):
            client.fput_object(SOURCE_BUCKET, bench_source_key(hour), str(folder / "call.wav"))
        with dg.DagsterInstance.get() as instance:
            (outcome,) = materialize_day(instance, day, [TENANT])
            if not outcome.success:
                raise SystemExit(f"the benchmark day failed to archive: {outcome.failure}")
            progress(f"padding the event log ({args.tenants} tenants x {args.days} days)")
            padded = pad_event_log(instance, args.tenants, args.days, today)
            progress("measuring the lookup alone")
            available = timed(lambda: day_statuses(instance, TENANT, day, 7), args.repeats)
            cache = EvidenceCache()
            cached = timed(
                lambda: day_statuses(instance, TENANT, day, 7, cache=cache), args.repeats
            )
            pending = timed(
                lambda: day_statuses(instance, TENANT, day - timedelta(days=2), 7),
                args.repeats,
            )
            statuses = Counter(s.status for s in day_statuses(instance, TENANT, day, 7))
        assert statuses == {"available": 24}, statuses
        progress("starting the API (uvicorn, one process)")
        with LocalApiServer(
            port=free_port(), env=env, log_path=folder / "api.log", factory="api:create_bench_app"
        ) as api:
            auth = tenant_headers(TENANT, subject="bench-client")
            links_path = f"{LINKS}?utcDay={day.isoformat()}"
            body = httpx.get(f"{api.url}{links_path}", headers=auth).json()
            assert urlsplit(body["hours"][0]["url"]).path.startswith(f"{LINKS}/downloads/")
            progress(f"{args.download_tenants} tenants with one archive each, for the downloads")
            download_paths = download_links(
                local.database_url, client, args.download_tenants, day_hours(day)[0]
            )
            links_results = []
            for clients in (1, 10, 50):
                progress(f"links endpoint, {clients} clients")
                links_results.append(load(api.url, [links_path], auth, clients, args.seconds))
            downloads, bares = [], []
            for clients in (1, 10):
                progress(f"download endpoint and bare handler, {clients} clients")
                downloads.append(load(api.url, download_paths, {}, clients, args.seconds))
                bares.append(load(api.url, [BARE_PATH], {}, clients, args.seconds))
            progress("stopping the API")
    report(available, cached, pending, links_results, downloads, bares, padded)


def report(
    available: list[float],
    cached: list[float],
    pending: list[float],
    links: list[LoadResult],
    downloads: list[LoadResult],
    bares: list[LoadResult],
    padded: int,
) -> None:
    lookup_p50 = statistics.median(available) * 1000
    print(f"\nEvent log: the benchmark day plus {padded} other materializations.\n")
    print("| Dagster lookup alone (in process) | p50 | p99 |")
    print("| --- | ---: | ---: |")
    rows = (
        ("day with 24 archived hours: storage ids + fetch_materializations", available),
        ("the same, evidence already cached (a repeated request)", cached),
        ("day with nothing archived: + planned-run lookup", pending),
    )
    for label, times in rows:
        print(
            f"| {label} | {statistics.median(times) * 1000:.1f} ms "
            f"| {percentile(times, 0.99) * 1000:.1f} ms |"
        )
    print("\n| links endpoint | requests/s | p50 | p99 | p50 / lookup p50 | statuses |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for result in links:
        print(
            f"| {result.clients} client{'s' if result.clients > 1 else ''} "
            f"| {result.throughput:.0f} | {result.p(0.5):.1f} ms | {result.p(0.99):.1f} ms "
            f"| {result.p(0.5) / lookup_p50:.2f} | {dict(result.statuses)} |"
        )
    print("\n| 307 answers | clients | requests/s | p50 | p99 | statuses |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for download, bare in zip(downloads, bares, strict=True):
        for label, result in (("download endpoint", download), ("bare handler", bare)):
            print(
                f"| {label} | {result.clients} | {result.throughput:.0f} | {result.p(0.5):.1f} ms "
                f"| {result.p(0.99):.1f} ms | {dict(result.statuses)} |"
            )
    one_client = links[0].p(0.5) / lookup_p50
    against_cached = links[0].p(0.5) / (statistics.median(cached) * 1000)
    verdict = "met" if one_client <= 2.0 else "NOT met"
    ratios = ", ".join(
        f"{d.throughput / b.throughput:.3f} at {d.clients} client{'s' if d.clients > 1 else ''}"
        for d, b in zip(downloads, bares, strict=True)
    )
    print(
        f"\nLinks p50 at one client / lookup p50: {one_client:.2f} (target <= 2.0: {verdict}); "
        f"/ cached lookup p50: {against_cached:.2f}. Download / bare throughput: {ratios}."
    )
    print(f"\n_Bench runtime: {elapsed():.0f} s._")


if __name__ == "__main__":
    main()
