"""bench/night.py, small: three tenants through the real dagster-daemon with the production
queue limits, an S3 outage during the first pass, and the daemon's run retries. Its own checks
(limits never exceeded, every tenant's 24 hours archived once and intact in S3, retries after
the outage all successful) must pass; this keeps the benchmark runnable and the night's whole
path (schedule tick, queue, launcher, retries) covered by a test."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.sqlite_run_only,
    pytest.mark.resilience,
]


def test_a_small_night_with_an_outage_passes_every_check(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "bench" / "night.py"),
            *("--tenants", "3", "--max-concurrent", "2", "--recordings", "2"),
            *("--seconds", "4", "--fault-after", "1", "--fault-seconds", "5"),
            *("--time-cap", "420"),
        ],
        # Not the repository: the benchmark's own Dagster processes start in its temporary
        # folder, but nothing here should see a developer's `.env` either.
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "**PASS**" in result.stdout
    assert "| 72 of 72 / 72 (none twice) |" in result.stdout  # 3 tenants x 24 hours, once each
