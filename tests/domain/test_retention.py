"""Retention against a real S3 server and database: what is deleted, what is kept, the evidence,
the legal hold, and that a tenant's cleanup never touches anything but its own archives."""

import io
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from minio import Minio

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import session_scope
from recordings.db.models import ArchiveDeletion, TenantRecordingSettingsChange
from recordings.keys import archive_key, day_hours, parse_archive_key, source_key
from recordings.retention import apply_retention, deleted_hours, is_kept

pytestmark = pytest.mark.integration

TODAY = date(2026, 3, 20)


def _put(client: Minio, bucket: str, key: str, body: bytes = b"PK-archive") -> None:
    client.put_object(bucket, key, io.BytesIO(body), len(body))


def _keys(client: Minio, bucket: str) -> set[str]:
    return {o.object_name for o in client.list_objects(bucket, recursive=True) if o.object_name}


def _archives(client: Minio, bucket: str, tenant: str, ages: range) -> dict[int, str]:
    keys = {}
    for age in ages:
        key = archive_key(tenant, day_hours(TODAY - timedelta(days=age))[7])
        _put(client, bucket, key)
        keys[age] = key
    return keys


def _tenant(engine: sa.Engine, tenant: str, retention: int, **extra: bool) -> None:
    with session_scope(engine) as session:
        ensure_tenant(session, tenant)
        set_recording_settings(
            session, tenant, changed_by="test", enabled=True, retention_days=retention, **extra
        )


def test_the_rule_keeps_day_d_while_today_minus_d_is_within_retention() -> None:
    assert is_kept(TODAY - timedelta(days=3), 3, TODAY)
    assert not is_kept(TODAY - timedelta(days=4), 3, TODAY)


def test_archive_keys_parse_strictly() -> None:
    hour = datetime(2026, 3, 19, 7, tzinfo=UTC)
    assert parse_archive_key("acme", archive_key("acme", hour)) == hour
    prefix = "tenants/acme/daily-conversation-audio-recordings/"
    for key in (
        archive_key("globex", hour),
        prefix + "2026/03/19/07.zip.bak",
        prefix + "2026/02/30/07.zip",
        prefix + "2026/03/19/24.zip",
        prefix + "2026/03/19/../07.zip",
        prefix + "notes.txt",
    ):
        assert parse_archive_key("acme", key) is None, key


def test_expired_archives_are_deleted_with_evidence_and_nothing_else_is_touched(
    engine: sa.Engine, s3_client: Minio, buckets: tuple[str, str]
) -> None:
    source, archive = buckets
    _tenant(engine, "acme", 3)
    _tenant(engine, "globex", 7)
    acme = _archives(s3_client, archive, "acme", range(0, 10))
    globex = _archives(s3_client, archive, "globex", range(0, 10))
    stray = "tenants/acme/daily-conversation-audio-recordings/readme.txt"
    _put(s3_client, archive, stray)
    audio = source_key("acme", "c1", "s1", "r1", "wav")
    _put(s3_client, source, audio)
    _put(s3_client, archive, audio)  # even a source-shaped key in the archive bucket

    recorded = {("acme", day_hours(TODAY - timedelta(days=5))[7]): "ab" * 32}
    reports = apply_retention(
        engine,
        s3_client,
        archive,
        TODAY,
        recorded_sha256=lambda tenant, hour: recorded.get((tenant, hour)),
        run_id="run-1",
    )
    by_tenant = {r.tenant_id: r for r in reports}
    assert sorted(d.hour.date() for d in by_tenant["acme"].deleted) == [
        TODAY - timedelta(days=age) for age in range(9, 3, -1)
    ]
    assert by_tenant["acme"].kept == 4 and not by_tenant["acme"].failures
    assert len(by_tenant["globex"].deleted) == 2  # ages 8 and 9
    remaining = _keys(s3_client, archive)
    assert {acme[age] for age in range(0, 4)} <= remaining
    assert not {acme[age] for age in range(4, 10)} & remaining
    assert {globex[age] for age in range(0, 8)} <= remaining
    assert stray in remaining and audio in remaining
    assert audio in _keys(s3_client, source)

    with session_scope(engine) as session:
        rows = list(session.scalars(sa.select(ArchiveDeletion).order_by(ArchiveDeletion.hour)))
    assert len(rows) == 8 and {r.state for r in rows} == {"deleted"}
    five_days = next(r for r in rows if r.hour.date() == TODAY - timedelta(days=5))
    assert five_days.sha256 == "ab" * 32  # as the pipeline recorded it
    assert five_days.retention_days == 3 and five_days.run_id == "run-1"
    hashed = next(r for r in rows if r.hour.date() == TODAY - timedelta(days=6))
    assert hashed.sha256 is not None and len(hashed.sha256) == 64  # hashed before deleting
    hours = day_hours(TODAY - timedelta(days=5))
    assert set(deleted_hours(engine, "acme", hours)) == {hours[7]}


def test_lowering_retention_takes_effect_and_raising_it_resurrects_nothing(
    engine: sa.Engine, s3_client: Minio, buckets: tuple[str, str]
) -> None:
    archive = buckets[1]
    _tenant(engine, "acme", 7)
    keys = _archives(s3_client, archive, "acme", range(0, 8))
    assert apply_retention(engine, s3_client, archive, TODAY)[0].deleted == []
    _tenant(engine, "acme", 2)
    assert len(apply_retention(engine, s3_client, archive, TODAY)[0].deleted) == 5
    _tenant(engine, "acme", 7)
    report = apply_retention(engine, s3_client, archive, TODAY)[0]
    assert report.deleted == [] and report.kept == 3
    assert _keys(s3_client, archive) == {keys[age] for age in range(0, 3)}


def test_a_legal_hold_keeps_everything_and_the_cleanup_says_what_it_kept(
    engine: sa.Engine, s3_client: Minio, buckets: tuple[str, str]
) -> None:
    archive = buckets[1]
    _tenant(engine, "acme", 1, legal_hold=True)
    keys = _archives(s3_client, archive, "acme", range(0, 5))
    report = apply_retention(engine, s3_client, archive, TODAY)[0]
    assert report.legal_hold and report.deleted == []
    assert sorted(a.object_key for a in report.held) == sorted(keys[age] for age in (2, 3, 4))
    assert _keys(s3_client, archive) == set(keys.values())
    # Lifting the hold is itself recorded, and the next cleanup deletes.
    with session_scope(engine) as session:
        set_recording_settings(session, "acme", changed_by="counsel", legal_hold=False)
        change = session.scalars(
            sa.select(TenantRecordingSettingsChange).order_by(
                TenantRecordingSettingsChange.id.desc()
            )
        ).first()
        assert change is not None
        assert (change.changed_by, change.legal_hold_before, change.legal_hold_after) == (
            "counsel",
            True,
            False,
        )
    assert len(apply_retention(engine, s3_client, archive, TODAY)[0].deleted) == 3


def test_a_disabled_tenants_archives_still_age_out(
    engine: sa.Engine, s3_client: Minio, buckets: tuple[str, str]
) -> None:
    archive = buckets[1]
    _tenant(engine, "acme", 2)
    with session_scope(engine) as session:
        set_recording_settings(session, "acme", changed_by="host", enabled=False)
    _archives(s3_client, archive, "acme", range(0, 4))
    assert len(apply_retention(engine, s3_client, archive, TODAY)[0].deleted) == 1


def test_an_interrupted_deletion_is_settled_by_the_next_cleanup(
    engine: sa.Engine, s3_client: Minio, buckets: tuple[str, str]
) -> None:
    archive = buckets[1]
    _tenant(engine, "acme", 7)
    keys = _archives(s3_client, archive, "acme", range(0, 2))
    gone_hour = day_hours(TODAY - timedelta(days=9))[7]
    with session_scope(engine) as session:
        for hour, key in ((gone_hour, archive_key("acme", gone_hour)), (None, keys[1])):
            session.add(
                ArchiveDeletion(
                    tenant_id="acme",
                    hour=hour or day_hours(TODAY - timedelta(days=1))[7],
                    object_key=key,
                    sha256="00" * 32,
                    retention_days=7,
                    state="deleting",
                )
            )
    apply_retention(engine, s3_client, archive, TODAY)
    with session_scope(engine) as session:
        rows = session.execute(sa.select(ArchiveDeletion.object_key, ArchiveDeletion.state))
        states = {key: state for key, state in rows}
    assert states[archive_key("acme", gone_hour)] == "deleted"  # the object was already gone
    assert states[keys[1]] == "abandoned"  # still there and within retention: kept
    assert keys[1] in _keys(s3_client, archive)
