"""The Dagster side: hourly archives as assets partitioned by tenant x hour.

BackfillPolicy is beta in Dagster 1.13; we rely on it knowingly (see assets.py), so its warning
is silenced here rather than repeated in every operator's log.
"""

import warnings

warnings.filterwarnings("ignore", message="Parameter `backfill_policy`")
