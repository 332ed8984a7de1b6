"""The latest failed attempt at each tenant-hour's archive (`archive_hour_failures`).

Recorded in bulk when a run could not archive some of its hours (by the run itself, and by the
archive-failures sensor for a run that died before it could say), read by the API to tell a
tenant that a missing hour `failed` rather than is `pending`. Only failures are written, so a
night without any costs nothing here.
"""

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recordings.db.models import MAX_RETENTION_DAYS, ArchiveHourFailure
from recordings.keys import hour_start

MAX_CAUSE_LENGTH = 2000
KEPT_FOR = timedelta(days=MAX_RETENTION_DAYS + 2)
"""Rows of hours older than this are pruned: no archive of such an hour can exist any more."""


@dataclass(frozen=True)
class HourFailure:
    tenant_id: str
    hour: datetime
    run_id: str
    cause: str


def record_hour_failures(session: Session, failures: Iterable[HourFailure], now: datetime) -> int:
    """Make each failure its hour's latest (replacing an earlier one); prune rows of hours too
    old to matter. Returns how many were recorded."""
    latest = {(f.tenant_id, hour_start(f.hour)): f for f in failures}
    by_tenant: dict[str, list[datetime]] = {}
    for tenant_id, hour in latest:
        by_tenant.setdefault(tenant_id, []).append(hour)
    for tenant_id, hours in by_tenant.items():
        session.execute(
            sa.delete(ArchiveHourFailure).where(
                ArchiveHourFailure.tenant_id == tenant_id, ArchiveHourFailure.hour.in_(hours)
            )
        )
    session.add_all(
        ArchiveHourFailure(
            tenant_id=tenant_id,
            hour=hour,
            run_id=failure.run_id,
            cause=failure.cause[:MAX_CAUSE_LENGTH],
            failed_at=now,
        )
        for (tenant_id, hour), failure in latest.items()
    )
    session.execute(sa.delete(ArchiveHourFailure).where(ArchiveHourFailure.hour < now - KEPT_FOR))
    session.flush()
    return len(latest)


def hour_failures(
    session: Session, tenant_id: str, hours: Collection[datetime]
) -> dict[datetime, HourFailure]:
    """The recorded failure of each of the tenant's hours that has one (one indexed read)."""
    if not hours:
        return {}
    rows = session.scalars(
        sa.select(ArchiveHourFailure).where(
            ArchiveHourFailure.tenant_id == tenant_id,
            ArchiveHourFailure.hour.in_([hour_start(hour) for hour in hours]),
        )
    )
    return {row.hour: HourFailure(row.tenant_id, row.hour, row.run_id, row.cause) for row in rows}


def recorded_by_run(
    session: Session, run_id: str, hours: Collection[tuple[str, datetime]]
) -> set[tuple[str, datetime]]:
    """Which of these tenant-hours already carry a failure recorded by `run_id`."""
    wanted = {(tenant_id, hour_start(hour)) for tenant_id, hour in hours}
    rows = session.execute(
        sa.select(ArchiveHourFailure.tenant_id, ArchiveHourFailure.hour).where(
            ArchiveHourFailure.run_id == run_id
        )
    )
    return {(tenant_id, hour) for tenant_id, hour in rows if (tenant_id, hour) in wanted}
