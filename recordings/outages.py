"""Say in words which backing service a failure came from, for operators reading Dagster logs.

A run that fails because the database or the object store is down should say so, and that the
retry will redo the work, instead of showing a driver's exception class and a traceback. The
driver's own first line is kept (it names the host and port, never a password: SQLAlchemy and
psycopg do not print credentials, and minio's errors carry no secret key).
"""

import sqlalchemy.exc
import urllib3.exceptions
from minio.error import S3Error, ServerError

DATABASE_OUTAGES = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
"""Driver errors that mean the database could not be reached or dropped the connection (not a
bad statement); the API answers them with 503, runs name them in their failure."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_failure(exc: BaseException) -> str:
    """One line for a log or a run failure: what was unreachable and what happens next."""
    if isinstance(exc, DATABASE_OUTAGES):
        cause = _first_line(exc.orig) if exc.orig is not None else _first_line(exc)
        return (
            f"the application database is unreachable ({cause}); check that it is up and "
            "that RECORDINGS_DATABASE_URL points at it; the run's retry redoes this work"
        )
    if isinstance(exc, urllib3.exceptions.HTTPError | ServerError | ConnectionError):
        return (
            f"the object store is unreachable or failing ({type(exc).__name__}: "
            f"{_first_line(exc)}); check that S3 at RECORDINGS_S3_ENDPOINT is up; nothing "
            "partial was stored and the run's retry redoes this work"
        )
    if isinstance(exc, S3Error) and exc.code in {"SlowDown", "ServiceUnavailable", "InternalError"}:
        return (
            f"the object store refused the request ({exc.code}: {exc.message}); "
            "the run's retry redoes this work"
        )
    return f"{type(exc).__name__}: {_first_line(exc)}"
