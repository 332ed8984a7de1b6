"""`recordings seed` and `recordings demo`: demo tenants with a synthetic day, and the whole demo
(S3, database, seed, archive through Dagster, API, then the Dagster UI) in one command."""

import os
import sys
from datetime import date, timedelta
from pathlib import Path

import click

from recordings_cli.api import api_start
from recordings_cli.common import db_session, minio_client, parse_day, s3_settings
from recordings_cli.db import db_upgrade
from recordings_cli.pipeline import run_materialize
from recordings_cli.project import API_PORT, dagster_home, project_dir
from recordings_cli.s3 import s3_start


@click.command()
@click.option("--day", help="UTC day to seed, YYYY-MM-DD [default: yesterday].")
def seed(day: str | None) -> None:
    """Seed demo tenants with a day of synthetic conversations (idempotent)."""
    seed_day(parse_day(day))


def seed_day(day: date) -> None:
    """Seed the demo tenants for `day` and say what was seeded (`seed` and `demo`)."""
    from recordings_cli.demo_data import seed_demo

    settings = s3_settings()
    click.echo(f"seeding demo tenants for {day} ...")
    with db_session() as session:
        summary = seed_demo(
            session,
            minio_client(),
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


def _print_api_example(day: date) -> None:
    """How to call the API the demo started, with a tenant token valid for a working day."""
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
        "\nFetch the whole day with the tenant client (clients/python, installed in .venv): it "
        "waits out the\nlimit by itself (10 downloads an hour: a day takes about 2 hours), "
        "verifies every ZIP, resumes\nwhen run again and writes manifest.jsonl:\n"
        f"  RECORDINGS_TOKEN=$TOKEN .venv/bin/recordings-client fetch --api "
        f"http://127.0.0.1:{API_PORT} --day {day} --dest archives/acme\n"
        "Day-ready webhooks (a token with the webhooks permission: recordings token --tenant "
        "acme --webhooks):\n  see docs/WEBHOOKS.md\n"
    )


@click.command()
@click.option("--day", help="UTC day to seed and archive [default: yesterday].")
@click.option("--ui/--no-ui", default=True, help="Leave the Dagster UI running at the end.")
@click.option("--port", default=3000, show_default=True, help="Dagster UI port (loopback).")
def demo(day: str | None, ui: bool, port: int) -> None:
    """Start S3, migrate, seed, archive yesterday through Dagster, then serve the Dagster UI."""
    ctx = click.get_current_context()
    target = parse_day(day)
    ctx.invoke(s3_start)
    ctx.invoke(db_upgrade)
    seed_day(target)
    run_materialize(target, ())
    ctx.invoke(api_start, port=API_PORT)
    _print_api_example(target)
    if not ui:
        return
    home = dagster_home()
    dagster = Path(sys.executable).parent / "dagster"
    workspace = project_dir() / "workspace.yaml"
    # Started from DAGSTER_HOME so Dagster does not warn about the project's own dagster.yaml
    # (a copy of it configures the instance); the settings are already in the environment.
    os.chdir(home)
    click.echo(f"Dagster UI: http://127.0.0.1:{port} (Ctrl-C stops it; S3 keeps running)")
    os.execve(  # noqa: S606 - replaces this process with the UI, fixed argv
        str(dagster),
        [str(dagster), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
        {**os.environ, "DAGSTER_HOME": str(home)},
    )
