"""Settings of the Celery workers that execute Dagster runs (docs/DISTRIBUTED.md).

dagster-celery's worker app (`celery -A dagster_celery.app worker`) imports a module of this name
when it is on the path, and takes its settings from it instead of dagster-celery's defaults (an
AMQP broker on localhost, results over rpc://). The daemon's run launcher reads the same two
URLs from the instance (deploy/dagster.celery.yaml).
"""

import os

broker_url = os.environ["CELERY_BROKER_URL"]
result_backend = os.environ["CELERY_RESULT_BACKEND"]

# A worker takes a run only when a pool process is free. Celery's default reserves one more task
# per process while it works: that run would wait behind a whole tenant-day while another worker
# stands idle, and it would be lost if the worker were killed (a Redis broker gives a reserved
# task back only after its visibility timeout, an hour), failing only when run monitoring's
# start timeout runs out.
worker_disable_prefetch = True
worker_prefetch_multiplier = 1
