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

A run of many tenant-days takes all its free leases in one transaction and gives recorded hours
back in batches, one tenant at a time; the refresher renews them all in one statement, and a
lease the refresher confirmed lately is known to be held without asking the database. So an
empty hour costs a share of a few statements, not three or four round trips of its own.

Runs waiting for each other cannot deadlock: every run builds and records its hours in the same
order (tenant, then hour), an hour this run holds is recorded without waiting for any other,
and a run that waits gives back every hour it has recorded meanwhile, at each poll.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.orm import Session

from recordings.catalog import TENANTS_PER_QUERY
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


RELEASE_BATCH = 96
"""Recorded hours given back in one statement (four tenant-days)."""


@dataclass
class HourLeases:
    """The leases one run holds, refreshed by a background thread until `close()`.

    A run of many tenant-days takes the leases of all its free hours in one transaction
    (`acquire_many`) and gives recorded hours back in batches (`release_later`); an hour held
    by another run is waited for alone (`acquire`), and before it waits this run gives back
    every hour it has finished, so two runs waiting for each other's hours always progress.
    """

    engine: sa.Engine
    holder: str
    holder_finished: Callable[[str], bool]
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    poll_seconds: float = 1.0
    on_wait: Callable[[str, datetime, str], None] | None = None
    """Called once per hour this run has to wait for: (tenant, hour, the holder's run id)."""
    _held: dict[tuple[str, datetime], float] = field(default_factory=dict)
    """Each held hour and when (`time.monotonic()`) the database last confirmed it ours."""
    _finished: set[tuple[str, datetime]] = field(default_factory=set)
    """Held hours whose materialization is recorded, to be given back in the next batch."""
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _abandon: threading.Event = field(default_factory=threading.Event)
    _refresher: threading.Thread | None = None

    def acquire_many(self, hours: Iterable[tuple[str, datetime]]) -> set[tuple[str, datetime]]:
        """Take every free lease among `hours` in one transaction; return the hours another
        run holds (each to be waited for with `acquire`). Stale leases and leases of finished
        runs are taken over, as by `try_acquire`."""
        wanted = sorted(set(hours) - set(self._held))
        if not wanted:
            return set()
        now = datetime.now(UTC)
        stale_before = now - timedelta(seconds=self.lease_seconds)
        busy: set[tuple[str, datetime]] = set()
        try:
            with exclusive_session(self.engine) as session:
                existing = _existing_leases(session, wanted)
                finished: dict[str, bool] = {}
                for key in wanted:
                    row = existing.get(key)
                    if row is None:
                        session.add(
                            ArchiveHourLease(
                                tenant_id=key[0],
                                hour=key[1],
                                holder=self.holder,
                                acquired_at=now,
                                renewed_at=now,
                            )
                        )
                        continue
                    if row.holder != self.holder:
                        if row.holder not in finished:
                            finished[row.holder] = self.holder_finished(row.holder)
                        if row.renewed_at >= stale_before and not finished[row.holder]:
                            busy.add(key)
                            continue
                        log.warning(
                            "taking over the lease of %s %s from %s (last refreshed %s)",
                            key[0],
                            key[1].isoformat(),
                            row.holder,
                            row.renewed_at.isoformat(),
                        )
                        row.holder = self.holder
                        row.acquired_at = now
                    row.renewed_at = now
        except sqlalchemy.exc.IntegrityError:
            # PostgreSQL: another run inserted one of these hours first. Nothing was taken;
            # each hour is acquired alone instead.
            return set(wanted)
        self._hold([key for key in wanted if key not in busy])
        return busy

    def acquire(self, tenant_id: str, hour: datetime) -> None:
        """Block until this run holds the hour's lease."""
        if (tenant_id, hour) in self._held:
            return
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
            # The other run may be waiting for an hour this run has finished with meanwhile.
            self.release_finished()
            if not announced and self.on_wait is not None:
                self.on_wait(tenant_id, hour, other)
            announced = True
            if self._abandon.wait(self.poll_seconds):
                raise LeaseWaitAbandonedError(
                    f"stopped waiting for {tenant_id} {hour.isoformat()}, held by run {other}"
                )
        self._hold([(tenant_id, hour)])

    def _hold(self, keys: list[tuple[str, datetime]]) -> None:
        confirmed = time.monotonic()
        with self._lock:
            self._held.update(dict.fromkeys(keys, confirmed))
            if self._refresher is None and self._held:
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
        taken over if this run stopped refreshing for longer than `lease_seconds`).

        Answered without a query while the refresher confirmed the lease less than half a
        lease ago: no other run may take a lease over before it is a whole lease old."""
        with self._lock:
            confirmed = self._held.get((tenant_id, hour))
        if confirmed is None:
            return False
        if time.monotonic() - confirmed < self.lease_seconds / 2:
            return True
        with exclusive_session(self.engine) as session:
            row = session.get(ArchiveHourLease, (tenant_id, hour))
            return row is not None and row.holder == self.holder

    def release(self, tenant_id: str, hour: datetime) -> None:
        """Give the hour back now."""
        self.release_later(tenant_id, hour)
        self.release_finished()

    def release_later(self, tenant_id: str, hour: datetime) -> None:
        """The hour's materialization is recorded: give it back with the next batch (when
        the run moves on to another tenant, at `RELEASE_BATCH` hours, while this run waits for
        another run's hour, or at `close`)."""
        with self._lock:
            if any(finished[0] != tenant_id for finished in self._finished):
                self.release_finished()  # a tenant's hours go back once it is done
            if (tenant_id, hour) in self._held:
                self._finished.add((tenant_id, hour))
            if len(self._finished) >= RELEASE_BATCH:
                self.release_finished()

    def release_finished(self) -> None:
        """Give back every finished hour in one statement per tenant. If the database cannot
        be reached the leases stay behind; the next run of those hours takes them over once
        this run has finished."""
        with self._lock:
            finished = sorted(self._finished)
            self._finished.clear()
            for key in finished:
                self._held.pop(key, None)
            if not finished:
                return
            by_tenant: dict[str, list[datetime]] = {}
            for tenant_id, hour in finished:
                by_tenant.setdefault(tenant_id, []).append(hour)
            try:
                with exclusive_session(self.engine) as session:
                    for tenant_id, hours in by_tenant.items():
                        session.execute(
                            sa.delete(ArchiveHourLease).where(
                                ArchiveHourLease.holder == self.holder,
                                ArchiveHourLease.tenant_id == tenant_id,
                                ArchiveHourLease.hour.in_(hours),
                            )
                        )
            except sqlalchemy.exc.SQLAlchemyError as exc:
                log.warning("could not release %d hour leases: %s", len(finished), exc)

    def close(self) -> None:
        """Stop refreshing and release what is still held (hours that failed)."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join()
        with self._lock:
            self._finished.update(self._held)
        self.release_finished()

    def _refresh_until_closed(self) -> None:
        interval = max(0.05, self.lease_seconds / 5)
        while not self._stop.wait(interval):
            with self._lock:
                if self._held:
                    self._refresh()

    def _refresh(self) -> None:
        """One statement for every lease this run holds; the leases count as confirmed only
        if the database still had every one of them (a lease taken over is then checked in
        the database by `holds`)."""
        started = time.monotonic()
        try:
            with exclusive_session(self.engine) as session:
                result = session.execute(
                    sa.update(ArchiveHourLease)
                    .where(ArchiveHourLease.holder == self.holder)
                    .values(renewed_at=datetime.now(UTC))
                )
                renewed = cast("sa.CursorResult[Any]", result).rowcount
        except sqlalchemy.exc.SQLAlchemyError as exc:  # a database blip: try again next interval
            log.warning("could not refresh %d hour leases: %s", len(self._held), exc)
            return
        if renewed == len(self._held):
            self._held.update(dict.fromkeys(self._held, started))


def _existing_leases(
    session: Session, keys: list[tuple[str, datetime]]
) -> dict[tuple[str, datetime], ArchiveHourLease]:
    """The lease rows of these hours, locked for update (one query per `TENANTS_PER_QUERY`
    tenants over the hours' span)."""
    wanted = set(keys)
    start = min(hour for _, hour in keys)
    end = max(hour for _, hour in keys)
    tenants = sorted({tenant_id for tenant_id, _ in keys})
    rows: dict[tuple[str, datetime], ArchiveHourLease] = {}
    for index in range(0, len(tenants), TENANTS_PER_QUERY):
        query = (
            sa.select(ArchiveHourLease)
            .where(
                ArchiveHourLease.tenant_id.in_(tenants[index : index + TENANTS_PER_QUERY]),
                ArchiveHourLease.hour >= start,
                ArchiveHourLease.hour <= end,
            )
            .with_for_update()
        )
        for row in session.scalars(query):
            if (row.tenant_id, row.hour) in wanted:
                rows[(row.tenant_id, row.hour)] = row
    return rows


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
