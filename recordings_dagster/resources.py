"""Resources: the application database, the object store and webhook delivery, configured from
the environment."""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from minio import Minio
from pydantic import Field, PrivateAttr
from sqlalchemy.orm import Session

from recordings.db.engine import create_db_engine, session_scope
from recordings.leases import DEFAULT_LEASE_SECONDS
from recordings.packing import (
    DEFAULT_MAX_AUDIO_SECONDS_PER_RUN,
    DEFAULT_MAX_TENANTS_PER_RUN,
    PackLimits,
)
from recordings.settings import DEFAULT_S3_REGION, env_flag
from recordings.storage import DEFAULT_MAX_SOURCE_BYTES, MinioObjectStore, S3Connection
from recordings.webhooks.delivery import DeliveryOutcome, deliver, resolve
from recordings.webhooks.signing import parse_webhook_key


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
    region: str = DEFAULT_S3_REGION
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

    max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES
    """A source recording larger than this is listed as `too_large` instead of archived."""

    def archive_store(self) -> MinioObjectStore:
        return MinioObjectStore(self.client(), self.archive_bucket, self.max_source_bytes)


def usable_cpus(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may really use: its affinity, capped by a cgroup v2 CPU quota.

    In a container `os.cpu_count()` is the node's core count; a run pod limited to 2 CPUs on a
    64-core node would start 64 conversion threads and be throttled.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, int(int(quota) / int(period))))


class ArchiveBuildResource(dg.ConfigurableResource):
    """How hours are built on this machine: conversion threads and scratch space."""

    workers: int = 0  # 0: one per CPU this process may use (affinity and container quota)
    temp_dir: str | None = None
    hour_lease_seconds: int = DEFAULT_LEASE_SECONDS
    """A run building an hour that stops refreshing its lease this long loses it to the next
    run of that hour (see `recordings/leases.py`); a finished holder's lease goes at once."""

    max_tenants_per_run: int = DEFAULT_MAX_TENANTS_PER_RUN
    """The nightly schedule packs at most this many tenant-days into one run."""
    max_audio_seconds_per_run: float = DEFAULT_MAX_AUDIO_SECONDS_PER_RUN
    """...and at most this much of the day's registered audio; a tenant-day with more runs
    alone."""

    def pack_limits(self) -> PackLimits:
        return PackLimits(self.max_tenants_per_run, self.max_audio_seconds_per_run)

    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else usable_cpus()

    def temp_path(self) -> Path | None:
        return Path(self.temp_dir) if self.temp_dir else None


WEBHOOK_KEY_ENV = "RECORDINGS_WEBHOOK_KEY"
WEBHOOK_ALLOW_LOOPBACK_ENV = "RECORDINGS_WEBHOOK_ALLOW_LOOPBACK"
WEBHOOK_TIMEOUT_ENV = "RECORDINGS_WEBHOOK_TIMEOUT_SECONDS"
DEFAULT_WEBHOOK_TIMEOUT_SECONDS = 10.0
MAX_WEBHOOK_TIMEOUT_SECONDS = 30.0  # an attempt must fit in a sensor evaluation (60 s at most)


class WebhookResource(dg.ConfigurableResource):
    """How tenants' webhooks are signed and delivered.

    Without a key webhooks are off: no tenant secret can be derived, so the webhook sensors
    skip and say so. The key's value is bound with `dg.EnvVar`, read by the sensors when they
    run, never written into the code location's configuration.
    """

    webhook_key: str | None = None
    """The service's webhook key, base64 of at least 32 bytes (`RECORDINGS_WEBHOOK_KEY`)."""
    allow_loopback: bool = False
    """Deliver to loopback addresses too (local development and tests only); private,
    link-local and metadata addresses stay refused."""
    timeout_seconds: float = Field(
        default=DEFAULT_WEBHOOK_TIMEOUT_SECONDS, gt=0, le=MAX_WEBHOOK_TIMEOUT_SECONDS
    )
    """How long one delivery attempt may take, all in (resolving, connecting, TLS, the answer),
    before it counts as a timeout."""

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_key)

    def key(self) -> bytes:
        """The webhook key's bytes; a malformed key raises ValueError saying how to fix it."""
        if not self.webhook_key:
            raise ValueError(f"webhooks are off: {WEBHOOK_KEY_ENV} is not set")
        return parse_webhook_key(self.webhook_key)

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses a webhook's host resolves to, checked at every delivery: the system's
        resolver (a test's resource answers with the addresses it is given)."""
        return resolve(host, port)

    def deliver(self, url: str, body: bytes, headers: Mapping[str, str]) -> DeliveryOutcome:
        """Post one signed event (`recordings.webhooks.delivery.deliver`); never raises for
        network or HTTP failures, the outcome says what happened."""
        return deliver(
            url,
            body,
            headers,
            allow_loopback=self.allow_loopback,
            timeout_seconds=self.timeout_seconds,
            resolver=self.resolve,
        )


def webhook_from_environment() -> WebhookResource:
    """Webhook delivery as the environment configures it. The key is bound only when it is set,
    so a deployment without webhooks loads (and its sensors skip, naming the variable)."""
    return WebhookResource(
        webhook_key=dg.EnvVar(WEBHOOK_KEY_ENV) if os.environ.get(WEBHOOK_KEY_ENV) else None,
        # Not secrets: read when the code location loads.
        allow_loopback=env_flag(WEBHOOK_ALLOW_LOOPBACK_ENV),
        timeout_seconds=_webhook_timeout(),
    )


def _webhook_timeout() -> float:
    text = os.environ.get(WEBHOOK_TIMEOUT_ENV)
    if not text:
        return DEFAULT_WEBHOOK_TIMEOUT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= MAX_WEBHOOK_TIMEOUT_SECONDS:
        raise ValueError(
            f"{WEBHOOK_TIMEOUT_ENV}={text!r} is not a number of seconds above 0 and at most "
            f"{MAX_WEBHOOK_TIMEOUT_SECONDS:g} (an attempt must fit in a sensor evaluation): "
            f"leave it unset for {DEFAULT_WEBHOOK_TIMEOUT_SECONDS:g} s"
        )
    return seconds


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources bound to environment variables; secrets never appear in code or config."""
    return {
        "database": DatabaseResource(url=dg.EnvVar("RECORDINGS_DATABASE_URL")),
        "object_store": ObjectStoreResource(
            endpoint=dg.EnvVar("RECORDINGS_S3_ENDPOINT"),
            access_key=dg.EnvVar("RECORDINGS_S3_ACCESS_KEY"),
            secret_key=dg.EnvVar("RECORDINGS_S3_SECRET_KEY"),
            archive_bucket=dg.EnvVar("RECORDINGS_ARCHIVE_BUCKET"),
            # Not secrets, and optional: read when the code location loads.
            region=os.environ.get("RECORDINGS_S3_REGION") or DEFAULT_S3_REGION,
            max_source_bytes=int(
                os.environ.get("RECORDINGS_MAX_SOURCE_BYTES") or DEFAULT_MAX_SOURCE_BYTES
            ),
        ),
        "archive_build": archive_build_from_environment(),
        "webhook": webhook_from_environment(),
    }


def archive_build_from_environment() -> ArchiveBuildResource:
    """How this machine builds hours and how the night is packed (none of it secret: read when
    the code location loads)."""
    return ArchiveBuildResource(
        workers=int(os.environ.get("RECORDINGS_BUILD_WORKERS") or 0),
        max_tenants_per_run=int(
            os.environ.get("RECORDINGS_MAX_TENANTS_PER_RUN") or DEFAULT_MAX_TENANTS_PER_RUN
        ),
        max_audio_seconds_per_run=float(
            os.environ.get("RECORDINGS_MAX_AUDIO_SECONDS_PER_RUN")
            or DEFAULT_MAX_AUDIO_SECONDS_PER_RUN
        ),
    )
