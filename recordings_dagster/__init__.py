"""The Dagster side: hourly archives as assets partitioned by tenant x hour.

BackfillPolicy is beta in Dagster 1.13; we rely on it knowingly (see assets.py), so its warning
is silenced here rather than repeated in every operator's log.

Runs created by a process that imports this package (the code server's runs, the CLI's
`materialize`, tests) plan their partitions in one event (`INSTANCE_ENVIRONMENT`), unless the
environment says otherwise; the daemon and the webserver get it from their environment (the
image, `.env` for `dagster dev`).
"""

import os
import warnings

from recordings_instance.archives import INSTANCE_ENVIRONMENT

warnings.filterwarnings("ignore", message="Parameter `backfill_policy`")
for _name, _value in INSTANCE_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)
