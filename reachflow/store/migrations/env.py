"""Alembic environment: runs on the connection the Database hands over."""

from __future__ import annotations

from alembic import context

from reachflow.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through reachflow.store.Database.migrate()")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
