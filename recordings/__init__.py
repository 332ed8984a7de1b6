"""The domain of daily conversation audio recordings.

Database models, the object-key layout, settings, audio conversion and ZIP writing live here,
with no Dagster or Litestar import, so both the pipeline (`recordings_dagster`) and the HTTP API
(`recordings_api`) depend on one owner of the rules, and each rule can be tested alone.
"""

import os
from typing import Any

# numpy's OpenBLAS starts one thread per core when numpy is imported, which cost 0.07 CPU-s in
# every process that converts audio (a third of `convert_to_opus`'s import) and buys nothing:
# nothing here does linear algebra on large matrices, and conversions run in parallel by
# process, where BLAS threads would only compete for the same cores. An operator's own setting
# wins; the variable only counts if it is set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def __getattr__(name: str) -> Any:
    """``__version__``, read from the installed distribution on first use rather than at import:
    `importlib.metadata` costs 20-30 ms of CPU that a process converting one recording need not
    pay."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("daily-conversation-audio-recordings")
        except PackageNotFoundError:  # running from a source tree that was not installed
            found = "0+unknown"
        globals()["__version__"] = found
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
