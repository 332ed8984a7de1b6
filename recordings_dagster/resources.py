"""Resources: the application database and the object store, configured from the environment."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from minio import Minio
from pydantic import PrivateAttr
from sqlalchemy.orm import Session

from recordings.db.engine import create_db_engine, session_scope
from recordings.storage import MinioObjectStore, S3Connection


class DatabaseResource(dg.ConfigurableResource):
    """The application database (SQLite locally, PostgreSQL in production)."""

    url: str

    _engine: sa.Engine | None = PrivateAttr(default=None)

    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = create_db_engine(self.url)
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.engine()) as session:
            yield session

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class ObjectStoreResource(dg.ConfigurableResource):
    """S3 (MinIO in production, SeaweedFS locally) through the minio SDK."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    archive_bucket: str = "conversation-archives"

    def connection(self) -> S3Connection:
        return S3Connection(
            endpoint=self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
        )

    def client(self) -> Minio:
        return self.connection().client()

    def archive_store(self) -> MinioObjectStore:
        return MinioObjectStore(self.client(), self.archive_bucket)


class ArchiveBuildResource(dg.ConfigurableResource):
    """How hours are built on this machine: conversion threads and scratch space."""

    workers: int = 0  # 0: one per CPU core
    temp_dir: str | None = None

    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)

    def temp_path(self) -> Path | None:
        return Path(self.temp_dir) if self.temp_dir else None


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources bound to environment variables; secrets never appear in code or config."""
    return {
        "database": DatabaseResource(url=dg.EnvVar("RECORDINGS_DATABASE_URL")),
        "object_store": ObjectStoreResource(
            endpoint=dg.EnvVar("RECORDINGS_S3_ENDPOINT"),
            access_key=dg.EnvVar("RECORDINGS_S3_ACCESS_KEY"),
            secret_key=dg.EnvVar("RECORDINGS_S3_SECRET_KEY"),
            archive_bucket=dg.EnvVar("RECORDINGS_ARCHIVE_BUCKET"),
        ),
        "archive_build": ArchiveBuildResource(),
    }
