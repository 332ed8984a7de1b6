"""`recordings token`: development JWTs for trying the API locally."""

import os
from datetime import timedelta

import click

from recordings_cli.common import fail


@click.command()
@click.option("--tenant", "tenant_id", help="Tenant the token speaks for (tenant clients).")
@click.option("--host", "host", is_flag=True, help="A host operator token (feature settings).")
@click.option(
    "--webhooks",
    is_flag=True,
    help="Add the tenant's webhooks permission (register, rotate, read deliveries).",
)
@click.option("--subject", default="dev-client", show_default=True, help="The token's `sub`.")
@click.option("--hours", default=1.0, show_default=True, help="Validity in hours.")
def token(tenant_id: str | None, host: bool, webhooks: bool, subject: str, hours: float) -> None:
    """Mint a development JWT (HS256) from RECORDINGS_JWT_DEV_SECRET."""
    from recordings.tokens import (
        HOST_PERMISSION,
        READ_PERMISSION,
        WEBHOOK_PERMISSION,
        mint_development_token,
    )

    if bool(tenant_id) == host:
        raise fail("say whom the token is for: either --tenant ID or --host")
    if webhooks and host:
        raise fail("--webhooks is a tenant's permission: the host manages webhooks already")
    permissions = [HOST_PERMISSION] if host else [READ_PERMISSION]
    if webhooks:
        permissions.append(WEBHOOK_PERMISSION)
    secret = os.environ.get("RECORDINGS_JWT_DEV_SECRET", "")
    try:
        minted = mint_development_token(
            secret,
            subject=subject,
            tenant_id=tenant_id,
            permissions=permissions,
            ttl=timedelta(hours=hours),
            issuer=os.environ.get("RECORDINGS_JWT_ISSUER") or None,
            audience=os.environ.get("RECORDINGS_JWT_AUDIENCE") or None,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    click.echo(minted)
