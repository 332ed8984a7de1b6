"""bench/tick.py, small: five tenants, the schedule function in process and one tick through the
real dagster-daemon into a queue that launches nothing. `bench/tick.py` is run by hand, so this
keeps it runnable (the schedule's and the daemon's interfaces it leans on do change between
Dagster releases); it asserts no time, only that every run the schedule requested was queued.
The benchmark picks its own databases (SQLite), hence `sqlite_run_only`."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.sqlite_run_only]


def test_a_small_tick_queues_every_run_the_schedule_requests(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "tick.py"), "--sizes", "5", "--time-cap", "120"],
        # Not the repository: nothing here should see a developer's `.env`.
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    requested = re.search(r"\| runs requested \(tenant-days packed\) \| (\d+) \|", result.stdout)
    assert requested, result.stdout
    assert f"| daemon: runs queued | {requested[1]} |" in result.stdout, result.stdout
    assert "(capped)" not in result.stdout, result.stdout
