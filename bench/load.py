"""The download API under a bounded load: 200 clients against two API processes for a fixed time,
and whether the download limit and the audit log stay exact under it.

Everything is real and on loopback: a SeaweedFS S3 server, one SQLite application database and
one Dagster instance (the repository's `dagster.yaml`, SQLite) in which the real job archived a
tenant's day, and two uvicorn processes (`LocalApiServer`, started one after the other) sharing
both, as deployed. `--clients` keep-alive clients (the asyncio client of `bench/api.py`) are
split in half between the two endpoints and, within each endpoint, evenly between the processes:

- the links endpoint, `GET /api/v1/daily-conversation-audio-recordings?utcDay=`, for the
  archived day (24 available hours, 24 signed links per answer);
- the download endpoint, with signed links rotating over `--download-tenants` tenants that each
  have their own hour archive, so every tenant is asked far more often than its limit
  (`RECORDINGS_DOWNLOAD_LIMIT`, 10 per tenant in any rolling hour) and most answers are 429.

The clients send back to back for `--warmup` + `--seconds` seconds (at most `--max-requests`
requests in all), then finish what they sent. Throughput counts answers completed in the
measured seconds; latencies are of requests sent in them. The machine has 2 cores shared by the
two API processes, SeaweedFS and this load generator, so 200 clients mostly wait in the servers'
queues: throughput is the figure, and latency is mostly queueing by construction (about
clients / throughput), not service time (see `bench/api.py` for that).

Checked at the end, over every request (warm-up and the final drain included), and printed as
PASS/FAIL lines (the exit status is 1 if any fails): no 5xx and no transport error; every
answer expected (links 200, downloads 307 or 429); for every download tenant exactly
min(requests, limit) 307 answers, every other answer a 429 with Retry-After; the audit log
(`download_audit`) holding exactly one row per request with the outcome the client saw, and its
granted rows per tenant being min(rows, limit) within one window.

Peak memory: `VmHWM` of each API process over its life (startup included), and of this load
generator over the load only (its peak is reset through `/proc/self/clear_refs` first, since
seeding the day runs Dagster in this process). CPU seconds of each process during the load, and
the machine's busy cores, say how much of the two cores the API actually got: other work on the
machine lowers requests/s, and requests per API CPU second much less.

Run::

    .venv/bin/python bench/load.py [--clients 200] [--seconds 20] [--download-tenants 20]

Markdown for docs/BENCHMARKS.md goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import sqlalchemy as sa
from api import (
    ARCHIVE_BUCKET,
    LINKS,
    SOURCE_BUCKET,
    TENANT,
    Exchange,
    bench_source_key,
    download_links,
    encode_requests,
    keep_alive_client,
    percentile,
    seed,
)
from stack import local_stack, progress, tenant_headers  # bench/stack.py

from recordings.db.engine import create_db_engine, session_scope
from recordings.db.models import DownloadAuditEntry
from recordings.downloads import GRANTED, RATE_LIMITED
from recordings.keys import day_hours
from recordings_cli.local_api import LocalApiServer, free_port
from recordings_dagster.execution import materialize_day

USER_AGENT = "bench-load"
WINDOW = timedelta(hours=1)  # the limit's rolling window (recordings_api.settings)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients in all")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--processes", type=int, default=2, help="API processes")
    parser.add_argument(
        "--download-tenants", type=int, default=20, help="tenants the download links rotate over"
    )
    parser.add_argument("--limit", type=int, default=10, help="RECORDINGS_DOWNLOAD_LIMIT")
    parser.add_argument(
        "--max-requests", type=int, default=100_000, help="cap on requests in all (a bound)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    args = parser.parse_args(argv)
    if args.clients < 2 * args.processes:
        parser.error("--clients must give every process at least one client per endpoint")
    return args


@dataclass
class Endpoint:
    """One endpoint's requests (by tag: index into `paths`) and what came back."""

    name: str
    paths: list[str]
    expected: frozenset[int]
    sent: Counter[int] = field(default_factory=Counter)
    answers: list[tuple[int, Exchange]] = field(default_factory=list)  # (process, exchange)
    transport_errors: Counter[str] = field(default_factory=Counter)


@dataclass
class Budget:
    """The cap on requests in all, shared by every client (one event loop: no lock needed)."""

    left: int


@dataclass(frozen=True)
class Check:
    passed: bool
    name: str
    detail: str


@dataclass
class ProcessFigures:
    label: str
    pid: int
    rss_before_kb: int
    peak_kb: int  # VmHWM
    cpu_seconds: float  # user + system during the load
    answered: Counter[str] = field(default_factory=Counter)  # endpoint -> answers


@dataclass
class LoadReport:
    args: argparse.Namespace
    measure_from: float
    stop_at: float
    finished_at: float
    endpoints: list[Endpoint]
    processes: list[ProcessFigures]
    machine_busy_seconds: float  # CPU seconds of every core during the load, all processes
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def _proc_kb(pid: int | str, name: str) -> int:
    """A `kB` figure (VmRSS, VmHWM) from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {name}")


def _cpu_seconds(pid: int | str) -> float:
    """User + system CPU seconds of one process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU seconds every core spent busy (anything but idle and iowait) since boot."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _reset_own_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux 4.0+); False if refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """`values` in os.environ (the job's resources read it) for the block only."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _requests(
    endpoint: Endpoint, tags: Iterator[int], encoded: list[bytes], budget: Budget
) -> Iterator[tuple[int, bytes]]:
    # Counted when handed to the client, right before it is written: a request whose answer
    # never comes (a transport error) is still counted as sent.
    for tag in tags:
        if budget.left <= 0:
            return
        budget.left -= 1
        endpoint.sent[tag] += 1
        yield tag, encoded[tag]


async def _client(
    url: str,
    process: int,
    endpoint: Endpoint,
    requests: Iterator[tuple[int, bytes]],
    stop_at: float,
    timeout: float,
) -> None:
    def answered(exchange: Exchange) -> None:
        endpoint.answers.append((process, exchange))

    while time.perf_counter() < stop_at:
        try:
            await keep_alive_client(url, requests, stop_at, answered, timeout)
            return
        except (OSError, EOFError, TimeoutError) as exc:  # EOFError: IncompleteReadError
            endpoint.transport_errors[type(exc).__name__] += 1
            await asyncio.sleep(0.1)  # then a new connection, like a client that retries


def generate_load(
    urls: Sequence[str],
    endpoints: Sequence[Endpoint],
    headers: Sequence[dict[str, str]],
    args: argparse.Namespace,
) -> tuple[float, float, float]:
    """Run every client to the end; return (measure_from, stop_at, finished_at)."""
    budget = Budget(args.max_requests)
    per_endpoint = args.clients // len(endpoints)

    async def run() -> tuple[float, float, float]:
        now = time.perf_counter()
        measure_from = now + args.warmup
        stop_at = measure_from + args.seconds
        clients = []
        for endpoint, extra in zip(endpoints, headers, strict=True):
            tags = itertools.cycle(range(len(endpoint.paths)))  # shared by the endpoint's clients
            encoded = [encode_requests(url, endpoint.paths, extra, USER_AGENT) for url in urls]
            for index in range(per_endpoint):
                process = index % len(urls)
                requests = _requests(endpoint, tags, encoded[process], budget)
                clients.append(
                    _client(urls[process], process, endpoint, requests, stop_at, args.timeout)
                )
        await asyncio.gather(*clients)
        return measure_from, stop_at, time.perf_counter()

    return asyncio.run(run())


def _audit_counts(database_url: str, after_id: int) -> Counter[tuple[str, str | None, str, int]]:
    """(action, tenant, outcome, status) -> rows, for the rows after `after_id`."""
    engine = create_db_engine(database_url)
    entry = DownloadAuditEntry
    try:
        with session_scope(engine) as session:
            rows = session.execute(
                sa.select(
                    entry.action, entry.tenant_id, entry.outcome, entry.status_code, sa.func.count()
                )
                .where(entry.id > after_id)
                .group_by(entry.action, entry.tenant_id, entry.outcome, entry.status_code)
            ).all()
    finally:
        engine.dispose()
    return Counter({(a, t, o, s): n for a, t, o, s, n in rows})


def _grant_spans(database_url: str, after_id: int) -> dict[str, timedelta]:
    """Per tenant, the time between its first and last granted download."""
    engine = create_db_engine(database_url)
    entry = DownloadAuditEntry
    spans: dict[str, timedelta] = {}
    try:
        with session_scope(engine) as session:
            rows = session.execute(
                sa.select(entry.tenant_id, entry.occurred_at).where(
                    entry.id > after_id, entry.action == "download", entry.outcome == GRANTED
                )
            ).all()
        times: dict[str, list[datetime]] = defaultdict(list)
        for tenant, occurred in rows:
            times[tenant or ""].append(occurred)
        spans = {tenant: max(ts) - min(ts) for tenant, ts in times.items()}
    finally:
        engine.dispose()
    return spans


def _max_audit_id(database_url: str) -> int:
    engine = create_db_engine(database_url)
    try:
        with session_scope(engine) as session:
            return session.scalar(sa.select(sa.func.max(DownloadAuditEntry.id))) or 0
    finally:
        engine.dispose()


def check(
    links: Endpoint,
    downloads: Endpoint,
    tenants: Sequence[str],
    limit: int,
    audit: Counter[tuple[str, str | None, str, int]],
    grant_spans: Mapping[str, timedelta],
) -> list[Check]:
    """The PASS/FAIL checks over every request of the run."""
    checks = []
    endpoints = (links, downloads)
    server_errors = sum(1 for e in endpoints for _, x in e.answers if x.status >= 500)
    checks.append(Check(server_errors == 0, "no 5xx answers", f"{server_errors} 5xx"))
    transport = sum(sum(e.transport_errors.values()) for e in endpoints)
    unanswered = sum(e.sent.total() for e in endpoints) - sum(len(e.answers) for e in endpoints)
    checks.append(
        Check(
            transport == 0 and unanswered == 0,
            "no transport errors",
            f"{transport} errors, {unanswered} requests sent but never answered",
        )
    )
    unexpected = Counter(
        f"{e.name} {x.status}"
        for e in endpoints
        for _, x in e.answers
        if x.status not in e.expected
    )
    checks.append(
        Check(
            not unexpected,
            "every answer expected (links 200; downloads 307 or 429)",
            ", ".join(f"{k}: {n}" for k, n in sorted(unexpected.items())) or "all expected",
        )
    )

    seen: dict[int, Counter[int]] = defaultdict(Counter)
    bad_retry = 0
    for _, exchange in downloads.answers:
        seen[exchange.tag][exchange.status] += 1
        if exchange.status == 429:
            retry = exchange.headers.get("retry-after", "")
            if not (retry.isdigit() and 1 <= int(retry) <= WINDOW.total_seconds()):
                bad_retry += 1
    sent = [downloads.sent[tag] for tag in range(len(tenants))]
    below = [tenants[tag] for tag in range(len(tenants)) if sent[tag] <= limit]
    checks.append(
        Check(
            not below,
            "the limit was exercised: every download tenant was asked more than the limit",
            f"requests per tenant {min(sent, default=0)}-{max(sent, default=0)}, limit {limit}"
            + (f"; not past it: {', '.join(below)}" if below else ""),
        )
    )
    wrong_grants = [
        f"{tenants[tag]}: {seen[tag][307]} of {sent[tag]}"
        for tag in range(len(tenants))
        if seen[tag][307] != min(sent[tag], limit)
    ]
    checks.append(
        Check(
            not wrong_grants,
            "per tenant, 307 answers == min(requests, limit)",
            "; ".join(wrong_grants) or f"{sum(s[307] for s in seen.values())} grants in all",
        )
    )
    others = sum(s.total() - s[307] for s in seen.values())
    refused = sum(s[429] for s in seen.values())
    checks.append(
        Check(
            others == refused and bad_retry == 0,
            "every other download answer is 429 with Retry-After in 1..3600 s",
            f"{refused} of {others} are 429; {bad_retry} without a valid Retry-After",
        )
    )

    audit_mismatch = []
    for tag, tenant in enumerate(tenants):
        rows = {
            (outcome, status): n
            for (action, t, outcome, status), n in audit.items()
            if action == "download" and t == tenant
        }
        answered = {(GRANTED, 307): seen[tag][307], (RATE_LIMITED, 429): seen[tag][429]}
        answered = {key: n for key, n in answered.items() if n}
        if rows != answered or sum(rows.values()) != sent[tag]:
            audit_mismatch.append(f"{tenant}: audit {rows}, answers {answered}, sent {sent[tag]}")
    strays = {
        key: n for key, n in audit.items() if key[0] == "download" and key[1] not in set(tenants)
    }
    if strays:
        audit_mismatch.append(f"rows for other tenants: {strays}")
    download_rows = sum(n for key, n in audit.items() if key[0] == "download")
    checks.append(
        Check(
            not audit_mismatch,
            "audit: one download row per request, with the outcome the client saw",
            "; ".join(audit_mismatch)
            or f"{download_rows} rows for {downloads.sent.total()} requests",
        )
    )
    limit_by_log = []
    for tenant in tenants:
        granted = audit[("download", tenant, GRANTED, 307)]
        rows = granted + audit[("download", tenant, RATE_LIMITED, 429)]
        if granted != min(rows, limit) or grant_spans.get(tenant, timedelta()) >= WINDOW:
            limit_by_log.append(f"{tenant}: {granted} granted of {rows}")
    checks.append(
        Check(
            not limit_by_log,
            "audit: per tenant, granted rows == min(rows, limit), all inside one window",
            "; ".join(limit_by_log) or "exact for every tenant",
        )
    )
    link_rows = {key: n for key, n in audit.items() if key[0] == "list_links"}
    listed = sum(1 for _, x in links.answers if x.status == 200)
    expected_rows = {("list_links", TENANT, "listed", 200): listed} if listed else {}
    checks.append(
        Check(
            link_rows == expected_rows and listed == links.sent.total(),
            "audit: one list_links row per links request, outcome listed",
            f"{sum(link_rows.values())} rows for {links.sent.total()} requests, "
            f"{listed} answered 200",
        )
    )
    return checks


def run(args: argparse.Namespace) -> LoadReport:
    """Set everything up, run the load, check; the servers are stopped on the way out."""
    day = datetime.now(UTC).date() - timedelta(days=1)
    with (
        tempfile.TemporaryDirectory(prefix="bench-load-") as name,
        contextlib.ExitStack() as stack,
    ):
        local = stack.enter_context(
            local_stack(Path(name), source_bucket=SOURCE_BUCKET, archive_bucket=ARCHIVE_BUCKET)
        )
        folder, client, database_url = local.folder, local.s3.client, local.database_url
        env = {**local.environment(), "RECORDINGS_DOWNLOAD_LIMIT": str(args.limit)}
        progress("seeding the database and archiving a day with the real job")
        seed(folder, database_url, 0, day)
        for hour in day_hours(day):
            client.fput_object(SOURCE_BUCKET, bench_source_key(hour), str(folder / "call.wav"))
        with _environment(env), dg.DagsterInstance.get() as instance:
            (outcome,) = materialize_day(instance, day, [TENANT])
        if not outcome.success:
            raise SystemExit(f"the day failed to archive: {outcome.failure}")
        progress(f"{args.download_tenants} tenants with one hour archive each, for the downloads")
        download_paths = download_links(
            database_url, client, args.download_tenants, day_hours(day)[0]
        )
        tenants = [f"dl-{index:04d}" for index in range(args.download_tenants)]

        servers = []
        # One after the other: starting two at once on a fresh SQLite Dagster home races.
        for index in range(args.processes):
            progress(f"starting API process {index + 1} of {args.processes}")
            server = LocalApiServer(port=free_port(), env=env, log_path=folder / f"api-{index}.log")
            stack.callback(server.stop)
            server.start()
            server.wait_ready()
            servers.append(server)
        auth = tenant_headers(TENANT, subject="bench-load")
        links_path = f"{LINKS}?utcDay={day.isoformat()}"
        for server in servers:
            hours = httpx.get(f"{server.url}{links_path}", headers=auth, timeout=60).json()["hours"]
            assert [h["status"] for h in hours] == ["available"] * 24, hours
        baseline_id = _max_audit_id(database_url)
        rss_before = [_proc_kb(server.pid, "VmRSS") for server in servers]
        own_before = _proc_kb("self", "VmRSS")
        own_reset = _reset_own_peak()
        s3_pid = local.s3.server.running_pid() or 0
        pids: list[int | str] = [*(server.pid for server in servers), "self", s3_pid]
        cpu_before = [_cpu_seconds(pid) for pid in pids]
        machine_before = _machine_busy_seconds()

        links = Endpoint("links", [links_path], frozenset({200}))
        downloads = Endpoint("downloads", download_paths, frozenset({307, 429}))
        progress(
            f"{args.clients} clients on {args.processes} processes for "
            f"{args.warmup:g} + {args.seconds:g} s"
        )
        measure_from, stop_at, finished_at = generate_load(
            [server.url for server in servers], [links, downloads], [auth, {}], args
        )
        machine_busy = _machine_busy_seconds() - machine_before
        cpu = [_cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
        progress(f"load done ({finished_at - stop_at:.1f} s to drain); checking")
        processes = [
            ProcessFigures(f"API process {i + 1}", s.pid, before, _proc_kb(s.pid, "VmHWM"), cpu[i])
            for i, (s, before) in enumerate(zip(servers, rss_before, strict=True))
        ]
        processes.append(
            ProcessFigures(
                "load generator" + ("" if own_reset else " (peak over the whole bench)"),
                os.getpid(),
                own_before,
                _proc_kb("self", "VmHWM"),
                cpu[-2],
            )
        )
        processes.append(
            ProcessFigures("SeaweedFS (S3)", s3_pid, 0, _proc_kb(s3_pid, "VmHWM"), cpu[-1])
        )
        for endpoint_ in (links, downloads):
            for process, _ in endpoint_.answers:
                processes[process].answered[endpoint_.name] += 1
        # Stopped (gracefully: in-flight requests finish) before the audit is read.
        for server in servers:
            server.stop()
        audit = _audit_counts(database_url, baseline_id)
        spans = _grant_spans(database_url, baseline_id)
        checks = check(links, downloads, tenants, args.limit, audit, spans)
    return LoadReport(
        args,
        measure_from,
        stop_at,
        finished_at,
        [links, downloads],
        processes,
        machine_busy,
        checks,
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def render(report: LoadReport) -> str:
    """The report as Markdown."""
    args = report.args
    lines = [
        f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}. {args.clients} "
        f"keep-alive clients ({args.clients // 2} per endpoint, split evenly over "
        f"{args.processes} API processes), {args.warmup:g} s warm-up + {args.seconds:g} s "
        f"measured; download links over {args.download_tenants} tenants, limit {args.limit} "
        "per tenant per rolling hour; one SQLite database and one Dagster instance (SQLite).",
        "",
        "| endpoint | requests | requests/s | p50 | p99 | max | statuses | error rate | 5xx "
        "| transport errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    seconds = report.stop_at - report.measure_from
    for endpoint in report.endpoints:
        measured = [
            x for _, x in endpoint.answers if report.measure_from <= x.started < report.stop_at
        ]
        done = sum(
            1 for _, x in endpoint.answers if report.measure_from <= x.finished < report.stop_at
        )
        latencies = [x.finished - x.started for x in measured] or [0.0]
        statuses = Counter(x.status for x in measured)
        unexpected = sum(n for status, n in statuses.items() if status not in endpoint.expected)
        errors = ", ".join(f"{k}: {n}" for k, n in endpoint.transport_errors.items()) or "0"
        lines.append(
            f"| {endpoint.name} | {len(measured):,} | {done / seconds:.1f} "
            f"| {_ms(percentile(latencies, 0.5))} | {_ms(percentile(latencies, 0.99))} "
            f"| {_ms(max(latencies))} "
            f"| {', '.join(f'{s}: {n:,}' for s, n in sorted(statuses.items()))} "
            f"| {unexpected / max(1, len(measured)):.2%} "
            f"| {sum(n for s, n in statuses.items() if s >= 500)} | {errors} |"
        )
    total = sum(e.sent.total() for e in report.endpoints)
    lines += [
        "",
        "Requests are those sent in the measured seconds; requests/s counts answers completed in "
        "them; the error rate counts answers other than the expected ones (links 200; downloads "
        "307 or 429: past the limit, 429 is the right answer). Latency is mostly queueing: "
        f"{args.clients} clients on 2 cores. In all, warm-up and drain included: {total:,} "
        f"requests, the last answered {report.finished_at - report.stop_at:.1f} s after the end.",
        "",
        "| process | answered (links / downloads) | CPU during the load | RSS before the load "
        "| peak RSS (VmHWM) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    wall = report.finished_at - (report.measure_from - args.warmup)
    for process in report.processes:
        answered = (
            f"{process.answered['links']:,} / {process.answered['downloads']:,}"
            if process.answered
            else "-"
        )
        before = f"{process.rss_before_kb / 1024:.1f} MB" if process.rss_before_kb else "-"
        lines.append(
            f"| {process.label} | {answered} "
            f"| {process.cpu_seconds:.1f} s ({process.cpu_seconds / wall:.2f} cores) "
            f"| {before} | {process.peak_kb / 1024:.1f} MB |"
        )
    ours = sum(process.cpu_seconds for process in report.processes)
    api = [p for p in report.processes if p.answered]
    answers = sum(p.answered.total() for p in api)
    lines += [
        "",
        f"During the load ({wall:.1f} s, warm-up and drain included) the machine's "
        f"{os.cpu_count()} cores were busy {report.machine_busy_seconds / wall:.2f} cores on "
        f"average: this bench's processes {ours / wall:.2f}, everything else "
        f"{max(0.0, report.machine_busy_seconds - ours) / wall:.2f}. The API processes answered "
        f"{answers / max(0.01, sum(p.cpu_seconds for p in api)):.0f} requests per CPU second "
        "of theirs (a figure less sensitive to the machine's other load than requests/s).",
        "",
    ]
    lines += [f"{'PASS' if c.passed else 'FAIL'}: {c.name} ({c.detail})" for c in report.checks]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(render(report))
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
