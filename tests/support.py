"""Values several test modules share that are not fixtures: computed once per run, here once."""

from datetime import UTC, datetime, timedelta

# Yesterday in UTC when the run started: a whole day in the past, which the pipeline archives and
# the API serves, and inside every retention window the tests set.
DAY = (datetime.now(UTC) - timedelta(days=1)).date()
