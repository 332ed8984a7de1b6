"""When an undelivered event is tried again: the Standard Webhooks (Svix) schedule.

Eight attempts: at once, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, about 27.6 h
from the first attempt to the last, so a receiver that is down for a day still gets the event.
After the eighth failure the event is given up (marked failed).

No jitter: the delays are counted from each event's own last attempt, and the delivering sensor
ticks every few seconds, so events that failed together are already spread; a fixed schedule
is also what a tenant can read in the docs and what tests can assert exactly.
"""

from datetime import datetime, timedelta

# The delay before each attempt, the first included (index = attempts made before it).
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS)


def next_attempt_at(attempts_made: int, last_attempt: datetime) -> datetime | None:
    """When to try an event again after `attempts_made` failed attempts, the last at
    `last_attempt` (timezone-aware); None once the schedule is spent (give up)."""
    if attempts_made < 0:
        raise ValueError(f"attempts_made is {attempts_made}, it cannot be negative")
    if last_attempt.tzinfo is None:
        raise ValueError("last_attempt must be timezone-aware (UTC)")
    if attempts_made >= MAX_ATTEMPTS:
        return None
    return last_attempt + RETRY_DELAYS[attempts_made]
