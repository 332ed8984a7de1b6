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

A whole expired day at 10,000 tenants is 240,000 deletions, so the work is done in batches of
up to `DELETE_BATCH` archives (whole tenants, filled in tenant order): one lookup of the
SHA-256s the pipeline recorded, one insert of the `deleting` rows, one S3 multi-object delete,
one update to `deleted`. Per archive, only what S3 reports as failed stays behind (`deleting`,
reconciled next time) and is reported as the tenant's failure.
"""

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from sqlalchemy.orm import Session

from recordings.archive.evidence import EvidenceError
from recordings.db.engine import session_scope
from recordings.db.models import ArchiveDeletion, TenantRecordingSettings, utcnow
from recordings.keys import parse_archive_key, tenant_archive_prefix

logger = logging.getLogger(__name__)

DELETING, DELETED, ABANDONED = "deleting", "deleted", "abandoned"

# S3's limit for one multi-object delete request.
DELETE_BATCH = 1000

TenantHour = tuple[str, datetime]

# The SHA-256 the pipeline recorded for each of these tenant-hours' archives (their Dagster
# materializations), in one lookup. A tenant-hour it does not know is left out: the cleanup then
# hashes the object itself before deleting it; one whose recorded value is unreadable maps to
# the `EvidenceError` saying why, and that archive is not deleted.
RecordedSha256 = Callable[[Sequence[TenantHour]], Mapping[TenantHour, str | EvidenceError]]


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


@dataclass(frozen=True)
class _Candidate:
    """An archive outside its tenant's retention, and the report its outcome goes to."""

    report: TenantCleanup
    archive: StoredArchive

    def fail(self, reason: str) -> None:
        self.report.failures.append((self.archive.object_key, reason))


@dataclass(frozen=True)
class _Deleting:
    """A candidate with its evidence row written `deleting`."""

    candidate: _Candidate
    sha256: str
    row_id: int


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass
class _Batch:
    """Deletes up to `DELETE_BATCH` expired archives with a constant number of round trips:
    the recorded SHA-256s, the `deleting` rows, the S3 delete, the `deleted` rows."""

    engine: sa.Engine
    client: Minio
    bucket: str
    recorded_sha256: RecordedSha256 | None
    run_id: str | None

    def delete_all(self, candidates: Sequence[_Candidate], batch_size: int) -> None:
        """`delete` in batches of `batch_size` (one tenant may have more than a batch)."""
        for start in range(0, len(candidates), batch_size):
            self.delete(candidates[start : start + batch_size])

    def delete(self, candidates: Sequence[_Candidate]) -> None:
        if not candidates:
            return
        hashed = self._sha256s(candidates)
        if not hashed:
            return
        try:
            deleting = self._record_deleting(hashed)
        except Exception as exc:  # nothing written, nothing deleted; the next run retries
            for candidate, _ in hashed:
                candidate.fail(f"recording the deletion failed: {_describe(exc)}")
            return
        removed = self._remove(deleting)
        if not removed:
            return
        deleted_at = utcnow()
        try:
            with session_scope(self.engine) as session:
                session.execute(
                    sa.update(ArchiveDeletion)
                    .where(ArchiveDeletion.id.in_([d.row_id for d in removed]))
                    .values(state=DELETED, deleted_at=deleted_at)
                )
        except Exception as exc:  # gone but still `deleting`: the next cleanup settles them
            for deleting in removed:
                deleting.candidate.fail(f"deleted, evidence left `deleting`: {_describe(exc)}")
            return
        for deleting in removed:
            archive, report = deleting.candidate.archive, deleting.candidate.report
            report.deleted.append(
                DeletedArchive(
                    archive.tenant_id,
                    archive.hour,
                    archive.object_key,
                    deleting.sha256,
                    archive.size_bytes,
                    report.retention_days,
                    deleted_at,
                )
            )

    def _sha256s(self, candidates: Sequence[_Candidate]) -> list[tuple[_Candidate, str]]:
        """Each candidate with the SHA-256 its evidence records (or, when the pipeline
        recorded none, the object's own); a candidate without one fails."""
        recorded: Mapping[TenantHour, str | EvidenceError] = {}
        if self.recorded_sha256 is not None:
            try:
                recorded = self.recorded_sha256(
                    [(c.archive.tenant_id, c.archive.hour) for c in candidates]
                )
            except Exception as exc:  # reported; the next run retries
                for candidate in candidates:
                    candidate.fail(f"recorded SHA-256 lookup failed: {_describe(exc)}")
                return []
        hashed = []
        for candidate in candidates:
            archive = candidate.archive
            sha256 = recorded.get((archive.tenant_id, archive.hour))
            if isinstance(sha256, EvidenceError):
                candidate.fail(_describe(sha256))
                continue
            if sha256 is None:
                try:
                    sha256 = _object_sha256(self.client, self.bucket, archive.object_key)
                except Exception as exc:  # reported; the next run retries
                    candidate.fail(_describe(exc))
                    continue
            hashed.append((candidate, sha256))
        return hashed

    def _record_deleting(self, hashed: Sequence[tuple[_Candidate, str]]) -> list[_Deleting]:
        """Insert the `deleting` rows in one transaction, before anything is deleted."""
        requested_at = utcnow()
        with session_scope(self.engine) as session:
            row_ids = session.scalars(
                sa.insert(ArchiveDeletion).returning(
                    ArchiveDeletion.id, sort_by_parameter_order=True
                ),
                [
                    {
                        "tenant_id": c.archive.tenant_id,
                        "hour": c.archive.hour,
                        "object_key": c.archive.object_key,
                        "sha256": sha256,
                        "size_bytes": c.archive.size_bytes,
                        "retention_days": c.report.retention_days,
                        "state": DELETING,
                        "requested_at": requested_at,
                        "run_id": self.run_id,
                    }
                    for c, sha256 in hashed
                ],
            ).all()
        return [
            _Deleting(candidate, sha256, row_id)
            for (candidate, sha256), row_id in zip(hashed, row_ids, strict=True)
        ]

    def _remove(self, deleting: Sequence[_Deleting]) -> list[_Deleting]:
        """One multi-object delete; those S3 removed. What it did not remove (each key it
        names, or all of them when it refused the request or the request failed) stays
        `deleting`, for the next cleanup to settle, and is reported."""
        try:
            errors = list(
                self.client.remove_objects(
                    self.bucket, [DeleteObject(d.candidate.archive.object_key) for d in deleting]
                )
            )
        except Exception as exc:  # unknown which were removed
            for each in deleting:
                each.candidate.fail(_describe(exc))
            return []
        refused = {error.name: error for error in errors if error.name is not None}
        whole = next((error for error in errors if error.name is None), None)
        removed = []
        for each in deleting:
            error = whole or refused.get(each.candidate.archive.object_key)
            if error is None:
                removed.append(each)
            else:
                each.candidate.fail(f"S3 {error.code}: {error.message}")
        return removed


def _tenant_settings(
    engine: sa.Engine, tenant_ids: Iterable[str] | None
) -> list[tuple[str, int, bool]]:
    with session_scope(engine) as session:
        query = sa.select(TenantRecordingSettings).order_by(TenantRecordingSettings.tenant_id)
        if tenant_ids is not None:
            query = query.where(TenantRecordingSettings.tenant_id.in_(list(tenant_ids)))
        return [(s.tenant_id, s.retention_days, s.legal_hold) for s in session.scalars(query)]


def cleanups(
    engine: sa.Engine,
    client: Minio,
    bucket: str,
    today: date,
    *,
    recorded_sha256: RecordedSha256 | None = None,
    run_id: str | None = None,
    tenant_ids: Iterable[str] | None = None,
    batch_size: int = DELETE_BATCH,
) -> Iterator[TenantCleanup]:
    """Delete every archive outside its tenant's retention (all tenants with settings, or
    `tenant_ids`), recording each deletion, and yield each tenant's report once its deletions
    are done (in tenant order); one tenant's failure does not stop the others."""
    reconcile_interrupted(engine, client, bucket)
    batch = _Batch(engine, client, bucket, recorded_sha256, run_id)
    candidates: list[_Candidate] = []  # of the reports in `waiting`, not deleted yet
    waiting: list[TenantCleanup] = []
    for tenant_id, retention_days, legal_hold in _tenant_settings(engine, tenant_ids):
        report = TenantCleanup(tenant_id, retention_days, legal_hold)
        expired: list[_Candidate] = []
        try:
            archives = list(stored_archives(client, bucket, tenant_id))
        except Exception as exc:  # reported; the other tenants go on
            report.failures.append((tenant_archive_prefix(tenant_id), f"listing failed: {exc}"))
            archives = []
        for archive in archives:
            if is_kept(archive.hour.date(), retention_days, today):
                report.kept += 1
            elif legal_hold:
                report.held.append(archive)
            else:
                expired.append(_Candidate(report, archive))
        if candidates and len(candidates) + len(expired) > batch_size:
            batch.delete_all(candidates, batch_size)
            candidates.clear()
            yield from waiting
            waiting.clear()
        waiting.append(report)
        candidates.extend(expired)
    batch.delete_all(candidates, batch_size)
    yield from waiting


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
    """Every tenant's report of `cleanups`, once all are done."""
    return list(
        cleanups(
            engine,
            client,
            bucket,
            today,
            recorded_sha256=recorded_sha256,
            run_id=run_id,
            tenant_ids=tenant_ids,
        )
    )


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
