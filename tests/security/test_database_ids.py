"""Ids and object keys that come from the database are input too.

Recording rows are written by the conversation platform, not through our validating catalog, so
a row may carry ids or a source key that climb out of the ZIP root, out of the builder's work
folder or into another tenant's prefix. These tests write such rows straight into the real
database, build the hour against the real S3 server, and read back what a compliance team would
receive. Tenant ids, which become S3 prefixes and partition keys, are refused where they enter.
"""

import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from minio import Minio

from recordings.archive.hourly import build_hour_archive
from recordings.catalog import ensure_tenant, recordings_in_hour
from recordings.db.engine import session_scope
from recordings.db.models import AudioFile, Conversation, ConversationSession, Tenant
from recordings.keys import InvalidIdentifierError, source_key
from recordings.storage import DownloadedObject, MinioObjectStore
from recordings_cli.synth import FORMATS, write_conversation

pytestmark = [pytest.mark.integration, pytest.mark.resilience]

HOUR = datetime(2025, 12, 12, 13, tzinfo=UTC)
GLOBEX_KEY = source_key("globex", "g1", "g1-s1", "g1-r1", "wav")
ACME_KEY = source_key("acme", "c1", "s1", "r1", "wav")

# Source keys an acme row may carry that name globex's object, or may be read as naming it.
FOREIGN_SOURCES = {
    "foreign-direct": GLOBEX_KEY,
    "foreign-dotdot": f"tenants/acme/../../{GLOBEX_KEY}",
    "foreign-dotdot-inner": GLOBEX_KEY.replace("tenants/globex/", "tenants/acme/../globex/"),
    "foreign-absolute": f"/{GLOBEX_KEY}",
    "foreign-backslash": "tenants/acme/..\\globex\\conversations\\g1\\g1-s1\\g1-r1.wav",
    "foreign-dot": "tenants/acme/./../globex/conversations/g1/g1-s1/g1-r1.wav",
    "foreign-empty-segment": "tenants/acme//x.wav",
    "foreign-control": "tenants/acme/\x1b[2Jx.wav",
    "foreign-other-prefix": "tenants/acme-evil/x.wav",
}
# (conversation, session, recording) ids that must never become ZIP entry names or paths.
HOSTILE_IDS = {
    "dotdot-conversation": ("../../escape", "s1", "id-dotdot-conversation"),
    "absolute-session": ("c1", "/etc", "id-absolute-session"),
    "backslash-recording": ("c1", "s1", "a\\..\\..\\b"),
    "workdir-escape": ("c1", "s1", "../../../pwned"),
    "rtl-override": ("c\u202efdp.exe", "s1", "id-rtl"),
    "zero-width": ("c\u200b1", "s1", "id-zero-width"),
    "combining": ("c1", "s\u0301", "id-combining"),
    "fullwidth-dots": ("c1", "s1", "\uff0e\uff0e"),
    "dot-only": ("c1", ".", "id-dot-only"),
}


@dataclass
class WatchedStore:
    """The real S3 store, remembering what the builder asked it to read and where it wrote."""

    inner: MinioObjectStore
    reads: list[tuple[str, Path]] = field(default_factory=list)

    def download(self, bucket: str, key: str, destination: Path) -> DownloadedObject:
        self.reads.append((key, destination))
        return self.inner.download(bucket, key, destination)

    def upload_archive(self, key: str, stream: io.RawIOBase) -> str:
        return self.inner.upload_archive(key, stream)


def _insert_row(
    engine: sa.Engine,
    tenant: str,
    ids: tuple[str, str, str],
    bucket: str,
    key: str,
    minute: int,
) -> None:
    """A recording row as another system writes it: straight into the tables, unvalidated."""
    conversation_id, session_id, recording_id = ids
    started = HOUR + timedelta(minutes=minute)
    with session_scope(engine) as session:
        if session.get(Conversation, conversation_id) is None:
            session.add(Conversation(id=conversation_id, tenant_id=tenant, started_at=started))
            session.flush()
        if session.get(ConversationSession, session_id) is None:
            session.add(
                ConversationSession(
                    id=session_id,
                    conversation_id=conversation_id,
                    tenant_id=tenant,
                    started_at=started,
                )
            )
            session.flush()
        session.add(
            AudioFile(
                id=recording_id,
                tenant_id=tenant,
                conversation_id=conversation_id,
                session_id=session_id,
                bucket=bucket,
                object_key=key,
                started_at=started,
                duration_seconds=2.0,
                format="WAV",
                channels=1,
            )
        )


def _read_zip(client: Minio, bucket: str, key: str) -> zipfile.ZipFile:
    response = client.get_object(bucket, key)
    try:
        return zipfile.ZipFile(io.BytesIO(response.read()))
    finally:
        response.close()
        response.release_conn()


def test_hostile_rows_never_escape_the_zip_root_nor_read_another_tenants_objects(
    engine: sa.Engine, s3_client: Minio, buckets: tuple[str, str], tmp_path: Path
) -> None:
    source_bucket, archive_bucket = buckets
    wav = tmp_path / "call.wav"
    write_conversation(wav, FORMATS["wav-ulaw"], 2.0, 8000, 1, seed=7)
    # globex's recording exists, as does every key an acme row could be resolved to.
    s3_client.fput_object(source_bucket, GLOBEX_KEY, str(wav))
    s3_client.fput_object(source_bucket, ACME_KEY, str(wav))
    with session_scope(engine) as session:
        ensure_tenant(session, "acme")
        ensure_tenant(session, "globex")
    _insert_row(engine, "acme", ("c1", "s1", "r1"), source_bucket, ACME_KEY, 0)
    for minute, (name, key) in enumerate(FOREIGN_SOURCES.items(), start=1):
        _insert_row(engine, "acme", ("c1", "s1", f"r-{name}"), source_bucket, key, minute)
    for minute, (name, ids) in enumerate(HOSTILE_IDS.items(), start=20):
        # A readable acme object, so nothing but the ids could stop the recording.
        key = f"tenants/acme/hostile/{name}.wav"
        s3_client.fput_object(source_bucket, key, str(wav))
        _insert_row(engine, "acme", ids, source_bucket, key, minute)

    with session_scope(engine) as session:
        recordings = recordings_in_hour(session, "acme", HOUR)
    assert len(recordings) == 1 + len(FOREIGN_SOURCES) + len(HOSTILE_IDS)
    scratch = tmp_path / "scratch"
    work = scratch / "work"
    work.mkdir(parents=True)
    store = WatchedStore(MinioObjectStore(s3_client, archive_bucket))
    result = build_hour_archive(
        tenant_id="acme", hour=HOUR, recordings=recordings, store=store, temp_dir=work
    )

    # The hour is built: one bad row neither fails it nor smuggles anything into it.
    assert result.recording_count == 1
    assert result.failed_recording_count == len(FOREIGN_SOURCES) + len(HOSTILE_IDS)
    # The builder read only acme's own, well-formed keys, into its work folder.
    assert [key for key, _ in store.reads] == [ACME_KEY]
    for _, destination in store.reads:
        assert destination.resolve().is_relative_to(work.resolve())
    assert [p.name for p in scratch.iterdir()] == ["work"]

    archive = _read_zip(s3_client, archive_bucket, result.object_key)
    names = archive.namelist()
    assert names == ["c1/s1/r1.opus", "metadata.json"]
    for name in names:
        assert not name.startswith("/") and "\\" not in name
        assert ".." not in name.split("/") and name.isascii()
    metadata = json.loads(archive.read("metadata.json"))
    reasons = {f["recordingId"]: (f["reason"], f["detail"]) for f in metadata["failedRecordings"]}
    for name in FOREIGN_SOURCES:
        reason, detail = reasons[f"r-{name}"]
        assert reason == "foreign_source"
        assert "tenants/acme/" in detail and "not read" in detail
    for ids in HOSTILE_IDS.values():
        reason, detail = reasons[ids[2]]
        assert reason == "invalid_id" and "not archived" in detail
    assert metadata["counts"] == {
        "conversations": 1,
        "sessions": 1,
        "recordings": 1,
        "failedRecordings": len(FOREIGN_SOURCES) + len(HOSTILE_IDS),
        "sourceChanged": 0,
        "audioSeconds": metadata["counts"]["audioSeconds"],
    }


HOSTILE_TENANT_IDS = [
    "../globex",
    "acme/../globex",
    "acme\\globex",
    "/acme",
    "acme\u202e",
    "ac\u200bme",
    "acme\u0301",
    "\u0430cme",  # Cyrillic a: looks like acme
    "ACME",
    "acme|x",
    "a" * 64,
    "",
]


@pytest.mark.parametrize("tenant", HOSTILE_TENANT_IDS)
def test_a_hostile_tenant_id_is_refused_where_tenants_are_created(
    engine: sa.Engine, tenant: str
) -> None:
    with session_scope(engine) as session:
        with pytest.raises(InvalidIdentifierError, match="tenant id"):
            ensure_tenant(session, tenant)
    with session_scope(engine) as session:
        assert session.scalars(sa.select(Tenant.id)).all() == []
