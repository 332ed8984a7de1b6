"""`recordings tenant`: tenants and their daily recordings settings (host operator)."""

import os

import click

from recordings_cli.common import db_session, fail


@click.group()
def tenant() -> None:
    """Tenants and their daily recordings settings (host operator)."""


@tenant.command("list")
def tenant_list() -> None:
    """List tenants with their feature settings."""
    from recordings.db.models import Tenant

    with db_session() as session:
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
        with db_session() as session:
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
        raise fail(str(exc)) from None
