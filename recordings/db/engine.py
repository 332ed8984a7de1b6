"""Engines and sessions for the application database, SQLite or PostgreSQL."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

# Set on a connection's `info` to start its next transaction with a write lock (SQLite).
IMMEDIATE = "recordings_begin_immediate"


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # SQLite ignores foreign keys unless asked per connection; WAL lets the API read while the
    # pipeline writes, and busy_timeout turns lock contention into a wait instead of an error.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # Let SQLAlchemy, not the driver, emit BEGIN (see `_begin_sqlite`).
    dbapi_connection.isolation_level = None


def _begin_sqlite(connection: sa.Connection) -> None:
    # BEGIN IMMEDIATE takes the write lock at once, so a read-then-write (count, then insert)
    # is atomic across processes; plain BEGIN would let two writers read the same count.
    immediate = connection.info.pop(IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_db_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for `url` with the settings this project relies on."""
    engine = sa.create_engine(url, pool_pre_ping=True, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _configure_sqlite_connection)
        event.listen(engine, "begin", _begin_sqlite)
    return engine


@contextmanager
def session_scope(engine: sa.Engine) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


@contextmanager
def exclusive_session(engine: sa.Engine) -> Iterator[Session]:
    """A transaction that holds the database's write lock from its first statement (SQLite)
    or is ready for explicit row/advisory locks (PostgreSQL); for atomic read-then-write."""
    with engine.connect() as connection:
        connection.info[IMMEDIATE] = True
        with Session(bind=connection, expire_on_commit=False) as session, session.begin():
            yield session
