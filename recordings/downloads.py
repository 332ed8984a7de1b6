"""The download rate limit and the audit log, in one atomic step.

Clients may download at most `limit` archives per tenant in any rolling `window` (10 per hour by
the specification). Counting and recording must be one atomic step across every API process, or
50 simultaneous requests could all read "9 so far" and all pass. The count and the audit row
share a transaction that first takes a lock: SQLite's write lock (BEGIN IMMEDIATE) or a
PostgreSQL transaction-scoped advisory lock per tenant. The granted rows of the audit log are
the counter, so the limit and the evidence cannot disagree.
"""

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recordings.db.engine import exclusive_session
from recordings.db.models import DownloadAuditEntry, utcnow

GRANTED = "granted"
RATE_LIMITED = "rate_limited"
DEFAULT_LIMIT = 10
DEFAULT_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class DownloadDecision:
    granted: bool
    used: int  # granted downloads in the window (at most `limit`), this one included if granted
    limit: int
    retry_after_seconds: int  # 0 when granted


@dataclass(frozen=True)
class AttemptContext:
    """Who asked, from where: what the audit log records besides the decision."""

    tenant_id: str
    client_subject: str | None = None
    hour: datetime | None = None
    utc_day: date | None = None
    object_key: str | None = None
    client_address: str | None = None
    user_agent: str | None = None


def _lock_tenant(session: Session, tenant_id: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:tenant, 0))"),
            {"tenant": f"download-limit:{tenant_id}"},
        )
    # SQLite: the transaction already holds the database's write lock (BEGIN IMMEDIATE).


def _text(value: str | None, limit: int) -> str | None:
    """Text as the audit log stores it: at most `limit` characters, NUL bytes (which
    PostgreSQL text cannot hold) made visible as U+FFFD rather than failing the request."""
    if not value:
        return None
    return value.replace("\x00", "\ufffd")[:limit]


def audit(
    session: Session,
    context: AttemptContext,
    *,
    action: str,
    outcome: str,
    status: int,
    now: datetime | None = None,
) -> None:
    """Append one entry to the audit log (in the caller's transaction)."""
    session.add(
        DownloadAuditEntry(
            occurred_at=now or utcnow(),
            action=action,
            tenant_id=context.tenant_id or None,
            client_subject=_text(context.client_subject, 200),
            utc_day=context.utc_day,
            hour=context.hour,
            object_key=context.object_key,
            outcome=outcome,
            status_code=status,
            client_address=_text(context.client_address, 64),
            user_agent=_text(context.user_agent, 400),
        )
    )


def record_attempt(
    engine: sa.Engine, context: AttemptContext, *, action: str, outcome: str, status: int
) -> None:
    """Append one entry to the audit log in its own short transaction."""
    with exclusive_session(engine) as session:
        audit(session, context, action=action, outcome=outcome, status=status)


def try_grant_download(
    engine: sa.Engine,
    context: AttemptContext,
    *,
    limit: int = DEFAULT_LIMIT,
    window: timedelta = DEFAULT_WINDOW,
    now: datetime | None = None,
) -> DownloadDecision:
    """Count the tenant's granted downloads in the window and grant or refuse this one,
    auditing the decision, atomically across processes."""
    with exclusive_session(engine) as session:
        _lock_tenant(session, context.tenant_id)
        # The clock is read under the lock, so grant times follow the order in which grants
        # were decided; read before it, a request that waited could record an older time
        # than a grant it came after, and the rolling window would be off by that wait.
        moment = now or utcnow()
        since = moment - window
        # The `limit`-th most recent grant in the window decides: if there is none, fewer than
        # `limit` were granted and this one fits; if there is, this one fits only once that
        # grant leaves the window. One index range read of at most `limit` rows, whatever the
        # configured limit or the size of the log.
        recent = list(
            session.scalars(
                sa.select(DownloadAuditEntry.occurred_at)
                .where(
                    DownloadAuditEntry.tenant_id == context.tenant_id,
                    DownloadAuditEntry.outcome == GRANTED,
                    DownloadAuditEntry.occurred_at > since,
                )
                .order_by(DownloadAuditEntry.occurred_at.desc())
                .limit(limit)
            )
        )
        if len(recent) < limit:
            audit(session, context, action="download", outcome=GRANTED, status=307, now=moment)
            return DownloadDecision(True, len(recent) + 1, limit, 0)
        frees_at = recent[-1] + window
        retry_after = max(1, math.ceil((frees_at - moment).total_seconds()))
        audit(session, context, action="download", outcome=RATE_LIMITED, status=429, now=moment)
        return DownloadDecision(False, len(recent), limit, retry_after)


@dataclass(frozen=True)
class AuditQuery:
    """A page of the audit log, newest first. `tenant_id=None` reads every tenant (host only);
    `before_id` continues from the previous page's last entry."""

    tenant_id: str | None
    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    outcome: str | None = None
    before_id: int | None = None
    limit: int = 100


def read_audit(session: Session, query: AuditQuery) -> list[DownloadAuditEntry]:
    """The entries matching `query`, newest first, at most `query.limit`."""
    statement = sa.select(DownloadAuditEntry)
    if query.tenant_id is not None:
        statement = statement.where(DownloadAuditEntry.tenant_id == query.tenant_id)
    if query.since is not None:
        statement = statement.where(DownloadAuditEntry.occurred_at >= query.since)
    if query.until is not None:
        statement = statement.where(DownloadAuditEntry.occurred_at < query.until)
    if query.action is not None:
        statement = statement.where(DownloadAuditEntry.action == query.action)
    if query.outcome is not None:
        statement = statement.where(DownloadAuditEntry.outcome == query.outcome)
    if query.before_id is not None:
        statement = statement.where(DownloadAuditEntry.id < query.before_id)
    statement = statement.order_by(DownloadAuditEntry.id.desc()).limit(query.limit)
    return list(session.scalars(statement))
