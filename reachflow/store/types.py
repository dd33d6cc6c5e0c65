"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every dialect."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def earliest(conn: Any, column: sa.Column[datetime], *where: Any) -> datetime | None:
    """``min(column)`` over the rows matching ``where``, decoded as an aware UTC datetime.

    ``func.min`` loses the column's type on SQLite, so the value is decoded here, once.
    """
    value = conn.execute(sa.select(sa.func.min(column)).where(*where)).scalar_one_or_none()
    if value is None:
        return None
    decoded: datetime | None = column.type.process_result_value(value, conn.dialect)
    return decoded


def after_key(
    created: sa.Column[datetime], row_id: sa.Column[str], after: tuple[datetime, str]
) -> Any:
    """Keyset paging: rows strictly after ``after`` in ``(created, id)`` order."""
    at, last_id = after
    return sa.or_(created > at, sa.and_(created == at, row_id > last_id))
