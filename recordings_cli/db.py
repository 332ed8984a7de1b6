"""`recordings db`: the application database's schema."""

import click

from recordings_cli.common import database_url


@click.group()
def db() -> None:
    """Application database commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the application database to the latest schema."""
    from recordings.db.migrate import upgrade_database

    upgrade_database(database_url())
    click.echo("database schema is up to date")
