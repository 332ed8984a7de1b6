"""`recordings api`: start or stop the download API locally (uvicorn, loopback only)."""

import os
import signal
from pathlib import Path

import click

from recordings_cli.common import fail
from recordings_cli.project import API_PORT, dagster_home, local_dir


@click.group()
def api() -> None:
    """Start or stop the download API locally (uvicorn, loopback only)."""


def _api_pid_file() -> Path:
    return local_dir() / "api" / "api.pid"


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
    folder = local_dir() / "api"
    server = LocalApiServer(
        port=port, env={"DAGSTER_HOME": str(dagster_home())}, log_path=folder / "api.log"
    )
    server.start(new_session=True)
    _api_pid_file().write_text(str(server.pid), encoding="utf-8")
    try:
        server.wait_ready(path="/health/ready")
    except ApiServerError as exc:
        raise fail(f"{exc}\n(full log: {folder / 'api.log'})") from None
    click.echo(f"API is up on {server.url} (pid {server.pid})")


@api.command("stop")
def api_stop() -> None:
    """Stop the local API."""
    pid = _running_api_pid()
    if pid is None:
        click.echo("API was not running")
        return
    os.killpg(pid, signal.SIGTERM)
    _api_pid_file().unlink(missing_ok=True)
    click.echo("API stopped")
