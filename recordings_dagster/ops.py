"""Ops of the operational jobs: today, the retention cleanup.

The cleanup itself is `recordings.retention.apply_retention` (plain code, tested alone); this op
feeds it the SHA-256 each archive's materialization recorded, and turns its report into what
operators see: one observation per deleted hour on the archive asset (the UI shows the
partition's latest event as "expired: deleted by retention"), and the run's metadata (deleted,
kept, held by a legal hold, failed). Any failure fails the run after the other tenants are done,
so the daemon's run retries try again.
"""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg

from recordings.keys import archive_partition_key
from recordings.retention import TenantCleanup, apply_retention
from recordings.storage import abort_stale_uploads
from recordings_dagster.resources import DatabaseResource, ObjectStoreResource
from recordings_instance.archives import ARCHIVE_ASSET_KEY, recorded_sha256

# Far longer than any hour's build: an upload this old has no worker left to complete it.
STALE_UPLOAD_AGE = timedelta(hours=24)


class RetentionConfig(dg.Config):
    """Run options an operator can set in the launchpad."""

    today: str | None = None
    """The UTC date the rule is applied for (YYYY-MM-DD); default: the run's current date."""


def _summary(reports: list[TenantCleanup]) -> dict[str, Any]:
    return {
        "tenants": len(reports),
        "deleted": sum(len(r.deleted) for r in reports),
        "kept": sum(r.kept for r in reports),
        "held_by_legal_hold": sum(len(r.held) for r in reports),
        "held_tenants": dg.MetadataValue.json(
            {r.tenant_id: len(r.held) for r in reports if r.held}
        ),
        "failed": sum(len(r.failures) for r in reports),
        "deleted_by_tenant": dg.MetadataValue.json(
            {r.tenant_id: len(r.deleted) for r in reports if r.deleted}
        ),
    }


@dg.op(description="Delete archives outside each tenant's retention, with evidence.")
def apply_archive_retention(
    context: dg.OpExecutionContext,
    config: RetentionConfig,
    database: DatabaseResource,
    object_store: ObjectStoreResource,
) -> dg.Output[None]:
    today = date.fromisoformat(config.today) if config.today else datetime.now(UTC).date()
    reports = apply_retention(
        database.engine(),
        object_store.client(),
        object_store.archive_bucket,
        today,
        recorded_sha256=lambda tenant, hour: recorded_sha256(
            context.instance, archive_partition_key(tenant, hour)
        ),
        run_id=context.run_id,
    )
    for report in reports:
        for deleted in report.deleted:
            context.log_event(
                dg.AssetObservation(
                    asset_key=ARCHIVE_ASSET_KEY,
                    partition=archive_partition_key(deleted.tenant_id, deleted.hour),
                    description="expired: deleted by retention",
                    metadata={
                        "status": "expired",
                        "object_key": deleted.object_key,
                        "sha256": deleted.sha256,
                        "deleted_at": deleted.deleted_at.isoformat(),
                        "retention_days": deleted.retention_days,
                    },
                )
            )
        if report.held:
            context.log.warning(
                f"{report.tenant_id}: legal hold kept {len(report.held)} archive(s) beyond its "
                f"{report.retention_days}-day retention"
            )
        context.log.info(
            f"{report.tenant_id}: retention {report.retention_days} d, deleted "
            f"{len(report.deleted)}, kept {report.kept}, held {len(report.held)}"
        )
    # Housekeeping in the same daily pass: parts of uploads a killed worker could not abort.
    housekeeping_failures: list[tuple[str, str, str]] = []
    aborted = []
    try:
        aborted = abort_stale_uploads(
            object_store.client(),
            object_store.archive_bucket,
            "tenants/",
            older_than=STALE_UPLOAD_AGE,
            now=datetime.now(UTC),
        )
    except Exception as exc:  # reported with the run's other failures
        housekeeping_failures.append(("*", "incomplete uploads", f"{type(exc).__name__}: {exc}"))
    for upload in aborted:
        context.log.warning(
            f"aborted an incomplete upload of {upload.key} started {upload.initiated} "
            "(a worker stopped mid-upload; nothing was ever visible at the key)"
        )
    failures = [(r.tenant_id, key, reason) for r in reports for key, reason in r.failures]
    failures += housekeeping_failures
    if failures:
        raise dg.Failure(
            description=f"{len(failures)} archive(s) could not be deleted; the run will be "
            "retried. First: " + "; ".join(f"{t}: {k}: {r}" for t, k, r in failures[:3]),
            metadata={**_summary(reports), "failures": dg.MetadataValue.json(failures)},
        )
    return dg.Output(
        None,
        metadata={
            **_summary(reports),
            "today": today.isoformat(),
            "stale_uploads_aborted": len(aborted),
        },
    )
