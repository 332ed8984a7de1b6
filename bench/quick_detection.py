"""The code location of `recordings_dagster.definitions`, detecting a dead worker in seconds.

Production detects a run whose worker died by its hour leases: the run refreshes them every fifth
of `hour_lease_seconds` (300), and the stalled-runs sensor, evaluated every minute, fails a run
silent at two evaluations in a row; five to seven minutes in all. A small benchmark (and its CI
test, tests/bench/test_celery_night.py) cannot wait that long, so this location serves the same
definitions with leases of BENCH_LEASE_SECONDS and the same sensor function evaluated every
BENCH_LEASE_SECONDS: the detection path is production's, only shorter. The code server and the
Celery workers import it by name (`bench/` is on their PYTHONPATH), as they would the real one.
"""

import os

import dagster as dg

from recordings_dagster.definitions import defs as production_defs
from recordings_dagster.resources import ArchiveBuildResource, DatabaseResource
from recordings_dagster.sensors import stalled_archive_runs_sensor

LEASE_SECONDS = int(os.environ.get("BENCH_LEASE_SECONDS") or 4)


@dg.sensor(
    name=stalled_archive_runs_sensor.name,
    minimum_interval_seconds=LEASE_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=stalled_archive_runs_sensor.description,
)
def quick_stalled_archive_runs_sensor(
    context: dg.SensorEvaluationContext,
    database: DatabaseResource,
    archive_build: ArchiveBuildResource,
) -> dg.SkipReason:
    # The decorated function itself: invoking the definition would bind resources again.
    result = stalled_archive_runs_sensor._raw_fn(context, database, archive_build)
    assert isinstance(result, dg.SkipReason)
    return result


def _with_short_leases(resource: ArchiveBuildResource) -> ArchiveBuildResource:
    return ArchiveBuildResource(
        workers=resource.workers,
        temp_dir=resource.temp_dir,
        hour_lease_seconds=LEASE_SECONDS,
        max_tenants_per_run=resource.max_tenants_per_run,
        max_audio_seconds_per_run=resource.max_audio_seconds_per_run,
    )


_resources = dict(production_defs.resources or {})
_build = _resources["archive_build"]
assert isinstance(_build, ArchiveBuildResource)

defs = dg.Definitions(
    assets=production_defs.assets,
    asset_checks=production_defs.asset_checks,
    jobs=production_defs.jobs,
    schedules=production_defs.schedules,
    sensors=[
        quick_stalled_archive_runs_sensor
        if sensor.name == stalled_archive_runs_sensor.name
        else sensor
        for sensor in production_defs.sensors or []
    ],
    resources={**_resources, "archive_build": _with_short_leases(_build)},
)
