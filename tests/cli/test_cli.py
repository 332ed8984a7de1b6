"""The operators' CLI: clear errors with a non-zero exit, and the happy paths for real.

Commands run in-process through click's runner against the real SeaweedFS and SQLite of the
test session, from an empty project folder so no developer `.env` leaks in.
"""

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from minio import Minio

from recordings.db.engine import session_scope
from recordings.db.models import AudioFile, TenantRecordingSettings
from recordings.keys import archive_key
from recordings.tokens import READ_PERMISSION, WEBHOOK_PERMISSION, TokenSettings, verify_token
from recordings_cli.main import main
from recordings_cli.synth import FORMATS, write_conversation


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_help_lists_every_command() -> None:
    code, out = _run("--help")
    assert code == 0
    for command in ("s3", "db", "tenant", "ingest", "seed", "materialize", "demo"):
        assert command in out


def test_missing_configuration_says_what_to_set(no_dotenv: Path) -> None:
    code, out = _run("tenant", "list")
    assert code == 1
    assert "RECORDINGS_DATABASE_URL is not set" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["materialize", "--day", "2025-13-40"], "is not a date; use YYYY-MM-DD"),
        (["materialize", "--day", "2999-01-01"], "is not over yet"),
        (["tenant", "set", "Bad Tenant!", "--enable"], "tenant id 'Bad Tenant!' is invalid"),
        (["tenant", "set", "acme", "--retention-days", "9"], "choose 1 to 7 days"),
    ],
)
def test_bad_input_gets_a_clear_error_and_exit_1(
    recordings_env: dict[str, str], args: list[str], message: str
) -> None:
    code, out = _run(*args)
    assert code == 1
    assert message in out


def test_tenant_settings_round_trip_and_history(
    recordings_env: dict[str, str], engine: sa.Engine
) -> None:
    code, out = _run("tenant", "set", "acme", "--name", "Acme", "--enable", "--by", "alice")
    assert code == 0, out
    code, out = _run("tenant", "set", "acme", "--retention-days", "3", "--by", "bob")
    assert code == 0, out
    code, out = _run("tenant", "list")
    assert code == 0
    assert "acme" in out and "3 days" in out and "by bob" in out
    with session_scope(engine) as session:
        settings = session.get(TenantRecordingSettings, "acme")
        assert settings is not None
        assert (settings.enabled, settings.retention_days) == (True, 3)
    code, out = _run("tenant", "set", "acme", "--legal-hold", "--by", "counsel")
    assert code == 0 and "legal-hold" in out
    with session_scope(engine) as session:
        settings = session.get(TenantRecordingSettings, "acme")
        assert settings is not None and settings.legal_hold


def test_ingest_uploads_and_registers_and_refuses_unreadable_files(
    recordings_env: dict[str, str], engine: sa.Engine, s3_client: Minio, tmp_path: Path
) -> None:
    _run("tenant", "set", "acme", "--enable")
    audio = tmp_path / "call.flac"
    write_conversation(audio, FORMATS["flac"], 3.0, 16000, 2, seed=1)
    args = ["--tenant", "acme", "--conversation", "c1", "--session", "s1"]
    code, out = _run("ingest", str(audio), *args, "--start", "2025-12-12T13:05:00Z")
    assert code == 0, out
    assert "2 ch" in out
    with session_scope(engine) as session:
        (row,) = session.scalars(sa.select(AudioFile)).all()
        assert (row.channels, row.sample_rate, row.format) == (2, 16000, "FLAC")
        assert row.started_at == datetime(2025, 12, 12, 13, 5, tzinfo=UTC)
        stat = s3_client.stat_object(row.bucket, row.object_key)
        assert stat.size == audio.stat().st_size

    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all" * 10)
    code, out = _run(
        "ingest", str(junk), *args, "--recording", "r2", "--start", "2025-12-12T13:06Z"
    )
    assert code == 1
    assert "cannot be archived (corrupt" in out and "--allow-unreadable" in out
    code, out = _run(
        "ingest", str(audio), *args, "--recording", "r3", "--start", "2025-12-12T13:07"
    )
    assert code == 1
    assert "has no time zone" in out
    with session_scope(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(AudioFile)) == 1


def _object_bytes(client: Minio, bucket: str, key: str) -> bytes:
    response = client.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def _keys(client: Minio, bucket: str) -> list[str]:
    return sorted(o.object_name or "" for o in client.list_objects(bucket, recursive=True))


def test_ingest_never_overwrites_and_leaves_nothing_behind_when_it_refuses(
    recordings_env: dict[str, str], engine: sa.Engine, s3_client: Minio, tmp_path: Path
) -> None:
    """The case of issue 13: a second file under a registered recording id used to be uploaded
    over the first recording's object before the refusal, so the next archive of that hour held
    the second file's audio under the first recording's row."""
    _run("tenant", "set", "acme", "--enable")
    _run("tenant", "set", "globex", "--enable")
    bucket = recordings_env["RECORDINGS_SOURCE_BUCKET"]
    first = tmp_path / "first.wav"
    write_conversation(first, FORMATS["wav-pcm16"], 2.0, 16000, 1, seed=1)
    second = tmp_path / "second.wav"  # same name suffix, other audio: 22.05 kHz stereo
    write_conversation(second, FORMATS["wav-pcm16"], 2.0, 22050, 2, seed=2)
    args = ["--tenant", "acme", "--conversation", "c1", "--session", "s1"]
    start = ("--start", "2025-12-12T13:05:00Z")

    code, out = _run("ingest", str(first), *args, "--recording", "same", *start)
    assert code == 0, out
    assert hashlib.sha256(first.read_bytes()).hexdigest() in out
    with session_scope(engine) as session:
        row = session.get(AudioFile, "same")
        assert row is not None
        key, registered = row.object_key, (row.channels, row.sample_rate, row.size_bytes)
        assert row.sha256 == hashlib.sha256(first.read_bytes()).hexdigest()
    objects_before = _keys(s3_client, bucket)

    code, out = _run("ingest", str(second), *args, "--recording", "same", *start)
    assert code == 1
    assert "recording 'same' is already registered; nothing was uploaded" in out
    # The original audio is untouched, and its registration too.
    assert _object_bytes(s3_client, bucket, key) == first.read_bytes()
    with session_scope(engine) as session:
        row = session.get(AudioFile, "same")
        assert row is not None
        assert (
            (row.channels, row.sample_rate, row.size_bytes)
            == registered
            == (
                1,
                16000,
                first.stat().st_size,
            )
        )

    # Refusals under a new recording leave no object behind: a session of another
    # conversation, a conversation of another tenant, an object already at the key.
    code, out = _run(
        "ingest", str(second), "--tenant", "acme", "--conversation", "c2", "--session", "s1",
        "--recording", "new-1", *start,
    )  # fmt: skip
    assert code == 1 and "session 's1' belongs to conversation 'c1'" in out
    code, out = _run(
        "ingest", str(second), "--tenant", "globex", "--conversation", "c1", "--session", "s9",
        "--recording", "new-2", *start,
    )  # fmt: skip
    assert code == 1 and "belongs to another tenant" in out
    assert _keys(s3_client, bucket) == objects_before

    squatter = key.replace("/same", "/new-3")
    s3_client.put_object(bucket, squatter, io.BytesIO(b"someone else's"), 14)
    code, out = _run("ingest", str(second), *args, "--recording", "new-3", *start)
    assert code == 1 and f"an object already exists at s3://{bucket}/{squatter}" in out
    assert _object_bytes(s3_client, bucket, squatter) == b"someone else's"
    with session_scope(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(AudioFile)) == 1


def test_two_ingests_of_one_recording_at_once_leave_the_winner_s_audio(
    recordings_env: dict[str, str], engine: sa.Engine, s3_client: Minio, tmp_path: Path
) -> None:
    """Race-free enough for a developer tool: the registration claims the recording in the
    database before the upload, so of two processes ingesting the same recording at once one
    wins, the other is refused before it uploads, and the object is the winner's file."""
    _run("tenant", "set", "acme", "--enable")
    files = []
    for seed in (1, 2):
        path = tmp_path / f"take{seed}.wav"
        write_conversation(path, FORMATS["wav-pcm16"], 30.0, 16000, 1, seed=seed)
        files.append(path)
    command = [sys.executable, "-m", "recordings_cli", "ingest"]
    args = ["--tenant", "acme", "--conversation", "c1", "--session", "s1", "--recording", "r"]
    processes = [
        subprocess.Popen(
            [*command, str(path), *args, "--start", "2025-12-12T13:05:00Z"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for path in files
    ]
    outcomes = [(process.wait(timeout=120), process.stdout.read()) for process in processes]  # type: ignore[union-attr]
    assert sorted(code for code, _ in outcomes) == [0, 1], outcomes
    winner = files[[code for code, _ in outcomes].index(0)]
    refusal = next(out for code, out in outcomes if code == 1)
    assert "nothing was uploaded" in refusal, refusal
    with session_scope(engine) as session:
        row = session.get(AudioFile, "r")
        assert row is not None and row.sha256 == hashlib.sha256(winner.read_bytes()).hexdigest()
        key = row.object_key
    bucket = recordings_env["RECORDINGS_SOURCE_BUCKET"]
    assert _object_bytes(s3_client, bucket, key) == winner.read_bytes()


@pytest.mark.slow
def test_materialize_archives_a_day_through_dagster(
    recordings_env: dict[str, str],
    s3_client: Minio,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    _run("tenant", "set", "acme", "--enable")
    _run("tenant", "set", "globex", "--disable")
    audio = tmp_path / "call.wav"
    write_conversation(audio, FORMATS["wav-ulaw"], 2.0, 8000, 1, seed=2)
    start = f"{day.isoformat()}T05:10:00Z"
    code, out = _run(
        "ingest",
        str(audio),
        "--tenant",
        "acme",
        "--conversation",
        "c1",
        "--session",
        "s1",
        "--start",
        start,
    )
    assert code == 0, out

    code, out = _run("materialize", "--day", day.isoformat(), "--tenant", "globex")
    assert code == 1
    assert "disabled" in out

    code, out = _run("materialize", "--day", day.isoformat())
    assert code == 0, out
    assert "[1/1] acme: ok, 24/24 hours archived" in out
    hour = datetime(day.year, day.month, day.day, 5, tzinfo=UTC)
    response = s3_client.get_object(
        recordings_env["RECORDINGS_ARCHIVE_BUCKET"], archive_key("acme", hour)
    )
    archive = zipfile.ZipFile(io.BytesIO(response.read()))
    response.close()
    response.release_conn()
    assert json.loads(archive.read("metadata.json"))["counts"]["recordings"] == 1
    assert (home / "dagster.yaml").exists()  # the instance uses the project's dagster.yaml

    # Retention through Dagster: as of 9 days later, acme's 7-day retention expires the day.
    _run("tenant", "set", "acme", "--retention-days", "7")
    code, out = _run("retention", "--today", (day + timedelta(days=9)).isoformat())
    assert code == 0, out
    assert "24 archive(s) deleted" in out
    code, out = _run("retention", "--today", "tomorrow")
    assert code == 1 and "YYYY-MM-DD" in out


def test_token_minting_needs_a_development_secret(
    no_dotenv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = _run("token", "--tenant", "acme")
    assert code == 1
    assert "development tokens are refused" in out
    code, out = _run("token")
    assert code == 1 and "--tenant ID or --host" in out
    secret = "s" * 40
    monkeypatch.setenv("RECORDINGS_JWT_DEV_SECRET", secret)
    code, out = _run("token", "--tenant", "acme")
    assert code == 0
    principal = verify_token(out.strip(), TokenSettings(algorithm="HS256", key=secret))
    assert principal.tenant_id == "acme" and principal.has(READ_PERMISSION)
    assert not principal.has(WEBHOOK_PERMISSION)  # managing webhooks is asked for explicitly
    code, out = _run("token", "--tenant", "acme", "--webhooks")
    assert code == 0
    principal = verify_token(out.strip(), TokenSettings(algorithm="HS256", key=secret))
    assert principal.has(READ_PERMISSION) and principal.has(WEBHOOK_PERMISSION)
    code, out = _run("token", "--host", "--webhooks")
    assert code == 1 and "tenant's permission" in out
