"""Run jobs on a thread pool a bounded window at a time, handing results back in job order.

The hourly archive does this twice: the recordings of an hour (converted in parallel, written
into the ZIP one after another) and the hours of a run (built two at a time, recorded in order).
"""

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Executor, Future
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


def run_in_window(
    pool: Executor, work: Callable[[Job], Result], jobs: Iterable[Job], window: int
) -> Generator[tuple[Job, Result]]:
    """Run `work` on each job in `pool`, yielding `(job, result)` in job order with at most
    `window` jobs submitted ahead of the one handed back.

    Bounded because every job holds local state until the caller takes its result in order (a
    recording's files on disk, an hour's work folder and recordings): submitting the whole list
    at once would let disk and memory grow with it. More than one, so the pool keeps working
    while the caller handles a result (streams a file into the ZIP, uploads an hour). The next
    job is submitted once the oldest is done, before it is handed back; an exception from `work`
    is raised here and nothing more is submitted. Close the generator before leaving the pool
    (`contextlib.closing`): that cancels the jobs not started, which a pool's shutdown would
    otherwise wait for.
    """
    queue = iter(jobs)
    pending: deque[tuple[Job, Future[Result]]] = deque()

    def top_up() -> None:
        for job in queue:
            pending.append((job, pool.submit(work, job)))
            if len(pending) >= window:
                break

    try:
        top_up()
        while pending:
            job, future = pending.popleft()
            result = future.result()
            top_up()
            yield job, result
    finally:
        for _, future in pending:
            future.cancel()
