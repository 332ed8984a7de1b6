"""Redis, the Celery run engine's broker, is down when the daemon launches a run.

The daemon marks a run whose launch raised failed, and run retries re-queue it at once: with
dagster-celery's own settings a launch fails within a second of Redis being unreachable, so a
Redis restart would burn every queued run's retries in seconds. deploy/dagster.celery.yaml makes
a launch wait and retry instead; this checks, on a real Redis stopped and started again, that
the launch waits for it and hands the run's task over once it is back."""

import gc
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import redis
import yaml
from dagster._core.launcher import LaunchRunContext

from tests.conftest import REPO_ROOT
from tests.redis_server import RedisServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.resilience,
    # dagster-celery's launcher defines its task again at every launch; Celery keeps the first.
    pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning"),
]

OUTAGE_SECONDS = 4.0


@dg.op
def noop() -> None:
    pass


@dg.job
def smoke() -> None:
    noop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis for this test alone, which it stops and starts again."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def celery_instance(
    tmp_path: Path, own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """deploy/dagster.celery.yaml with SQLite storage, its Celery URLs pointing at `own_redis`."""
    config = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.celery.yaml").read_text())
    del config["storage"]
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("CELERY_BROKER_URL", own_redis.url)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", own_redis.url)
    monkeypatch.setenv("DAGSTER_MAX_CONCURRENT_RUNS", "2")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance
        # While Redis still answers: the launcher's Celery app subscribes to every launched
        # task's result and unsubscribes when the garbage collector frees it; left to a later
        # collection, with Redis gone, that retries its connection for minutes (and inside
        # another test's code).
        gc.collect()
        app = instance.run_launcher.celery  # type: ignore[attr-defined]
        app.backend.result_consumer.stop()
        app.close()


def launch(instance: dg.DagsterInstance) -> dg.DagsterRun:
    origin = dg.reconstructable(smoke).get_python_origin()
    run = instance.create_run_for_job(smoke, job_code_origin=origin)
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run


def test_a_launch_waits_for_redis_to_come_back(
    celery_instance: dg.DagsterInstance, own_redis: RedisServer
) -> None:
    launch(celery_instance)  # the launcher's connections are open, as in a running daemon
    own_redis.stop()
    back = threading.Timer(OUTAGE_SECONDS, own_redis.start)
    back.start()
    try:
        started = time.monotonic()
        run = launch(celery_instance)
        waited = time.monotonic() - started
    finally:
        back.join()
    assert waited >= OUTAGE_SECONDS - 1, f"the launch returned after {waited:.1f} s"
    tagged = celery_instance.get_run_by_id(run.run_id)
    assert tagged is not None and "dagster-celery/task_id" in tagged.tags
    # The task is in the restarted Redis (which kept nothing else), waiting for a worker.
    queued = redis.Redis.from_url(own_redis.url).llen("dagster")
    assert queued == 1
