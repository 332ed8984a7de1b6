"""bench/multichannel.py at its smallest (20 s conferences of four): every coding scored, the
figures in range. It asserts no ratio between codings: the decision rests on the full run's
figures (docs/BENCHMARKS.md). No database, so the PostgreSQL run skips it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

BENCH = REPO_ROOT / "bench"


@pytest.mark.sqlite_run_only
def test_the_smallest_run_scores_every_coding(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "multichannel.py"), "--seconds", "20", "--participants", "4"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(BENCH)])},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    codings = {(r["coding"], r["noise_dbfs"]) for r in report["results"]}
    assert len(codings) == 2 * 5  # clean and noisy, downmix + even + three idle rates
    for row in report["results"]:
        assert 1.0 <= row["mixed"] <= 4.7 and 0 < row["kbps"] < 26.4, row
        expected = 0 if row["coding"].startswith("downmix") else 4
        assert len(row["per_participant"]) == expected
    assert "| 4 | -50 dBFS | downmix (convert_to_opus) |" in result.stdout
