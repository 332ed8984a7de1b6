"""bench/retention.py, small: three tenants whose whole day expires, on SQLite. The benchmark is
run by hand, so this keeps it runnable; it asserts no time, only that the benchmark's own checks
passed (every archive of the expired days deleted, with a `deleted` row each and listed in the
observation of its tenant-day, and every tenant's kept archive still there) and that it printed
its projection. The benchmark picks its own databases (SQLite), hence `sqlite_run_only`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.sqlite_run_only]


def test_a_small_expired_day_is_deleted_with_its_evidence(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "retention.py"), "--sizes", "3"],
        # Not the repository: nothing here should see a developer's `.env`.
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "| tenants expiring a whole day (K) / deletions | 3 / 72 |" in result.stdout
    assert "| Dagster observations / the deleted hours they list | 3 / 72 |" in result.stdout
    assert "- sqlite 3: " in result.stdout, result.stdout
