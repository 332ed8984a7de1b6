"""bench/tenant_day_overhead.py at its smallest: 1 and 2 empty tenant-days in process, one under
the profiler, and through `recordings materialize` for 1 and 2 tenants. It keeps the benchmark
runnable: every run must materialize its 24 hours, and every table must be printed."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.sqlite_run_only]


def test_the_smallest_overhead_benchmark_prints_every_table(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "bench" / "tenant_day_overhead.py"),
            *("--tenants", "2", "--materialize-tenants", "2", "--profile-tenants", "1"),
            *("--kinds", "empty", "--temp-dir", str(tmp_path)),
        ],
        cwd=tmp_path,  # no developer `.env` in sight
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    for heading in ("### 1.", "### 2.", "### 3.", "### Events stored", "### Growth"):
        assert heading in result.stdout
    assert "| ASSET_MATERIALIZATION | 24 |" in result.stdout  # one per hour of a tenant-day
