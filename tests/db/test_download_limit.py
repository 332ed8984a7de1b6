"""The download limit holds under concurrency: exactly `limit` grants, across processes.

50 requests at once from two processes (25 threads each) against one database must yield
exactly 10 grants, on SQLite and on PostgreSQL, and every attempt must be in the audit log.
"""

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from recordings.db.engine import create_db_engine
from recordings.db.models import DownloadAuditEntry
from recordings.downloads import GRANTED, RATE_LIMITED, AttemptContext, try_grant_download

pytestmark = pytest.mark.integration


def _burst(url: str, tenant_id: str, requests: int) -> list[bool]:
    engine = create_db_engine(url, pool_size=requests, max_overflow=0)
    try:
        with ThreadPoolExecutor(max_workers=requests) as pool:
            decisions = list(
                pool.map(
                    lambda i: try_grant_download(
                        engine, AttemptContext(tenant_id, client_subject=f"client-{i}")
                    ),
                    range(requests),
                )
            )
        return [d.granted for d in decisions]
    finally:
        engine.dispose()


def _two_processes(url: str, tenant_id: str) -> int:
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        results = pool.starmap(_burst, [(url, tenant_id, 25), (url, tenant_id, 25)])
    return sum(granted for batch in results for granted in batch)


def _audit_counts(url: str, tenant_id: str) -> dict[str, int]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(DownloadAuditEntry.outcome, sa.func.count())
                .where(DownloadAuditEntry.tenant_id == tenant_id)
                .group_by(DownloadAuditEntry.outcome)
            )
            return {outcome: count for outcome, count in rows}
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.sqlite_run_only
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_fifty_concurrent_requests_from_two_processes_get_exactly_ten(
    dialect: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if dialect == "sqlite" else "postgres_url")
    assert _two_processes(url, "acme") == 10
    assert _audit_counts(url, "acme") == {GRANTED: 10, RATE_LIMITED: 40}
    # Another tenant's limit is its own.
    assert sum(_burst(url, "globex", 12)) == 10


def test_retry_after_says_when_the_oldest_grant_leaves_the_window(database_url: str) -> None:
    engine = create_db_engine(database_url)
    start = datetime(2025, 12, 13, 9, tzinfo=UTC)
    try:
        for minute in range(10):
            decision = try_grant_download(
                engine, AttemptContext("acme"), now=start + timedelta(minutes=minute)
            )
            assert decision.granted and decision.used == minute + 1
        refused = try_grant_download(
            engine, AttemptContext("acme"), now=start + timedelta(minutes=30)
        )
        assert not refused.granted
        assert refused.retry_after_seconds == 30 * 60  # the 09:00 grant leaves at 10:00
        later = try_grant_download(
            engine, AttemptContext("acme"), now=start + timedelta(hours=1, seconds=1)
        )
        assert later.granted
    finally:
        engine.dispose()
