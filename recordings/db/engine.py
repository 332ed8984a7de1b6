"""Engines and sessions for the application database, SQLite or PostgreSQL."""

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

# Set on a connection's `info` to start its next transaction with a write lock (SQLite).
IMMEDIATE = "recordings_begin_immediate"

# SQLite has one writer at a time. Threads of one process that want the write lock queue on a
# mutex first, so they wait exactly as long as the writer ahead of them instead of sleeping in
# SQLite's busy handler (which backs off in steps up to 100 ms); processes still queue on the
# database lock itself.
_SQLITE_WRITERS: "weakref.WeakKeyDictionary[sa.Engine, threading.Lock]" = (
    weakref.WeakKeyDictionary()
)


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
        _SQLITE_WRITERS[engine] = threading.Lock()
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
    or is ready for explicit row/advisory locks (PostgreSQL); for atomic read-then-write and
    for appends that should not contend (the audit log)."""
    with _SQLITE_WRITERS.get(engine) or nullcontext(), engine.connect() as connection:
        connection.info[IMMEDIATE] = True
        with Session(bind=connection, expire_on_commit=False) as session, session.begin():
            yield session
