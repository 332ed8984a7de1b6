"""Retention: delete each tenant's archives once they fall outside its retention, with evidence.

The rule (seed section 1): the archive of day D is kept while `today - D <= retention_days`,
then deleted. Lowering a tenant's retention takes effect at the next cleanup; raising it never
resurrects anything (what is deleted is gone, and the evidence says so). A disabled tenant's
archives still age out; a tenant under legal hold keeps everything, and the cleanup reports
what the hold kept.

Only objects whose key is exactly an archive key of that tenant are ever considered: the listing
is confined to the tenant's archive prefix, and each key must parse back to the tenant and an
hour, so source audio, another tenant's objects and anything unexpected under the prefix are
never touched.

Each deletion is recorded in `archive_deletions` in two steps around the S3 delete (`deleting`,
then `deleted`); a crash in between leaves a `deleting` row that the next cleanup reconciles
(the object is gone: `deleted`; it is still there: `abandoned`, and the normal pass decides
again).
"""

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from minio import Minio
from minio.error import S3Error
from sqlalchemy.orm import Session

from recordings.db.engine import session_scope
from recordings.db.models import ArchiveDeletion, TenantRecordingSettings, utcnow
from recordings.keys import parse_archive_key, tenant_archive_prefix

logger = logging.getLogger(__name__)

DELETING, DELETED, ABANDONED = "deleting", "deleted", "abandoned"

# The SHA-256 the pipeline recorded for a tenant-hour's archive (its Dagster materialization),
# or None when unknown; the cleanup then hashes the object itself before deleting it.
RecordedSha256 = Callable[[str, datetime], str | None]


def is_kept(day: date, retention_days: int, today: date) -> bool:
    """Day D is kept while `today - D <= retention_days`."""
    return (today - day).days <= retention_days


@dataclass(frozen=True)
class StoredArchive:
    tenant_id: str
    hour: datetime
    object_key: str
    size_bytes: int | None


@dataclass(frozen=True)
class DeletedArchive:
    tenant_id: str
    hour: datetime
    object_key: str
    sha256: str
    size_bytes: int | None
    retention_days: int
    deleted_at: datetime


@dataclass
class TenantCleanup:
    """What one tenant's cleanup did, for the job's report."""

    tenant_id: str
    retention_days: int
    legal_hold: bool
    kept: int = 0
    deleted: list[DeletedArchive] = field(default_factory=list)
    held: list[StoredArchive] = field(default_factory=list)  # would be deleted but for the hold
    failures: list[tuple[str, str]] = field(default_factory=list)  # (object key, reason)


def stored_archives(client: Minio, bucket: str, tenant_id: str) -> Iterable[StoredArchive]:
    """The tenant's archives in `bucket`: only keys that are exactly its archive keys."""
    for item in client.list_objects(
        bucket, prefix=tenant_archive_prefix(tenant_id), recursive=True
    ):
        key = item.object_name
        if key is None:
            continue
        hour = parse_archive_key(tenant_id, key)
        if hour is None:
            logger.warning("leaving %s alone: not an archive key of tenant %s", key, tenant_id)
            continue
        yield StoredArchive(tenant_id, hour, key, item.size)


def _object_sha256(client: Minio, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    response = client.get_object(bucket, key)
    try:
        for chunk in response.stream(1 << 20):
            digest.update(chunk)
    finally:
        response.close()
        response.release_conn()
    return digest.hexdigest()


def _object_exists(client: Minio, bucket: str, key: str) -> bool:
    try:
        client.stat_object(bucket, key)
    except S3Error as exc:
        if exc.code in {"NoSuchKey", "NoSuchObject"}:
            return False
        raise
    return True


def reconcile_interrupted(engine: sa.Engine, client: Minio, bucket: str) -> int:
    """Settle deletions a crash left `deleting`; returns how many were settled."""
    with session_scope(engine) as session:
        pending = list(
            session.scalars(sa.select(ArchiveDeletion).where(ArchiveDeletion.state == DELETING))
        )
        for row in pending:
            if _object_exists(client, bucket, row.object_key):
                row.state = ABANDONED
            else:
                row.state = DELETED
                row.deleted_at = utcnow()
    return len(pending)


def _delete_one(
    engine: sa.Engine,
    client: Minio,
    bucket: str,
    archive: StoredArchive,
    retention_days: int,
    sha256: str,
    run_id: str | None,
) -> DeletedArchive:
    with session_scope(engine) as session:
        row = ArchiveDeletion(
            tenant_id=archive.tenant_id,
            hour=archive.hour,
            object_key=archive.object_key,
            sha256=sha256,
            size_bytes=archive.size_bytes,
            retention_days=retention_days,
            state=DELETING,
            requested_at=utcnow(),
            run_id=run_id,
        )
        session.add(row)
        session.flush()
        row_id = row.id
    client.remove_object(bucket, archive.object_key)
    deleted_at = utcnow()
    with session_scope(engine) as session:
        session.execute(
            sa.update(ArchiveDeletion)
            .where(ArchiveDeletion.id == row_id)
            .values(state=DELETED, deleted_at=deleted_at)
        )
    return DeletedArchive(
        archive.tenant_id,
        archive.hour,
        archive.object_key,
        sha256,
        archive.size_bytes,
        retention_days,
        deleted_at,
    )


def apply_retention(
    engine: sa.Engine,
    client: Minio,
    bucket: str,
    today: date,
    *,
    recorded_sha256: RecordedSha256 | None = None,
    run_id: str | None = None,
    tenant_ids: Iterable[str] | None = None,
) -> list[TenantCleanup]:
    """Delete every archive outside its tenant's retention (all tenants with settings, or
    `tenant_ids`), recording each deletion; one tenant's failure does not stop the others."""
    reconcile_interrupted(engine, client, bucket)
    with session_scope(engine) as session:
        query = sa.select(TenantRecordingSettings).order_by(TenantRecordingSettings.tenant_id)
        if tenant_ids is not None:
            query = query.where(TenantRecordingSettings.tenant_id.in_(list(tenant_ids)))
        settings = [(s.tenant_id, s.retention_days, s.legal_hold) for s in session.scalars(query)]
    reports = []
    for tenant_id, retention_days, legal_hold in settings:
        report = TenantCleanup(tenant_id, retention_days, legal_hold)
        reports.append(report)
        try:
            archives = list(stored_archives(client, bucket, tenant_id))
        except Exception as exc:  # reported; the other tenants go on
            report.failures.append((tenant_archive_prefix(tenant_id), f"listing failed: {exc}"))
            continue
        for archive in archives:
            if is_kept(archive.hour.date(), retention_days, today):
                report.kept += 1
            elif legal_hold:
                report.held.append(archive)
            else:
                try:
                    sha256 = (recorded_sha256 and recorded_sha256(tenant_id, archive.hour)) or (
                        _object_sha256(client, bucket, archive.object_key)
                    )
                    report.deleted.append(
                        _delete_one(engine, client, bucket, archive, retention_days, sha256, run_id)
                    )
                except Exception as exc:  # reported; the next run retries
                    report.failures.append((archive.object_key, f"{type(exc).__name__}: {exc}"))
    return reports


def deleted_hours(
    engine: sa.Engine, tenant_id: str, hours: list[datetime]
) -> dict[datetime, datetime]:
    """For the given hours of a tenant, those whose archive was deleted: hour -> deleted_at."""
    with session_scope(engine) as session:
        rows = session.execute(
            sa.select(ArchiveDeletion.hour, sa.func.max(ArchiveDeletion.deleted_at))
            .where(
                ArchiveDeletion.tenant_id == tenant_id,
                ArchiveDeletion.hour.in_(hours),
                ArchiveDeletion.state == DELETED,
            )
            .group_by(ArchiveDeletion.hour)
        ).all()
    return {hour: deleted_at for hour, deleted_at in rows if deleted_at is not None}


def archive_deletions(
    session: Session, *, tenant_id: str | None, before_id: int | None, limit: int
) -> list[ArchiveDeletion]:
    """Deletion records, newest first (keyset pages on the id)."""
    query = sa.select(ArchiveDeletion)
    if tenant_id is not None:
        query = query.where(ArchiveDeletion.tenant_id == tenant_id)
    if before_id is not None:
        query = query.where(ArchiveDeletion.id < before_id)
    return list(session.scalars(query.order_by(ArchiveDeletion.id.desc()).limit(limit)))
