"""Retention against a real S3 server and database: what is deleted, what is kept, the evidence,
the legal hold, and that a tenant's cleanup never touches anything but its own archives."""

import io
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pytest
import sqlalchemy as sa
from minio import Minio
from minio.deleteobjects import DeleteError, DeleteObject

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import session_scope
from recordings.db.models import ArchiveDeletion, TenantRecordingSettingsChange
from recordings.keys import archive_key, day_hours, parse_archive_key, source_key
from recordings.retention import apply_retention, cleanups, deleted_hours, is_kept

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


def _day(client: Minio, bucket: str, tenant: str, age: int) -> list[str]:
    """A whole day of archives, `age` days ago: 24 keys."""
    keys = [archive_key(tenant, hour) for hour in day_hours(TODAY - timedelta(days=age))]
    for key in keys:
        _put(client, bucket, key)
    return keys


def _states(engine: sa.Engine) -> dict[str, str]:
    with session_scope(engine) as session:
        rows = session.execute(sa.select(ArchiveDeletion.object_key, ArchiveDeletion.state))
        return {key: state for key, state in rows}


class _Killed(BaseException):
    """The process dying: nothing in the cleanup catches it."""


class _FaultyDeletes:
    """The real S3 client but for its multi-object delete, which removes everything except the
    keys in `refused` (reporting each as S3 does, in the answer), refuses the whole request
    (`whole`: an error naming no key), or removes everything and then dies (`die`)."""

    def __init__(
        self, client: Minio, refused: Iterable[str] = (), *, whole: bool = False, die: bool = False
    ) -> None:
        self._client, self._refused, self._whole, self._die = client, set(refused), whole, die
        self.requests: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def remove_objects(self, bucket: str, objects: Iterable[DeleteObject]) -> Iterator[DeleteError]:
        names = [o.name for o in objects]
        self.requests.append(len(names))
        if self._whole:
            return iter([DeleteError("AccessDenied", "Access Denied.", None, None)])
        errors = list(
            self._client.remove_objects(
                bucket, [DeleteObject(n) for n in names if n not in self._refused]
            )
        )
        assert errors == []
        if self._die:
            raise _Killed
        return iter(
            DeleteError("AccessDenied", "Access Denied.", n, None)
            for n in names
            if n in self._refused
        )


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
        recorded_sha256=lambda hours: {h: recorded[h] for h in hours if h in recorded},
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


def test_a_whole_expired_day_of_many_tenants_goes_in_batches_each_tenant_reported_when_done(
    engine: sa.Engine, s3_client: Minio, buckets: tuple[str, str]
) -> None:
    archive = buckets[1]
    tenants = [f"t{i}" for i in range(5)]
    expired = {}
    for tenant in tenants:
        _tenant(engine, tenant, 7)
        expired[tenant] = _day(s3_client, archive, tenant, 8)
        _archives(s3_client, archive, tenant, range(7, 8))  # kept
    client = _FaultyDeletes(s3_client)
    reports = []
    for report in cleanups(engine, cast(Minio, client), archive, TODAY, batch_size=50):
        # Yielded once done: its deletions are already recorded as such.
        states = _states(engine)
        assert all(states[key] == "deleted" for key in expired[report.tenant_id])
        reports.append(report)
    assert [r.tenant_id for r in reports] == tenants
    assert all(len(r.deleted) == 24 and r.kept == 1 and not r.failures for r in reports)
    assert client.requests == [48, 48, 24]  # whole tenants per batch, up to 50 keys
    assert not {key for keys in expired.values() for key in keys} & _keys(s3_client, archive)
    assert len(_states(engine)) == 120
    hours = day_hours(TODAY - timedelta(days=8))
    assert set(deleted_hours(engine, "t3", hours)) == set(hours)


def test_a_tenant_with_more_than_a_batch_is_split(
    engine: sa.Engine, s3_client: Minio, buckets: tuple[str, str]
) -> None:
    archive = buckets[1]
    _tenant(engine, "acme", 1)
    keys = _day(s3_client, archive, "acme", 2) + _day(s3_client, archive, "acme", 3)
    client = _FaultyDeletes(s3_client)
    (report,) = cleanups(engine, cast(Minio, client), archive, TODAY, batch_size=20)
    assert len(report.deleted) == 48 and client.requests == [20, 20, 8]
    assert not set(keys) & _keys(s3_client, archive)


def test_keys_s3_refuses_to_delete_are_failures_and_never_recorded_deleted(
    engine: sa.Engine, s3_client: Minio, buckets: tuple[str, str]
) -> None:
    archive = buckets[1]
    _tenant(engine, "acme", 7)
    _tenant(engine, "globex", 7)
    acme = _day(s3_client, archive, "acme", 8)
    globex = _day(s3_client, archive, "globex", 8)
    refused = {acme[3], globex[20]}
    acme_report, globex_report = apply_retention(
        engine, cast(Minio, _FaultyDeletes(s3_client, refused)), archive, TODAY
    )
    assert acme_report.failures == [(acme[3], "S3 AccessDenied: Access Denied.")]
    assert globex_report.failures == [(globex[20], "S3 AccessDenied: Access Denied.")]
    assert len(acme_report.deleted) == len(globex_report.deleted) == 23
    assert not refused & {d.object_key for d in acme_report.deleted + globex_report.deleted}
    assert _keys(s3_client, archive) == refused
    states = _states(engine)
    assert {states[key] for key in refused} == {"deleting"}  # not deleted: settled next time
    hours = day_hours(TODAY - timedelta(days=8))
    assert hours[3] not in deleted_hours(engine, "acme", hours)
    # The next cleanup settles them (still there: abandoned) and deletes them.
    again = apply_retention(engine, s3_client, archive, TODAY)
    assert [len(r.deleted) for r in again] == [1, 1] and _keys(s3_client, archive) == set()
    with session_scope(engine) as session:
        rows = session.execute(
            sa.select(ArchiveDeletion.state).where(ArchiveDeletion.object_key == acme[3])
        )
        assert sorted(state for (state,) in rows) == ["abandoned", "deleted"]


def test_a_refused_request_deletes_and_records_nothing(
    engine: sa.Engine, s3_client: Minio, buckets: tuple[str, str]
) -> None:
    archive = buckets[1]
    _tenant(engine, "acme", 7)
    keys = _day(s3_client, archive, "acme", 8)
    (report,) = apply_retention(
        engine, cast(Minio, _FaultyDeletes(s3_client, whole=True)), archive, TODAY
    )
    assert report.deleted == [] and len(report.failures) == 24
    assert {reason for _, reason in report.failures} == {"S3 AccessDenied: Access Denied."}
    assert _keys(s3_client, archive) == set(keys)
    assert set(_states(engine).values()) == {"deleting"}
    assert deleted_hours(engine, "acme", day_hours(TODAY - timedelta(days=8))) == {}


def test_a_legal_hold_keeps_its_whole_day_while_the_batch_deletes_the_others(
    engine: sa.Engine, s3_client: Minio, buckets: tuple[str, str]
) -> None:
    archive = buckets[1]
    _tenant(engine, "acme", 7)
    _tenant(engine, "globex", 7, legal_hold=True)
    _tenant(engine, "initech", 7)
    held = _day(s3_client, archive, "globex", 8)
    _day(s3_client, archive, "acme", 8)
    _day(s3_client, archive, "initech", 8)
    acme, globex, initech = apply_retention(engine, s3_client, archive, TODAY)
    assert len(acme.deleted) == len(initech.deleted) == 24
    assert globex.deleted == [] and sorted(a.object_key for a in globex.held) == sorted(held)
    assert _keys(s3_client, archive) == set(held)
    assert not set(held) & set(_states(engine))


def test_a_crash_between_the_s3_delete_and_the_deleted_rows_is_settled_next_time(
    engine: sa.Engine, s3_client: Minio, buckets: tuple[str, str]
) -> None:
    archive = buckets[1]
    _tenant(engine, "acme", 7)
    keys = _day(s3_client, archive, "acme", 8)
    with pytest.raises(_Killed):
        apply_retention(engine, cast(Minio, _FaultyDeletes(s3_client, die=True)), archive, TODAY)
    assert _keys(s3_client, archive) == set()
    assert set(_states(engine).values()) == {"deleting"}  # the crash left the first step only
    hours = day_hours(TODAY - timedelta(days=8))
    assert deleted_hours(engine, "acme", hours) == {}
    report = apply_retention(engine, s3_client, archive, TODAY)[0]
    assert report.deleted == [] and not report.failures  # nothing left to delete
    assert set(_states(engine).values()) == {"deleted"} and len(_states(engine)) == len(keys)
    assert set(deleted_hours(engine, "acme", hours)) == set(hours)


def test_evidence_that_cannot_be_written_stops_that_batch_only_and_deletes_nothing_of_it(
    engine: sa.Engine, s3_client: Minio, buckets: tuple[str, str]
) -> None:
    archive = buckets[1]
    _tenant(engine, "acme", 7)
    _tenant(engine, "globex", 7)
    acme = _day(s3_client, archive, "acme", 8)
    _day(s3_client, archive, "globex", 8)
    refusals = []

    def refuse_first_insert(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO archive_deletions") and not refusals:
            refusals.append(statement)
            raise sa.exc.OperationalError(statement, {}, Exception("disk full"))

    sa.event.listen(engine, "before_cursor_execute", refuse_first_insert)
    try:
        acme_report, globex_report = cleanups(engine, s3_client, archive, TODAY, batch_size=24)
    finally:
        sa.event.remove(engine, "before_cursor_execute", refuse_first_insert)
    assert acme_report.deleted == [] and len(acme_report.failures) == 24
    assert acme_report.failures[0][1].startswith("recording the deletion failed: Operational")
    assert len(globex_report.deleted) == 24 and not globex_report.failures
    assert _keys(s3_client, archive) == set(acme)
    assert set(_states(engine)) == {
        archive_key("globex", h) for h in day_hours(TODAY - timedelta(days=8))
    }
