"""The Alembic migrations produce exactly the declared schema, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from reachflow.store.database import Database
from reachflow.store.tables import metadata


def test_migrations_equal_the_declared_schema(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()  # idempotent on an already migrated database
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    db.dispose()
    assert diff == []
