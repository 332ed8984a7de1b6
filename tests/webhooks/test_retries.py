"""The retry schedule is a promise to tenants (the docs print it): Standard Webhooks' schedule,
at least 24 hours of retrying, then the event is given up."""

from datetime import UTC, datetime, timedelta

import pytest

from recordings.webhooks.retries import MAX_ATTEMPTS, RETRY_DELAYS, next_attempt_at

FAILED_AT = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def test_the_delays_are_the_standard_webhooks_schedule() -> None:
    assert RETRY_DELAYS == (
        timedelta(0),
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
    )
    assert MAX_ATTEMPTS == 8


def test_retrying_lasts_more_than_a_day() -> None:
    assert sum(RETRY_DELAYS, timedelta()) >= timedelta(hours=24)
    assert sum(RETRY_DELAYS, timedelta()) == timedelta(hours=27, minutes=35, seconds=5)


def test_each_retry_waits_its_delay_after_the_last_attempt_without_jitter() -> None:
    assert next_attempt_at(0, FAILED_AT) == FAILED_AT
    assert next_attempt_at(1, FAILED_AT) == FAILED_AT + timedelta(seconds=5)
    assert next_attempt_at(4, FAILED_AT) == FAILED_AT + timedelta(hours=2)
    assert next_attempt_at(7, FAILED_AT) == FAILED_AT + timedelta(hours=10)
    assert next_attempt_at(7, FAILED_AT) == next_attempt_at(7, FAILED_AT)


def test_a_whole_schedule_walked_from_the_first_failure() -> None:
    attempts = [FAILED_AT]
    while (following := next_attempt_at(len(attempts), attempts[-1])) is not None:
        attempts.append(following)
    assert len(attempts) == MAX_ATTEMPTS
    assert attempts[-1] - attempts[0] >= timedelta(hours=24)


def test_after_the_last_attempt_the_event_is_given_up() -> None:
    assert next_attempt_at(MAX_ATTEMPTS, FAILED_AT) is None
    assert next_attempt_at(MAX_ATTEMPTS + 3, FAILED_AT) is None


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        next_attempt_at(-1, FAILED_AT)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_attempt_at(1, datetime(2026, 12, 1, 3, 0))  # noqa: DTZ001 (the mistake tested)
