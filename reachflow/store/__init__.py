"""The only code that knows SQL. SQLAlchemy Core on SQLite (WAL) and PostgreSQL alike."""

from reachflow.store.database import Database
from reachflow.store.store import Store

__all__ = ["Database", "Store"]
