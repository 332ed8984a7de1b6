"""The run tags the archive runs carry: Dagster's partition range, and ours, which say what a
run covers (the schedule sets them, the asset, the sensors and the CLI read them)."""

from collections.abc import Mapping

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
TENANT_TAG = "recordings/tenant"
"""On every single-tenant run: the run queue allows one run per value at a time."""
FIRST_TENANT_TAG = "recordings/first_tenant"
LAST_TENANT_TAG = "recordings/last_tenant"
TENANT_COUNT_TAG = "recordings/tenant_count"
UTC_DAY_TAG = "recordings/utc_day"
STEPPED_OVER_TAG = "recordings/stepped_over"
"""Tenants inside a pack's range that it does not archive (comma-separated): a heavy one with
a run of its own, or one without a run that night (`recordings/packing.py`)."""


def stepped_over(tags: Mapping[str, str]) -> set[str]:
    """The tenants a run's range steps over (it does not archive them)."""
    return set(filter(None, tags.get(STEPPED_OVER_TAG, "").split(",")))
