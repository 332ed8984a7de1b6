"""Hour leases on the real database: one holder at a time, taken over only from a finished or
silent holder, refreshed while held."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from recordings.db.engine import exclusive_session
from recordings.db.models import ArchiveHourLease
from recordings.leases import HourLeases, LeaseWaitAbandonedError, try_acquire

pytestmark = [pytest.mark.integration, pytest.mark.resilience]

HOUR = datetime(2026, 11, 25, 5, tzinfo=UTC)
NOW = datetime(2026, 11, 26, 1, tzinfo=UTC)
TTL = timedelta(minutes=5)


def _acquire(engine: sa.Engine, holder: str, now: datetime, finished: set[str]) -> str | None:
    with exclusive_session(engine) as session:
        return try_acquire(
            session,
            "acme",
            HOUR,
            holder,
            now=now,
            stale_after=TTL,
            holder_finished=lambda run_id: run_id in finished,
        )


def _holder(engine: sa.Engine) -> tuple[str, datetime] | None:
    with exclusive_session(engine) as session:
        row = session.get(ArchiveHourLease, ("acme", HOUR))
        return (row.holder, row.renewed_at) if row else None


def test_one_holder_at_a_time_and_takeover_only_from_a_finished_or_silent_one(
    engine: sa.Engine,
) -> None:
    assert _acquire(engine, "run-a", NOW, set()) is None
    assert _acquire(engine, "run-b", NOW + timedelta(seconds=1), set()) == "run-a"
    # The holder itself may ask again (it refreshes).
    assert _acquire(engine, "run-a", NOW + timedelta(minutes=1), set()) is None
    assert _holder(engine) == ("run-a", NOW + timedelta(minutes=1))
    # Still fresh, holder running: refused; holder finished: taken over at once.
    assert _acquire(engine, "run-b", NOW + timedelta(minutes=2), set()) == "run-a"
    assert _acquire(engine, "run-b", NOW + timedelta(minutes=2), {"run-a"}) is None
    assert _holder(engine) == ("run-b", NOW + timedelta(minutes=2))
    # A holder silent for longer than the lease loses it even if its run looks alive
    # (a SIGKILLed worker whose run still reads "started").
    assert _acquire(engine, "run-c", NOW + timedelta(minutes=6), set()) == "run-b"
    assert _acquire(engine, "run-c", NOW + timedelta(minutes=7, seconds=1), set()) is None
    assert _holder(engine) == ("run-c", NOW + timedelta(minutes=7, seconds=1))
    # Another tenant's or hour's lease is independent.
    with exclusive_session(engine) as session:
        other = try_acquire(
            session,
            "globex",
            HOUR,
            "run-d",
            now=NOW,
            stale_after=TTL,
            holder_finished=lambda _: False,
        )
    assert other is None


def test_a_second_run_waits_for_the_release_and_a_held_lease_is_refreshed(
    engine: sa.Engine,
) -> None:
    waits: list[str] = []
    first = HourLeases(engine, "run-a", holder_finished=lambda _: False, lease_seconds=0.5)
    second = HourLeases(
        engine,
        "run-b",
        holder_finished=lambda _: False,
        lease_seconds=60,
        poll_seconds=0.05,
        on_wait=lambda tenant, hour, holder: waits.append(f"{tenant} {hour:%H} {holder}"),
    )
    first.acquire("acme", HOUR)
    acquired = threading.Event()
    waiter = threading.Thread(target=lambda: (second.acquire("acme", HOUR), acquired.set()))
    waiter.start()
    # The first holder keeps refreshing (every 0.1 s here), so its lease never goes stale
    # while it works, even for several lease lifetimes.
    held = _holder(engine)
    time.sleep(1.5)
    refreshed = _holder(engine)
    assert held and refreshed and refreshed[0] == "run-a" and refreshed[1] > held[1]
    assert not acquired.is_set()
    assert waits == ["acme 05 run-a"]
    assert first.holds("acme", HOUR) and not second.holds("acme", HOUR)

    first.release("acme", HOUR)
    waiter.join(timeout=10)
    assert acquired.is_set()
    assert second.holds("acme", HOUR) and not first.holds("acme", HOUR)
    first.close()
    second.close()  # releases what it still holds
    assert _holder(engine) is None


def test_a_stopping_run_stops_waiting_but_keeps_what_it_holds(engine: sa.Engine) -> None:
    """A cancel must not wait for another run's hour; hours already held stay held until the
    run has finished with them (`close`)."""
    other = HourLeases(engine, "run-a", holder_finished=lambda _: False)
    stopping = HourLeases(engine, "run-b", holder_finished=lambda _: False, poll_seconds=0.05)
    other.acquire("acme", HOUR)
    stopping.acquire("globex", HOUR)
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            stopping.acquire("acme", HOUR)
        except LeaseWaitAbandonedError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    stopping.abandon_waits()
    waiter.join(timeout=10)
    assert not waiter.is_alive()
    assert [str(e) for e in outcome] == [
        f"stopped waiting for acme {HOUR.isoformat()}, held by run run-a"
    ]
    assert stopping.holds("globex", HOUR) and other.holds("acme", HOUR)
    stopping.close()
    other.close()
    assert _holder(engine) is None
