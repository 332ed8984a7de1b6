"""What every command shares: failures that say what to do, the parsing of days and times, and
the settings, database session and S3 client read from the environment.

Every failure a user can cause ends with a message saying what to do and a non-zero exit status
(`fail`). The database and S3 libraries are imported by the functions that use them, so
`recordings --help` stays fast.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import click

from recordings.settings import S3Settings, SettingsError, database_url_from_env

if TYPE_CHECKING:
    from minio import Minio
    from sqlalchemy.orm import Session


def fail(message: str) -> click.ClickException:
    """The error to raise for a failure the user can fix: click prints it and exits with 1."""
    return click.ClickException(message)


def _yesterday() -> date:
    """The last finished UTC day, the default day of the commands that archive."""
    return (datetime.now(UTC) - timedelta(days=1)).date()


def parse_day(value: str | None) -> date:
    """A `--day` option: a finished UTC day, yesterday if not given."""
    if value is None:
        return _yesterday()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise fail(f"--day {value!r} is not a date; use YYYY-MM-DD, e.g. 2025-12-12") from None
    if day >= datetime.now(UTC).date():
        raise fail(f"--day {day} is not over yet (UTC); archives are built for finished days")
    return day


def parse_start(value: str) -> datetime:
    """A `--start` option: an ISO 8601 time with a time zone, returned in UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise fail(
            f"--start {value!r} is not an ISO 8601 time; use e.g. 2025-12-12T13:05:00Z"
        ) from None
    if moment.tzinfo is None:
        raise fail(f"--start {value!r} has no time zone; add Z for UTC (2025-12-12T13:05:00Z)")
    return moment.astimezone(UTC)


def s3_settings() -> S3Settings:
    """The S3 settings from the environment, or a message naming what to set."""
    try:
        return S3Settings.from_env()
    except SettingsError as exc:
        raise fail(str(exc)) from None


def database_url() -> str:
    """The application database's URL from the environment, or a message naming what to set."""
    try:
        return database_url_from_env()
    except SettingsError as exc:
        raise fail(str(exc)) from None


@contextmanager
def db_session(*, exclusive: bool = False) -> Iterator["Session"]:
    """A committed-on-success session; a database that cannot be used says to migrate it.

    ``exclusive`` takes the database's write lock from the first statement (SQLite; see
    `recordings.db.engine.exclusive_session`), for a read-then-write that must not interleave
    with another process's."""
    from recordings.db.engine import create_db_engine, exclusive_session, session_scope

    engine = create_db_engine(database_url())
    scope = exclusive_session if exclusive else session_scope
    try:
        with scope(engine) as session:
            yield session
    except Exception as exc:
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            raise fail(
                f"the database is not usable ({exc.orig}); run `recordings db upgrade` first"
            ) from None
        raise
    finally:
        engine.dispose()


def minio_client() -> "Minio":
    """An S3 client for the configured endpoint and keys."""
    from recordings.storage import S3Connection

    s3 = s3_settings()
    return S3Connection(s3.endpoint, s3.access_key, s3.secret_key, s3.region).client()
