"""Every Dagster test here runs on the test's in-process instance (this run's storage)."""

import dagster as dg
import pytest


@pytest.fixture
def instance(dagster_instance: dg.DagsterInstance) -> dg.DagsterInstance:
    return dagster_instance
