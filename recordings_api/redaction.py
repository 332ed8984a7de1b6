"""Keep download links out of the logs.

A signed download link is a credential for 24 hours: whoever reads it in an access log could
download the archive. uvicorn's access log writes every request path, so the token part of
`/downloads/<token>` is replaced by its first characters and an ellipsis before the record is
formatted; enough to correlate with the audit log, useless to replay.
"""

import logging
import re

_LINK = re.compile(r"(/downloads/)([A-Za-z0-9_-]{6})[A-Za-z0-9_.-]*")


def redact_links(text: str) -> str:
    return _LINK.sub(r"\1\2…", text)


class RedactDownloadLinks(logging.Filter):
    """A filter for `uvicorn.access` (and any logger that prints request paths)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_links(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = redact_links(record.msg)
        return True


def install() -> None:
    """Attach the filter once to the loggers that print request paths."""
    for name in ("uvicorn.access", "uvicorn.error", "recordings_api"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactDownloadLinks) for f in logger.filters):
            logger.addFilter(RedactDownloadLinks())
