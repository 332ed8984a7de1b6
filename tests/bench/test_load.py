"""Why this exists: `bench/load.py` is run by hand, so nothing else would notice when it rots.
This runs it end to end with tiny parameters (20 clients, 3 seconds, two API processes, three
download tenants each asked past the limit) and asserts what the full run reports: no 5xx, no
transport error, an exact limit and an exact audit log. It asserts no time. The benchmark picks
its own databases (SQLite), hence `sqlite_run_only`.
"""

import importlib

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.sqlite_run_only,
    pytest.mark.resilience,
]

BENCH = REPO_ROOT / "bench"


def test_load_bench_runs_and_finds_the_limit_and_the_audit_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # the benchmarks import each other as scripts do
    load = importlib.import_module("load")
    args = load.parse_args(["--clients", "20", "--seconds", "3", "--download-tenants", "3"])

    report = load.run(args)
    markdown = load.render(report)

    failed = [f"{c.name}: {c.detail}" for c in report.checks if not c.passed]
    assert not failed, markdown
    assert len(report.checks) == 9
    links, downloads = report.endpoints
    assert links.answers and downloads.answers
    assert all(x.status < 500 for e in report.endpoints for _, x in e.answers)
    # Each process served both endpoints, and the limit was reached for every tenant.
    assert all(p.answered["links"] and p.answered["downloads"] for p in report.processes[:2])
    assert sum(1 for _, x in downloads.answers if x.status == 307) == 3 * args.limit
    assert "FAIL" not in markdown and markdown.count("PASS:") == 9
