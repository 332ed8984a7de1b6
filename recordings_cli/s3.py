"""`recordings s3`: start, stop or inspect the local S3 server (SeaweedFS, loopback only).

The S3 port comes from RECORDINGS_S3_ENDPOINT (in `.env`), because every process of the
checkout talks to it; the server's internal ports (master, volume, filer) are options of
`recordings s3 start`, since nothing else connects to them.
"""

import dataclasses

import click

from recordings.settings import load_dotenv
from recordings_cli.common import fail, minio_client, s3_settings
from recordings_cli.local_s3 import (
    GRPC_OFFSET,
    LocalS3Error,
    LocalS3Ports,
    LocalS3PortsBusy,
    LocalS3Server,
    free_port_near,
)
from recordings_cli.project import env_file, local_dir, project_dir, write_local_env

DEFAULT_PORTS = LocalS3Ports()
_INTERNAL_SERVICES = ("master", "volume", "filer")


@click.group()
def s3() -> None:
    """Start, stop or inspect the local S3 server (SeaweedFS, loopback only)."""


def local_server(ports: LocalS3Ports = DEFAULT_PORTS) -> LocalS3Server:
    """The project's server: data under .local/s3, keys and S3 port from RECORDINGS_S3_*, its
    internal ports from `ports`."""
    settings = s3_settings()
    port = int(settings.endpoint.rsplit(":", 1)[1].rstrip("/"))
    return LocalS3Server(
        data_dir=local_dir() / "s3",
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        ports=dataclasses.replace(ports, s3=port),
    )


@s3.command("start")
@click.option(
    "--master-port",
    default=DEFAULT_PORTS.master,
    show_default=True,
    help="SeaweedFS master port (internal; gRPC on the port + 10000).",
)
@click.option(
    "--volume-port",
    default=DEFAULT_PORTS.volume,
    show_default=True,
    help="SeaweedFS volume port (internal; gRPC on the port + 10000).",
)
@click.option(
    "--filer-port",
    default=DEFAULT_PORTS.filer,
    show_default=True,
    help="SeaweedFS filer port (internal; gRPC on the port + 10000).",
)
def s3_start(master_port: int, volume_port: int, filer_port: int) -> None:
    """Start the local S3 server in the background (data under .local/s3).

    It serves S3 on the port of RECORDINGS_S3_ENDPOINT (in .env), and gRPC on the port + 10000.
    """
    from recordings.storage import ensure_bucket

    load_dotenv(write_local_env(project_dir()))
    server = local_server(LocalS3Ports(master=master_port, volume=volume_port, filer=filer_port))
    click.echo(f"starting SeaweedFS S3 on {server.endpoint} (data: {server.data_dir}) ...")
    try:
        pid = server.start()
    except LocalS3PortsBusy as exc:
        raise fail(busy_ports_message(exc, server.ports)) from None
    except LocalS3Error as exc:
        raise fail(str(exc)) from None
    settings = s3_settings()
    client = minio_client()
    for bucket in (settings.source_bucket, settings.archive_bucket):
        ensure_bucket(client, bucket)
    click.echo(f"S3 is up (pid {pid}); buckets {settings.source_bucket}, {settings.archive_bucket}")


def busy_ports_message(exc: LocalS3PortsBusy, ports: LocalS3Ports) -> str:
    """Name the ports in use and the setting or option that moves each one elsewhere.

    The usual holder is another checkout's local S3 server, so stopping that comes first; the
    suggested ports were free a moment ago.
    """
    services = {busy.service for busy in exc.busy}
    avoid = {port.port for port in ports.all_ports()}

    def suggest(service: str) -> int:
        port = free_port_near(getattr(ports, service), avoid=avoid)
        avoid.update((port, port + GRPC_OFFSET))
        return port

    lines = [
        f"cannot start the local S3 server: {exc}.",
        "Another checkout's local S3 server may be running (`recordings s3 stop` there stops "
        "it), or choose other ports:",
    ]
    if "s3" in services:
        lines.append(
            f"  S3: set RECORDINGS_S3_ENDPOINT=http://127.0.0.1:{suggest('s3')} in {env_file()} "
            "(or in the environment) and run the command again"
        )
    internal = [service for service in _INTERNAL_SERVICES if service in services]
    if internal:
        options = " ".join(f"--{service}-port {suggest(service)}" for service in internal)
        lines.append(
            f"  {', '.join(internal)}: `recordings s3 start {options}` "
            "(`recordings demo` then uses the running server)"
        )
    return "\n".join(lines)


@s3.command("stop")
def s3_stop() -> None:
    """Stop the local S3 server."""
    if local_server().stop():
        click.echo("local S3 server stopped")
    else:
        click.echo("local S3 server was not running")


@s3.command("status")
def s3_status() -> None:
    """Say whether the local S3 server runs; exit 1 if it does not."""
    server = local_server()
    pid = server.running_pid()
    if pid is None:
        raise fail("local S3 server is not running; start it with `recordings s3 start`")
    click.echo(f"local S3 server running (pid {pid}) on {server.endpoint}")
