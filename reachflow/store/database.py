"""Connections, transactions and every SQLite-versus-PostgreSQL fact, in one place."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from reachflow.store import json_codec

MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    """An engine plus the dialect facts the rest of the store needs."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self.engine = self._create_engine(url, echo=echo, pool_size=pool_size)
        # SQLite has one writer, and its busy handler waits by sleeping and polling. Threads of
        # this process (API, worker, agent calls) queue on this lock instead, in turn and at
        # once; other processes still meet SQLite's busy timeout.
        self._sqlite_writer = threading.RLock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def supports_skip_locked(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @staticmethod
    def _create_engine(url: str, *, echo: bool, pool_size: int) -> Engine:
        if url.startswith("sqlite"):
            engine = sa.create_engine(
                url,
                echo=echo,
                json_serializer=json_codec.dumps,
                json_deserializer=json_codec.loads,
                connect_args={"check_same_thread": False, "timeout": 30},
            )

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                # Take the write lock at BEGIN: one writer at a time, never a failed upgrade.
                dbapi_conn.isolation_level = None
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

            return engine
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return sa.create_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            json_serializer=json_codec.dumps,
            json_deserializer=json_codec.loads,
        )

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction; commits on success, rolls back on any exception."""
        if self._sqlite_writer is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._sqlite_writer, self.engine.begin() as conn:
            yield conn

    def lock_rows(self, query: sa.Select[Any], *, skip_locked: bool = False) -> sa.Select[Any]:
        """``FOR UPDATE`` on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the only lock."""
        if self.is_sqlite:
            return query
        return query.with_for_update(skip_locked=skip_locked)

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection_url"] = self.url
        with self.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def dispose(self) -> None:
        self.engine.dispose()
