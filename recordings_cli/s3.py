"""`recordings s3`: start, stop or inspect the local S3 server (SeaweedFS, loopback only)."""

import click

from recordings.settings import load_dotenv
from recordings_cli.common import fail, minio_client, s3_settings
from recordings_cli.local_s3 import LocalS3Error, LocalS3Ports, LocalS3Server
from recordings_cli.project import local_dir, project_dir, write_local_env


@click.group()
def s3() -> None:
    """Start, stop or inspect the local S3 server (SeaweedFS, loopback only)."""


def local_server() -> LocalS3Server:
    """The project's server: data under .local/s3, the S3 port and keys of RECORDINGS_S3_*."""
    settings = s3_settings()
    port = int(settings.endpoint.rsplit(":", 1)[1].rstrip("/"))
    return LocalS3Server(
        data_dir=local_dir() / "s3",
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        ports=LocalS3Ports(s3=port),
    )


@s3.command("start")
def s3_start() -> None:
    """Start the local S3 server in the background (data under .local/s3)."""
    from recordings.storage import ensure_bucket

    load_dotenv(write_local_env(project_dir()))
    server = local_server()
    click.echo(f"starting SeaweedFS S3 on {server.endpoint} (data: {server.data_dir}) ...")
    try:
        pid = server.start()
    except LocalS3Error as exc:
        raise fail(str(exc)) from None
    settings = s3_settings()
    client = minio_client()
    for bucket in (settings.source_bucket, settings.archive_bucket):
        ensure_bucket(client, bucket)
    click.echo(f"S3 is up (pid {pid}); buckets {settings.source_bucket}, {settings.archive_bucket}")


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
