"""Why this exists: `run_in_window` is what keeps an hour's disk use and a run's memory bounded
(recordings converted a window ahead of the ZIP, hours built two at a time) while handing results
back in the order the archive is written. These tests pin the window, the order, what a failure
stops and what closing the generator cancels.
"""

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from typing import Any

import pytest

from recordings.archive.window import run_in_window


class CountingPool(ThreadPoolExecutor):
    """A thread pool that counts what was submitted to it."""

    def __init__(self, workers: int) -> None:
        super().__init__(max_workers=workers)
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def test_results_come_back_in_job_order_even_when_later_jobs_finish_first() -> None:
    finished: list[int] = []
    last_finished = threading.Event()

    def work(job: int) -> int:
        if job == 0:
            assert last_finished.wait(timeout=10)
        finished.append(job)
        if job == 3:
            last_finished.set()
        return job * 10

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(run_in_window(pool, work, range(5), 4))
    assert finished.index(3) < finished.index(0)
    assert results == [(job, job * 10) for job in range(5)]


@pytest.mark.parametrize("window", [1, 2, 3])
def test_at_most_window_jobs_are_submitted_ahead_of_the_one_handed_back(window: int) -> None:
    with CountingPool(workers=2) as pool:
        handed_back = 0
        for _ in run_in_window(pool, lambda job: job, range(10), window):
            handed_back += 1
            assert pool.submitted <= handed_back + window
        assert handed_back == pool.submitted == 10


def test_a_failing_job_is_raised_in_order_and_nothing_more_is_submitted() -> None:
    def work(job: int) -> int:
        if job == 2:
            raise ConnectionError("storage went away")
        return job

    with CountingPool(workers=1) as pool:
        results = run_in_window(pool, work, range(10), 2)
        assert [next(results), next(results)] == [(0, 0), (1, 1)]
        submitted = pool.submitted
        with pytest.raises(ConnectionError, match="storage went away"):
            next(results)
        assert pool.submitted == submitted


def test_closing_cancels_the_jobs_not_started() -> None:
    ran: list[int] = []
    second_started = threading.Event()
    release = threading.Event()

    def work(job: int) -> int:
        ran.append(job)
        if job == 1:
            second_started.set()
            release.wait(timeout=10)
        return job

    with ThreadPoolExecutor(max_workers=1) as pool:
        with closing(run_in_window(pool, work, range(10), 3)) as results:
            assert next(results) == (0, 0)
            assert second_started.wait(timeout=10)
        release.set()
    assert ran == [0, 1]
