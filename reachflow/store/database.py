"""Connections, transactions and every SQLite-versus-PostgreSQL fact, in one place."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from reachflow.store import json_codec

MIGRATIONS = Path(__file__).parent / "migrations"


class FairLock:
    """A re-entrant lock granted in arrival order. Python's own locks let a thread that just
    released one take it again at once, so a worker looping over short transactions could
    keep an API request waiting for many of them; here each waiter gets its turn."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0
        self._owner: int | None = None
        self._depth = 0
        #: When a thread last had to wait for its turn (``time.monotonic``).
        self.last_wait = float("-inf")

    def __enter__(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            ticket = self._next_ticket
            self._next_ticket += 1
            if self._serving != ticket:
                self.last_wait = time.monotonic()
            while self._serving != ticket:
                self._cond.wait()
            self._owner, self._depth = me, 1

    @property
    def waiting(self) -> int:
        """Threads waiting for their turn (not counting the holder)."""
        with self._cond:
            return max(0, self._next_ticket - self._serving - (1 if self._owner else 0))

    def __exit__(self, *_: object) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._serving += 1
                self._cond.notify_all()


class Database:
    """An engine plus the dialect facts the rest of the store needs."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self.engine = self._create_engine(url, echo=echo, pool_size=pool_size)
        # SQLite has one writer, and its busy handler waits by sleeping and polling. Threads of
        # this process (API, worker, agent calls) queue on this lock instead, in turn and at
        # once; other processes still meet SQLite's busy timeout.
        self._sqlite_writer = FairLock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def writers_contended(self, within: float) -> bool:
        """On SQLite: did a thread of this process wait to write in the last ``within``
        seconds, or is one waiting now? (Never on PostgreSQL, where writers of different rows
        do not wait for one another.)"""
        lock = self._sqlite_writer
        if lock is None:
            return False
        return lock.waiting > 0 or time.monotonic() - lock.last_wait < within

    @property
    def supports_skip_locked(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @staticmethod
    def _create_engine(url: str, *, echo: bool, pool_size: int) -> Engine:
        if url.startswith("sqlite"):
            engine = sa.create_engine(
                url,
                echo=echo,
                hide_parameters=True,
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
                # A read-only transaction (``Database.read``) is a plain deferred BEGIN: under
                # WAL it reads a snapshot beside the writer and never waits for it.
                read_only = conn.get_execution_options().get("reachflow_read_only", False)
                conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

            return engine
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return sa.create_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            hide_parameters=True,
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

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read-only transaction. On SQLite it does not queue for the writer; what it
        reads is one consistent snapshot. Writing in it is a bug (SQLite would refuse it
        when another connection writes)."""
        if self._sqlite_writer is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with (
            self.engine.connect().execution_options(reachflow_read_only=True) as conn,
            conn.begin(),
        ):
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
