"""Idempotency keys: one row per (organization, scope, key), guarded by a unique constraint.

The row is inserted in the transaction that creates the resource (``insert_key``), so it
commits or rolls back with it; a racing request with the same key meets the constraint (on
PostgreSQL it waits for the first transaction, then fails) and answers from the winner's row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reachflow.store.tables import idempotency_keys


class KeyTaken(Exception):
    """Another request inserted this key first (the transaction must roll back)."""


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    scope: str
    key: str
    fingerprint: str
    result: dict[str, Any]
    created_at: datetime
    expires_at: datetime


#: Expired rows removed by each new key, at most (the rest go with later keys).
PURGE_BATCH = 100


class IdempotencyKeys:
    def find_key(
        self, conn: Connection, organization_id: str, scope: str, key: str, now: datetime
    ) -> IdempotencyRecord | None:
        """The unexpired row of this key."""
        row = (
            conn.execute(
                sa.select(idempotency_keys).where(
                    idempotency_keys.c.organization_id == organization_id,
                    idempotency_keys.c.scope == scope,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.expires_at > now,
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return IdempotencyRecord(
            scope=row["scope"],
            key=row["key"],
            fingerprint=row["fingerprint"],
            result=dict(row["result"]),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
        )

    def insert_key(
        self,
        conn: Connection,
        *,
        organization_id: str,
        scope: str,
        key: str,
        fingerprint: str,
        result: dict[str, Any],
        now: datetime,
        expires_at: datetime,
    ) -> None:
        """Take the key in the caller's transaction; ``KeyTaken`` if an unexpired row holds
        it. An expired row of the same key is removed first, and a few other expired ones."""
        conn.execute(
            idempotency_keys.delete().where(
                idempotency_keys.c.organization_id == organization_id,
                idempotency_keys.c.scope == scope,
                idempotency_keys.c.key == key,
                idempotency_keys.c.expires_at <= now,
            )
        )
        self._purge(conn, now)
        try:
            with conn.begin_nested():
                conn.execute(
                    idempotency_keys.insert().values(
                        id=str(uuid.uuid4()),
                        organization_id=organization_id,
                        scope=scope,
                        key=key,
                        fingerprint=fingerprint,
                        result=result,
                        created_at=now,
                        expires_at=expires_at,
                    )
                )
        except sa.exc.IntegrityError as exc:
            raise KeyTaken(key) from exc

    def _purge(self, conn: Connection, now: datetime) -> None:
        """Delete up to ``PURGE_BATCH`` expired rows; on PostgreSQL only rows no one else
        holds (``SKIP LOCKED``), so purging never waits or deadlocks."""
        expired = (
            sa.select(idempotency_keys.c.id)
            .where(idempotency_keys.c.expires_at <= now)
            .limit(PURGE_BATCH)
        )
        if conn.dialect.name == "postgresql":
            expired = expired.with_for_update(skip_locked=True)
        ids = [r[0] for r in conn.execute(expired)]
        if ids:
            conn.execute(
                idempotency_keys.delete().where(
                    idempotency_keys.c.id.in_(sa.bindparam("ids", expanding=True))
                ),
                {"ids": ids},
            )
