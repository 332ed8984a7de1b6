"""The operators' CLI: clear errors with a non-zero exit, and the happy paths for real.

Commands run in-process through click's runner against the real SeaweedFS and SQLite of the
test session, from an empty project folder so no developer `.env` leaks in.
"""

import io
import json
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
from recordings.tokens import READ_PERMISSION, TokenSettings, verify_token
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
