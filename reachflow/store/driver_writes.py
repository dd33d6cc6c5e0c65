"""Multi-row writes handed straight to the driver, for the engine's hot statements.

SQLAlchemy Core processes every bound value of every row of an executemany in Python (type
decorators, JSON, the SQLite datetime format), which the profile of the batch stages showed as
the largest single cost. A ``DriverWrite`` is written once as SQL with ``:name`` placeholders,
turned into the driver's positional form for each dialect, and executed with plain tuples whose
values are converted here, once, in the exact forms the column types store:

* an aware ``datetime``: UTC text ``YYYY-MM-DD HH:MM:SS.ffffff`` on SQLite (the
  ``UTCDateTime`` storage form), the aware value itself on PostgreSQL;
* a ``dict`` or ``list``: JSON text (both dialects);
* a ``bool``: 0/1 on SQLite.

Reads still go through the table types, so what is written here reads back the same as what
SQLAlchemy writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from reachflow.store import json_codec

_PLACEHOLDER = re.compile(r":([a-z_][a-z0-9_]*)")


def _sqlite_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _pg_datetime(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return value


def _converter(sqlite: bool) -> Callable[[Any], Any]:
    """One dictionary lookup per value: by exact type, as the store only writes these."""
    stamp = _sqlite_datetime if sqlite else _pg_datetime
    by_type: dict[type, Callable[[Any], Any]] = {
        datetime: stamp,
        dict: json_codec.dumps,
        list: json_codec.dumps,
        tuple: json_codec.dumps,
    }
    if sqlite:
        by_type[bool] = int
    get = by_type.get

    def convert(value: Any) -> Any:
        found = get(type(value))
        return value if found is None else found(value)

    return convert


class DriverWrite:
    """One SQL statement with ``:name`` placeholders, run as an executemany on the driver.

    On PostgreSQL a statement may instead be given as a multi-row form, ``postgresql_rows``:
    SQL with ``{rows}`` where ``(%s, ...)`` per row goes (``INSERT ... VALUES {rows}``,
    ``UPDATE ... FROM (VALUES {rows}) AS v(...)``), binding ``names`` in order for each row.
    A batch is then one statement and one round trip, and the server plans it once, where
    an executemany runs (and plans) one statement per row.
    """

    #: PostgreSQL takes at most 65,535 parameters per statement.
    MAX_PARAMETERS = 60_000

    def __init__(
        self, sql: str, *, postgresql: str | None = None, postgresql_rows: str | None = None
    ) -> None:
        """``postgresql``: the same statement with PostgreSQL's own casts, when it needs them
        (the placeholders must be the same, in the same order)."""
        self.names = _PLACEHOLDER.findall(sql)
        pg = postgresql or sql
        if _PLACEHOLDER.findall(pg) != self.names:
            raise ValueError("the PostgreSQL form must bind the same names in the same order")
        self._sql = {
            "sqlite": _PLACEHOLDER.sub("?", sql),
            "postgresql": _PLACEHOLDER.sub("%s", pg.replace("%", "%%")),
        }
        self._rows_sql = postgresql_rows
        self._row = "(" + ", ".join(["%s"] * len(self.names)) + ")"
        self._convert = {"sqlite": _converter(True), "postgresql": _converter(False)}

    def execute(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        dialect = conn.dialect.name
        convert = self._convert[dialect]
        names = self.names
        params = [tuple([convert(row[name]) for name in names]) for row in rows]
        if dialect != "postgresql" or self._rows_sql is None:
            conn.exec_driver_sql(self._sql[dialect], params)
            return
        chunk = max(1, self.MAX_PARAMETERS // max(1, len(names)))
        for start in range(0, len(params), chunk):
            part = params[start : start + chunk]
            sql = self._rows_sql.format(rows=", ".join([self._row] * len(part)))
            conn.exec_driver_sql(sql, tuple(value for row in part for value in row))


def insert_sql(table: str, columns: Sequence[str], suffix: str = "") -> str:
    """``INSERT INTO table (columns) VALUES (:columns)`` plus an optional clause."""
    names = ", ".join(columns)
    values = ", ".join(f":{c}" for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({values}){suffix}"


def insert_write(table: str, columns: Sequence[str], suffix: str = "") -> DriverWrite:
    """An INSERT of many rows, as an executemany on both dialects. (On PostgreSQL psycopg
    pipelines it: one parse, one round trip; measured faster there than one multi-row
    ``VALUES`` statement, whose text psycopg must parse anew for every batch size, and than
    ``unnest`` of arrays, whose dumping is slow.)"""
    return DriverWrite(insert_sql(table, columns, suffix))
