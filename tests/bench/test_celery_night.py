"""bench/celery_night.py, small: three tenants through the real dagster-daemon on the Celery run
engine (dagster-celery's CeleryRunLauncher, the session's real Redis server, two real Celery
workers), one worker SIGKILLed midway through a run. Its own checks must pass: the killed run is
failed by the stalled-runs sensor, retried by the daemon on the surviving worker and succeeds,
every tenant's 24 hours are archived exactly once and intact in S3, no upload is left open. Leases
of 4 s (bench/quick_detection.py) let the daemon's sensor see the dead worker in seconds instead
of production's minutes. It runs on this run's databases: SQLite, or PostgreSQL for the
application and for Dagster."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.resilience]


def test_a_small_celery_night_with_a_killed_worker_passes_every_check(
    tmp_path: Path, redis_url: str, database_url: str, dagster_storage: dict[str, Any]
) -> None:
    postgres = dagster_storage.get("storage", {}).get("postgres", {}).get("postgres_url")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "bench" / "celery_night.py"),
            *("--launcher", "celery", "--tenants", "3", "--workers", "2"),
            *("--kill-after", "1", "--lease-seconds", "4"),
            *("--redis-url", redis_url, "--database-url", database_url),
            *(("--dagster-postgres-url", postgres) if postgres else ()),
            *("--time-cap", "240"),
        ],
        # Not the repository: the benchmark's own processes start in its temporary folder, but
        # nothing here should see a developer's `.env` either.
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "**PASS**" in result.stdout, result.stdout
    storage = "PostgreSQL storage" if postgres else "SQLite storage"
    assert f"(`deploy/dagster.celery.yaml`, {storage})" in result.stdout, result.stdout
    assert "| fault: a worker SIGKILLed mid-run |" in result.stdout, result.stdout
    assert "| multipart uploads left open in the archive bucket | 0 |" in result.stdout
