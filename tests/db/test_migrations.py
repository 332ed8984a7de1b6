"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and
go down and up again: a model change without its migration fails here, not in production."""

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from recordings.db.migrate import upgrade_database
from recordings.db.models import Base

pytestmark = pytest.mark.integration


def _differences(url: str) -> list[object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


@pytest.mark.sqlite_run_only
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_migrations_match_the_models(dialect: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if dialect == "sqlite" else "postgres_url")
    assert _differences(url) == []


def test_the_latest_migration_goes_down_and_up_again(database_url: str) -> None:
    from alembic import command

    from recordings.db.migrate import alembic_config

    command.downgrade(alembic_config(database_url), "-1")
    assert _differences(database_url) != []
    upgrade_database(database_url)
    assert _differences(database_url) == []
