"""The test run's backend switch (RECORDINGS_TEST_BACKEND) really is in effect: the application
database, every Dagster instance (in-process, and the one a process started from a DAGSTER_HOME
or the CLI's project folder opens) are on SQLite, or all on PostgreSQL."""

from pathlib import Path

import dagster as dg
import sqlalchemy as sa
import yaml

STORAGE = {"sqlite": "Sqlite", "postgresql": "Postgres"}


def test_the_application_database_is_the_backends(database_backend: str, engine: sa.Engine) -> None:
    assert engine.dialect.name == database_backend


def test_every_dagster_instance_stores_in_the_backend(
    database_backend: str,
    dagster_instance: dg.DagsterInstance,
    dagster_home: Path,
    recordings_env: dict[str, str],
) -> None:
    prefix = STORAGE[database_backend]
    assert type(dagster_instance.run_storage).__name__ == f"{prefix}RunStorage"
    assert type(dagster_instance.event_log_storage).__name__.startswith(prefix)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == f"{prefix}RunStorage"
    project_yaml = Path(recordings_env["RECORDINGS_PROJECT_DIR"]) / "dagster.yaml"
    config = yaml.safe_load(project_yaml.read_text())
    assert ("storage" in config) == (database_backend == "postgresql")
    # Processes get the repository's settings: queued runs, run retries.
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_retries"]["enabled"] is True
