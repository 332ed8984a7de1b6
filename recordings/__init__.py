"""The domain of daily conversation audio recordings.

Database models, the object-key layout, settings, audio conversion and ZIP writing live here,
with no Dagster or Litestar import, so both the pipeline (`recordings_dagster`) and the HTTP API
(`recordings_api`) depend on one owner of the rules, and each rule can be tested alone.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("daily-conversation-audio-recordings")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
