"""bench/webhooks.py, small: five tenants through both webhook sensors. It asserts no time, only
that every tenant's day was announced once and every event delivered, so the benchmark keeps
running as the sensors change. It picks its own databases (SQLite), hence `sqlite_run_only`."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.sqlite_run_only]


def test_a_small_night_announces_and_delivers_every_tenants_day(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "webhooks.py"), "--sizes", "5"],
        cwd=tmp_path,  # not the repository: nothing here should see a developer's `.env`
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    row = re.search(r"^\| 5 \| 120 \| .* \| 5 \| \d+, (\d+)/s \| .*\|$", result.stdout, re.M)
    assert row, result.stdout
    assert "  delivered 5 in" in result.stderr
