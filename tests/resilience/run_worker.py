"""A run worker for the fault tests: `python -m tests.resilience.run_worker REF TAGS`.

Executes one run on the Dagster instance serialized in REF (a file holding an `InstanceRef`),
with the run tags in TAGS (JSON; a ranged run's), in this process, on the archive job of the
shard of the range's tenant, and prints the run id first so the test can follow (or kill) it.
"""

import json
import sys
from pathlib import Path

import dagster as dg
from dagster._core.execution.api import execute_run
from dagster._core.instance import InstanceRef
from dagster._serdes import deserialize_value

from recordings.keys import parse_archive_partition_key
from recordings_dagster.execution import (
    QUIET_CONSOLE,
    hourly_archives_job_def,
    reconstructable_archives_job,
)
from recordings_dagster.jobs import tenant_archives_job_name
from recordings_dagster.tags import RANGE_START_TAG


def main() -> int:
    ref_path, tags_json = sys.argv[1], sys.argv[2]
    ref = deserialize_value(Path(ref_path).read_text(), InstanceRef)
    tags = json.loads(tags_json)
    job_name = tenant_archives_job_name(parse_archive_partition_key(tags[RANGE_START_TAG])[0])
    job = hourly_archives_job_def(job_name)
    with dg.DagsterInstance.from_ref(ref) as instance:
        run = instance.create_run_for_job(job, run_config=QUIET_CONSOLE, tags=tags)
        print(f"run_id={run.run_id}", flush=True)
        result = execute_run(reconstructable_archives_job(job_name), run, instance)
        print(f"success={result.success}", flush=True)
        return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
