"""`recordings`: the operators' and developers' command line.

Run it from the project folder: local state (the S3 server's data, the SQLite database, the
Dagster instance) lives under `.local/`, and the configuration in `.env`, which `dagster dev`
reads too. Every failure a user can cause ends with a message saying what to do and a non-zero
exit status. Dagster is imported only by the commands that run it, so `--help` stays fast.
"""

import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from minio import Minio
    from sqlalchemy.orm import Session

    from recordings_cli.local_s3 import LocalS3Server
    from recordings_dagster.execution import TenantDayOutcome

from recordings.settings import S3Settings, SettingsError, database_url_from_env, load_dotenv

LOCAL_DIR_NAME = ".local"
API_PORT = 8000
ENV_FILE_NAME = ".env"


def _project_dir() -> Path:
    return Path(os.environ.get("RECORDINGS_PROJECT_DIR") or Path.cwd()).resolve()


def _local_dir() -> Path:
    return _project_dir() / LOCAL_DIR_NAME


def _fail(message: str) -> "click.ClickException":
    return click.ClickException(message)


def _yesterday() -> date:
    return (datetime.now(UTC) - timedelta(days=1)).date()


def _parse_day(value: str | None) -> date:
    if value is None:
        return _yesterday()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise _fail(f"--day {value!r} is not a date; use YYYY-MM-DD, e.g. 2025-12-12") from None
    if day >= datetime.now(UTC).date():
        raise _fail(f"--day {day} is not over yet (UTC); archives are built for finished days")
    return day


def _parse_start(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _fail(
            f"--start {value!r} is not an ISO 8601 time; use e.g. 2025-12-12T13:05:00Z"
        ) from None
    if moment.tzinfo is None:
        raise _fail(f"--start {value!r} has no time zone; add Z for UTC (2025-12-12T13:05:00Z)")
    return moment.astimezone(UTC)


def _settings() -> S3Settings:
    try:
        return S3Settings.from_env()
    except SettingsError as exc:
        raise _fail(str(exc)) from None


def _database_url() -> str:
    try:
        return database_url_from_env()
    except SettingsError as exc:
        raise _fail(str(exc)) from None


@contextmanager
def _db_session() -> Iterator["Session"]:
    from recordings.db.engine import create_db_engine, session_scope

    engine = create_db_engine(_database_url())
    try:
        with session_scope(engine) as session:
            yield session
    except Exception as exc:
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            raise _fail(
                f"the database is not usable ({exc.orig}); run `recordings db upgrade` first"
            ) from None
        raise
    finally:
        engine.dispose()


def _minio() -> "Minio":
    from recordings.storage import S3Connection

    s3 = _settings()
    return S3Connection(s3.endpoint, s3.access_key, s3.secret_key, s3.region).client()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="daily-conversation-audio-recordings")
def main() -> None:
    """Daily conversation audio recordings: hourly Opus ZIP archives per tenant.

    Configuration comes from the environment (RECORDINGS_* variables) and, for local
    development, from the .env file in the current folder.
    """
    load_dotenv(_project_dir() / ENV_FILE_NAME)
    # BackfillPolicy is beta in Dagster 1.13; the warning is for us, not for operators.
    warnings.filterwarnings("ignore", message="Parameter `backfill_policy`")


# --- local S3 server ---------------------------------------------------------------------


@main.group()
def s3() -> None:
    """Start, stop or inspect the local S3 server (SeaweedFS, loopback only)."""


def _local_server() -> "LocalS3Server":
    from recordings_cli.local_s3 import LocalS3Ports, LocalS3Server

    s3_settings = _settings()
    port = int(s3_settings.endpoint.rsplit(":", 1)[1].rstrip("/"))
    return LocalS3Server(
        data_dir=_local_dir() / "s3",
        access_key=s3_settings.access_key,
        secret_key=s3_settings.secret_key,
        ports=LocalS3Ports(s3=port),
    )


def write_local_env(project_dir: Path) -> Path:
    """Create `.env` with fresh local credentials and paths; add settings a newer version needs
    to an existing one (never changing what is there)."""
    import base64
    import secrets

    from recordings_cli.local_s3 import new_credentials

    env_file = project_dir / ENV_FILE_NAME
    local = project_dir / LOCAL_DIR_NAME
    access_key, secret_key = new_credentials()
    wanted = {
        "RECORDINGS_DATABASE_URL": f"sqlite:///{local / 'recordings.db'}",
        "RECORDINGS_S3_ENDPOINT": "http://127.0.0.1:8333",
        "RECORDINGS_S3_ACCESS_KEY": access_key,
        "RECORDINGS_S3_SECRET_KEY": secret_key,
        "RECORDINGS_ARCHIVE_BUCKET": "conversation-archives",
        "RECORDINGS_SOURCE_BUCKET": "conversation-audio",
        "DAGSTER_HOME": str(local / "dagster_home"),
        "RECORDINGS_JWT_DEV_SECRET": secrets.token_urlsafe(32),
        "RECORDINGS_LINK_KEYS": "local1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "RECORDINGS_PUBLIC_BASE_URL": f"http://127.0.0.1:{API_PORT}",
    }
    existing = (
        env_file.read_text(encoding="utf-8")
        if env_file.exists()
        else (
            "# Local development settings written by `recordings s3 start`; not for production.\n"
        )
    )
    present = {line.split("=", 1)[0].strip() for line in existing.splitlines() if "=" in line}
    missing = [f"{key}={value}\n" for key, value in wanted.items() if key not in present]
    if missing:
        env_file.write_text(existing.rstrip("\n") + "\n" + "".join(missing), encoding="utf-8")
        env_file.chmod(0o600)
    return env_file


@s3.command("start")
def s3_start() -> None:
    """Start the local S3 server in the background (data under .local/s3)."""
    from recordings.storage import ensure_bucket
    from recordings_cli.local_s3 import LocalS3Error

    env_file = write_local_env(_project_dir())
    load_dotenv(env_file)
    server = _local_server()
    click.echo(f"starting SeaweedFS S3 on {server.endpoint} (data: {server.data_dir}) ...")
    try:
        pid = server.start()
    except LocalS3Error as exc:
        raise _fail(str(exc)) from None
    settings = _settings()
    client = _minio()
    for bucket in (settings.source_bucket, settings.archive_bucket):
        ensure_bucket(client, bucket)
    click.echo(f"S3 is up (pid {pid}); buckets {settings.source_bucket}, {settings.archive_bucket}")


@s3.command("stop")
def s3_stop() -> None:
    """Stop the local S3 server."""
    server = _local_server()
    if server.stop():
        click.echo("local S3 server stopped")
    else:
        click.echo("local S3 server was not running")


@s3.command("status")
def s3_status() -> None:
    """Say whether the local S3 server runs; exit 1 if it does not."""
    server = _local_server()
    pid = server.running_pid()
    if pid is None:
        raise _fail("local S3 server is not running; start it with `recordings s3 start`")
    click.echo(f"local S3 server running (pid {pid}) on {server.endpoint}")


# --- local API server ----------------------------------------------------------------------


@main.group()
def api() -> None:
    """Start or stop the download API locally (uvicorn, loopback only)."""


def _api_pid_file() -> Path:
    return _local_dir() / "api" / "api.pid"


def _running_api_pid() -> int | None:
    try:
        pid = int(_api_pid_file().read_text(encoding="utf-8"))
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"uvicorn" in cmdline else None


@api.command("start")
@click.option("--port", default=API_PORT, show_default=True)
def api_start(port: int) -> None:
    """Start the API in the background (log: .local/api/api.log)."""
    from recordings_cli.local_api import ApiServerError, LocalApiServer

    pid = _running_api_pid()
    if pid is not None:
        click.echo(f"API already running (pid {pid})")
        return
    folder = _local_dir() / "api"
    server = LocalApiServer(
        port=port, env={"DAGSTER_HOME": str(_dagster_home())}, log_path=folder / "api.log"
    )
    server.start(new_session=True)
    _api_pid_file().write_text(str(server.pid), encoding="utf-8")
    try:
        server.wait_ready(path="/health/ready")
    except ApiServerError as exc:
        raise _fail(f"{exc}\n(full log: {folder / 'api.log'})") from None
    click.echo(f"API is up on {server.url} (pid {server.pid})")


@api.command("stop")
def api_stop() -> None:
    """Stop the local API."""
    import signal

    pid = _running_api_pid()
    if pid is None:
        click.echo("API was not running")
        return
    os.killpg(pid, signal.SIGTERM)
    _api_pid_file().unlink(missing_ok=True)
    click.echo("API stopped")


# --- database ------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Application database commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the application database to the latest schema."""
    from recordings.db.migrate import upgrade_database

    url = _database_url()
    upgrade_database(url)
    click.echo("database schema is up to date")


# --- tenants -------------------------------------------------------------------------------


@main.group()
def tenant() -> None:
    """Tenants and their daily recordings settings (host operator)."""


@tenant.command("list")
def tenant_list() -> None:
    """List tenants with their feature settings."""
    from recordings.db.models import Tenant

    with _db_session() as session:
        tenants = session.query(Tenant).order_by(Tenant.id).all()
        if not tenants:
            click.echo("no tenants yet; create one with `recordings tenant set ID --enable`")
            return
        click.echo(f"{'tenant':<24} {'enabled':<8} {'retention':<10} {'hold':<5} updated")
        for row in tenants:
            s = row.recording_settings
            if s is None:
                click.echo(f"{row.id:<24} {'no':<8} {'-':<10} {'-':<5} never configured")
            else:
                click.echo(
                    f"{row.id:<24} {'yes' if s.enabled else 'no':<8} "
                    f"{str(s.retention_days) + ' days':<10} {'yes' if s.legal_hold else 'no':<5} "
                    f"{s.updated_at:%Y-%m-%d %H:%M}Z "
                    f"by {s.updated_by}"
                )


@tenant.command("set")
@click.argument("tenant_id")
@click.option("--name", help="Display name (creates the tenant if it does not exist).")
@click.option("--enable/--disable", "enabled", default=None, help="Turn the feature on or off.")
@click.option("--retention-days", type=int, help="Days archives are kept, 1 to 7.")
@click.option(
    "--legal-hold/--no-legal-hold",
    "legal_hold",
    default=None,
    help="Suspend (or resume) deletion of the tenant's archives by retention.",
)
@click.option(
    "--by",
    "changed_by",
    default=lambda: os.environ.get("USER") or "cli",
    show_default="$USER",
    help="Who makes the change (recorded in the settings history).",
)
def tenant_set(
    tenant_id: str,
    name: str | None,
    enabled: bool | None,
    retention_days: int | None,
    legal_hold: bool | None,
    changed_by: str,
) -> None:
    """Create TENANT_ID if needed and set its daily recordings settings."""
    from recordings.catalog import CatalogError, ensure_tenant, set_recording_settings
    from recordings.keys import InvalidIdentifierError

    try:
        with _db_session() as session:
            ensure_tenant(session, tenant_id, name)
            settings = set_recording_settings(
                session,
                tenant_id,
                changed_by=changed_by,
                enabled=enabled,
                retention_days=retention_days,
                legal_hold=legal_hold,
            )
            hold = " legal-hold" if settings.legal_hold else ""
            click.echo(
                f"{tenant_id}: enabled={settings.enabled} retention={settings.retention_days} "
                f"days{hold} (by {changed_by})"
            )
    except (CatalogError, InvalidIdentifierError) as exc:
        raise _fail(str(exc)) from None


# --- ingestion -----------------------------------------------------------------------------


@main.command()
@click.argument("audio_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", "tenant_id", required=True, help="Tenant id.")
@click.option("--conversation", "conversation_id", required=True, help="Conversation id.")
@click.option("--session", "session_id", required=True, help="Session id within it.")
@click.option("--recording", "recording_id", help="Recording id [default: derived from session].")
@click.option("--start", "start", required=True, help="UTC start time, e.g. 2025-12-12T13:05Z.")
@click.option(
    "--allow-unreadable",
    is_flag=True,
    help="Register a file the archive will not be able to decode (to exercise failures).",
)
def ingest(
    audio_file: Path,
    tenant_id: str,
    conversation_id: str,
    session_id: str,
    recording_id: str | None,
    start: str,
    allow_unreadable: bool,
) -> None:
    """Upload AUDIO_FILE and register it as a recording, as the conversation platform does."""
    from recordings.audio.convert import SourceAudioError, probe_source
    from recordings.catalog import CatalogError, register_recording
    from recordings.keys import InvalidIdentifierError, source_key
    from recordings.storage import ensure_bucket, upload_file

    started_at = _parse_start(start)
    recording_id = recording_id or f"{session_id}-r1"
    try:
        info = probe_source(audio_file)
        audio_format, channels, rate, seconds = (
            info.format,
            info.channels,
            info.sample_rate,
            info.duration_seconds,
        )
    except SourceAudioError as exc:
        if not allow_unreadable:
            raise _fail(
                f"{audio_file} cannot be archived ({exc.reason}: {exc.detail}); "
                "pass --allow-unreadable to register it anyway"
            ) from None
        audio_format = audio_file.suffix.lstrip(".").upper() or "UNKNOWN"
        channels, rate, seconds = 1, None, 0.0
    settings = _settings()
    try:
        key = source_key(
            tenant_id, conversation_id, session_id, recording_id, audio_file.suffix or ".bin"
        )
        with _db_session() as session:
            client = _minio()
            ensure_bucket(client, settings.source_bucket)
            upload_file(client, settings.source_bucket, key, audio_file, "application/octet-stream")
            register_recording(
                session,
                tenant_id=tenant_id,
                conversation_id=conversation_id,
                session_id=session_id,
                recording_id=recording_id,
                bucket=settings.source_bucket,
                object_key=key,
                started_at=started_at,
                duration_seconds=seconds,
                audio_format=audio_format,
                channels=channels,
                sample_rate=rate,
                size_bytes=audio_file.stat().st_size,
            )
    except (CatalogError, InvalidIdentifierError) as exc:
        raise _fail(str(exc)) from None
    click.echo(
        f"ingested {audio_file.name} as {tenant_id}/{conversation_id}/{session_id}/{recording_id} "
        f"({audio_format}, {channels} ch, {seconds:.1f} s) at s3://{settings.source_bucket}/{key}"
    )


# --- development tokens --------------------------------------------------------------------


@main.command()
@click.option("--tenant", "tenant_id", help="Tenant the token speaks for (tenant clients).")
@click.option("--host", "host", is_flag=True, help="A host operator token (feature settings).")
@click.option("--subject", default="dev-client", show_default=True, help="The token's `sub`.")
@click.option("--hours", default=1.0, show_default=True, help="Validity in hours.")
def token(tenant_id: str | None, host: bool, subject: str, hours: float) -> None:
    """Mint a development JWT (HS256) from RECORDINGS_JWT_DEV_SECRET."""
    from recordings.tokens import HOST_PERMISSION, READ_PERMISSION, mint_development_token

    if bool(tenant_id) == host:
        raise _fail("say whom the token is for: either --tenant ID or --host")
    secret = os.environ.get("RECORDINGS_JWT_DEV_SECRET", "")
    try:
        minted = mint_development_token(
            secret,
            subject=subject,
            tenant_id=tenant_id,
            permissions=[HOST_PERMISSION] if host else [READ_PERMISSION],
            ttl=timedelta(hours=hours),
            issuer=os.environ.get("RECORDINGS_JWT_ISSUER") or None,
            audience=os.environ.get("RECORDINGS_JWT_AUDIENCE") or None,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    click.echo(minted)


# --- demo data -----------------------------------------------------------------------------


@main.command()
@click.option("--day", help="UTC day to seed, YYYY-MM-DD [default: yesterday].")
def seed(day: str | None) -> None:
    """Seed demo tenants with a day of synthetic conversations (idempotent)."""
    _seed(_parse_day(day))


def _seed(day: date) -> None:
    from recordings_cli.demo_data import seed_demo

    settings = _settings()
    click.echo(f"seeding demo tenants for {day} ...")
    with _db_session() as session:
        summary = seed_demo(
            session,
            _minio(),
            settings.source_bucket,
            day,
            on_progress=lambda message: click.echo(f"  {message}", err=True),
        )
    if summary.skipped_tenants:
        click.echo(f"  already seeded for {day}: {', '.join(summary.skipped_tenants)}")
    click.echo(
        f"seeded {summary.recordings} recordings ({summary.broken_recordings} deliberately "
        f"broken, {summary.audio_seconds:.0f} s of audio) for {summary.tenants} tenants"
    )


# --- materialization -----------------------------------------------------------------------


def _dagster_home() -> Path:
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise _fail("DAGSTER_HOME is not set; run `recordings s3 start` to write a local .env")
    path = Path(home)
    path.mkdir(parents=True, exist_ok=True)
    instance_yaml = path / "dagster.yaml"
    project_yaml = _project_dir() / "dagster.yaml"
    if not instance_yaml.exists() and project_yaml.exists():
        shutil.copyfile(project_yaml, instance_yaml)
    return path


@main.command()
@click.option("--today", help="Apply the rule as of this UTC date, YYYY-MM-DD [default: today].")
def retention(today: str | None) -> None:
    """Delete archives outside each tenant's retention, through Dagster like the schedule."""
    import dagster as dg

    from recordings_dagster.execution import run_retention

    if today:
        try:
            as_of = date.fromisoformat(today)
        except ValueError:
            raise _fail(f"--today {today!r} is not a date; use YYYY-MM-DD") from None
    else:
        as_of = datetime.now(UTC).date()
    _dagster_home()
    with dg.DagsterInstance.get() as instance:
        outcome = run_retention(instance, as_of)
    if not outcome.success:
        raise _fail(
            f"the retention run {outcome.run_id} failed: {outcome.failure}; it is safe to run "
            "the command again"
        )
    summary = outcome.summary
    click.echo(
        f"retention as of {as_of}: {summary.get('deleted', 0)} archive(s) deleted, "
        f"{summary.get('kept', 0)} kept, {summary.get('held_by_legal_hold', 0)} held by a legal "
        f"hold (run {outcome.run_id[:8]})"
    )


@main.command()
@click.option("--day", help="UTC day, YYYY-MM-DD [default: yesterday].")
@click.option(
    "--tenant",
    "tenants",
    multiple=True,
    help="Tenant to materialize (repeatable) [default: every enabled tenant].",
)
def materialize(day: str | None, tenants: tuple[str, ...]) -> None:
    """Archive a UTC day through Dagster, one ranged run per tenant, like the schedule."""
    _materialize(_parse_day(day), tenants)


def _materialize(day: date, tenants: tuple[str, ...]) -> None:
    from recordings.catalog import enabled_tenant_ids, is_enabled

    _dagster_home()
    with _db_session() as session:
        enabled = enabled_tenant_ids(session)
        if tenants:
            for tenant_id in tenants:
                if not is_enabled(session, tenant_id):
                    raise _fail(
                        f"tenant {tenant_id!r} does not exist or has daily recordings disabled; "
                        f"enable it with `recordings tenant set {tenant_id} --enable`"
                    )
            selected = list(tenants)
        else:
            selected = enabled
    if not selected:
        raise _fail("no tenant has daily recordings enabled; nothing to materialize")

    import dagster as dg

    from recordings_dagster.execution import materialize_day

    click.echo(f"materializing {day} for {len(selected)} tenant(s): {', '.join(selected)}")

    def progress(index: int, total: int, outcome: "TenantDayOutcome") -> None:
        status = "ok" if outcome.success else "FAILED"
        click.echo(
            f"  [{index}/{total}] {outcome.tenant_id}: {status}, {outcome.hours_archived}/24 hours "
            f"archived (run {outcome.run_id[:8]})"
        )
        if outcome.failure:
            click.echo(f"      {outcome.failure}", err=True)

    with dg.DagsterInstance.get() as instance:
        outcomes = materialize_day(instance, day, selected, on_progress=progress)
    failed = [o for o in outcomes if not o.success]
    if failed:
        raise _fail(
            f"{len(failed)} tenant-day run(s) failed: "
            + ", ".join(f"{o.tenant_id} (run {o.run_id})" for o in failed)
            + "; see the runs in the Dagster UI, fix the cause and run the command again"
        )
    click.echo("all tenant-days archived")


def _print_api_example(day: date) -> None:
    from recordings.tokens import READ_PERMISSION, mint_development_token

    token = mint_development_token(
        os.environ.get("RECORDINGS_JWT_DEV_SECRET", ""),
        subject="demo-compliance-client",
        tenant_id="acme",
        permissions=[READ_PERMISSION],
        ttl=timedelta(hours=8),
    )
    base = f"http://127.0.0.1:{API_PORT}/api/v1/daily-conversation-audio-recordings"
    click.echo(
        "\nDownload API example (tenant acme, token valid 8 hours):\n"
        f"  TOKEN={token}\n"
        f"  curl -s -H \"Authorization: Bearer $TOKEN\" '{base}?utcDay={day}'\n"
        "  # then download one hour (follows the 307 to S3):\n"
        f'  curl -sL -o hour05.zip "$(curl -s -H "Authorization: Bearer $TOKEN" '
        f"'{base}?utcDay={day}' | python3 -c 'import json,sys; "
        'print(json.load(sys.stdin)["hours"][5]["url"])\')"\n'
    )


# --- the whole demo ------------------------------------------------------------------------


@main.command()
@click.option("--day", help="UTC day to seed and archive [default: yesterday].")
@click.option("--ui/--no-ui", default=True, help="Leave the Dagster UI running at the end.")
@click.option("--port", default=3000, show_default=True, help="Dagster UI port (loopback).")
def demo(day: str | None, ui: bool, port: int) -> None:
    """Start S3, migrate, seed, archive yesterday through Dagster, then serve the Dagster UI."""
    ctx = click.get_current_context()
    target = _parse_day(day)
    ctx.invoke(s3_start)
    ctx.invoke(db_upgrade)
    _seed(target)
    _materialize(target, ())
    ctx.invoke(api_start, port=API_PORT)
    _print_api_example(target)
    if not ui:
        return
    home = _dagster_home()
    dagster = Path(sys.executable).parent / "dagster"
    workspace = _project_dir() / "workspace.yaml"
    # Started from DAGSTER_HOME so Dagster does not warn about the project's own dagster.yaml
    # (a copy of it configures the instance); the settings are already in the environment.
    os.chdir(home)
    click.echo(f"Dagster UI: http://127.0.0.1:{port} (Ctrl-C stops it; S3 keeps running)")
    os.execve(  # noqa: S606 - replaces this process with the UI, fixed argv
        str(dagster),
        [str(dagster), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
        {**os.environ, "DAGSTER_HOME": str(home)},
    )


if __name__ == "__main__":
    main()
