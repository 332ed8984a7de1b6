"""One run builds a tenant-hour at a time: leases in the application database.

A backfill overlapping the nightly run, an operator's manual re-run or a late-recordings rebuild
can put two runs on the same hour. Each upload is atomic, so the object at the key is always
one complete archive, but without coordination it need not be the archive whose evidence
(size, SHA-256, recordings) Dagster recorded last: run A uploads, run B uploads and records,
then A records. The API and the integrity checks would then vouch for bytes that are not there.

So a run takes the hour's lease before selecting its recordings and gives it back only once its
materialization is recorded; a second run waits for it (and then builds the hour again, from
what the database holds by then). The holder refreshes the lease while it works. A lease is
taken over when its holder's run has finished (failed, canceled: `holder_finished`) or it has
not been refreshed for `lease_seconds` (a worker killed with SIGKILL refreshes nothing). The
refreshes double as the worker's heartbeat: `silent_holders` finds runs whose worker is gone
while Dagster still shows them started (the default run launcher cannot check its workers), and
the stalled-runs sensor fails them so that their retry comes.

Lock order cannot deadlock: a run releases hour `k` after recording hours `< k` only, and every
run orders its hours the same way (sorted partition keys).
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.orm import Session

from recordings.db.engine import exclusive_session
from recordings.db.models import ArchiveHourLease

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 300
"""How long a lease lives without being refreshed (the holder refreshes it every fifth of this)."""


class LeaseLostError(RuntimeError):
    """Another run took over an hour this run was building (this run stopped refreshing)."""


class LeaseWaitAbandonedError(RuntimeError):
    """This run stopped waiting for an hour another run holds (it is failing or canceled)."""


def try_acquire(
    session: Session,
    tenant_id: str,
    hour: datetime,
    holder: str,
    *,
    now: datetime,
    stale_after: timedelta,
    holder_finished: Callable[[str], bool],
) -> str | None:
    """Take the hour's lease for `holder`; None if taken, else the run that holds it.

    Call in an `exclusive_session` (SQLite's write lock; on PostgreSQL the row lock below, and a
    concurrent first insert fails with IntegrityError, which the caller retries).
    """
    row = session.get(ArchiveHourLease, (tenant_id, hour), with_for_update=True)
    if row is None:
        session.add(
            ArchiveHourLease(
                tenant_id=tenant_id, hour=hour, holder=holder, acquired_at=now, renewed_at=now
            )
        )
        session.flush()
        return None
    if row.holder != holder:
        if row.renewed_at >= now - stale_after and not holder_finished(row.holder):
            return row.holder
        log.warning(
            "taking over the lease of %s %s from %s (last refreshed %s)",
            tenant_id,
            hour.isoformat(),
            row.holder,
            row.renewed_at.isoformat(),
        )
        row.holder = holder
        row.acquired_at = now
    row.renewed_at = now
    return None


@dataclass
class HourLeases:
    """The leases one run holds, refreshed by a background thread until `close()`."""

    engine: sa.Engine
    holder: str
    holder_finished: Callable[[str], bool]
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    poll_seconds: float = 1.0
    on_wait: Callable[[str, datetime, str], None] | None = None
    """Called once per hour this run has to wait for: (tenant, hour, the holder's run id)."""
    _held: set[tuple[str, datetime]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _abandon: threading.Event = field(default_factory=threading.Event)
    _refresher: threading.Thread | None = None

    def acquire(self, tenant_id: str, hour: datetime) -> None:
        """Block until this run holds the hour's lease."""
        announced = False
        while True:
            try:
                with exclusive_session(self.engine) as session:
                    other = try_acquire(
                        session,
                        tenant_id,
                        hour,
                        self.holder,
                        now=datetime.now(UTC),
                        stale_after=timedelta(seconds=self.lease_seconds),
                        holder_finished=self.holder_finished,
                    )
            except sqlalchemy.exc.IntegrityError:  # PostgreSQL: another run inserted it first
                other = "another run"
            if other is None:
                break
            if not announced and self.on_wait is not None:
                self.on_wait(tenant_id, hour, other)
                announced = True
            if self._abandon.wait(self.poll_seconds):
                raise LeaseWaitAbandonedError(
                    f"stopped waiting for {tenant_id} {hour.isoformat()}, held by run {other}"
                )
        with self._lock:
            self._held.add((tenant_id, hour))
            if self._refresher is None:
                self._refresher = threading.Thread(
                    target=self._refresh_until_closed, name="hour-leases", daemon=True
                )
                self._refresher.start()

    def abandon_waits(self) -> None:
        """Make every `acquire` still waiting give up (the run is stopping: a cancel must not
        wait for another run's hour). Leases already held are kept until `close()`."""
        self._abandon.set()

    def holds(self, tenant_id: str, hour: datetime) -> bool:
        """Whether the database still names this run as the hour's holder (it could have been
        taken over if this run stopped refreshing for longer than `lease_seconds`)."""
        with exclusive_session(self.engine) as session:
            row = session.get(ArchiveHourLease, (tenant_id, hour))
            return row is not None and row.holder == self.holder

    def release(self, tenant_id: str, hour: datetime) -> None:
        """Give the hour back. If the database cannot be reached the lease stays behind; the
        next run of the hour takes it over once this run has finished."""
        with self._lock:
            self._held.discard((tenant_id, hour))
        try:
            with exclusive_session(self.engine) as session:
                session.execute(
                    sa.delete(ArchiveHourLease).where(
                        ArchiveHourLease.tenant_id == tenant_id,
                        ArchiveHourLease.hour == hour,
                        ArchiveHourLease.holder == self.holder,
                    )
                )
        except sqlalchemy.exc.SQLAlchemyError as exc:
            log.warning("could not release the lease of %s %s: %s", tenant_id, hour, exc)

    def close(self) -> None:
        """Stop refreshing and release what is still held (hours that failed)."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join()
        with self._lock:
            held = sorted(self._held)
        for tenant_id, hour in held:
            self.release(tenant_id, hour)

    def _refresh_until_closed(self) -> None:
        interval = max(0.05, self.lease_seconds / 5)
        while not self._stop.wait(interval):
            with self._lock:
                held = sorted(self._held)
            if not held:
                continue
            try:
                with exclusive_session(self.engine) as session:
                    for tenant_id, hour in held:
                        session.execute(
                            sa.update(ArchiveHourLease)
                            .where(
                                ArchiveHourLease.tenant_id == tenant_id,
                                ArchiveHourLease.hour == hour,
                                ArchiveHourLease.holder == self.holder,
                            )
                            .values(renewed_at=datetime.now(UTC))
                        )
            except (
                sqlalchemy.exc.SQLAlchemyError
            ) as exc:  # a database blip: try again next interval
                log.warning("could not refresh %d hour leases: %s", len(held), exc)


@dataclass(frozen=True)
class SilentHolder:
    """A run holding hour leases that it has not refreshed lately."""

    holder: str
    last_renewed_at: datetime
    hours: int


def silent_holders(session: Session, *, now: datetime, silent_for: timedelta) -> list[SilentHolder]:
    """Runs whose every lease went unrefreshed for `silent_for`: their worker has stopped
    (killed, out of memory, lost node), since a live one refreshes every fifth of a lease."""
    last = sa.func.max(ArchiveHourLease.renewed_at)
    rows = session.execute(
        sa.select(ArchiveHourLease.holder, last, sa.func.count())
        .group_by(ArchiveHourLease.holder)
        .having(last < now - silent_for)
        .order_by(ArchiveHourLease.holder)
    ).all()
    return [SilentHolder(holder, renewed, count) for holder, renewed, count in rows]
