"""The outbox (commands to perform) and the inbox (events to feed back to ``decide``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reachflow.store.records import InboxItem, OutboxItem
from reachflow.store.tables import inbox, outbox
from reachflow.store.types import earliest


class Queue:
    def claim_outbox(
        self, conn: Connection, now: datetime, limit: int, lease: timedelta, *, skip_locked: bool
    ) -> list[OutboxItem]:
        """Take pending commands whose lease is free; the lease hides them from other workers."""
        query = (
            sa.select(outbox)
            .where(outbox.c.status == "pending", outbox.c.available_at <= now)
            .order_by(outbox.c.available_at, outbox.c.id)
            .limit(limit)
        )
        if skip_locked:
            query = query.with_for_update(skip_locked=True)
        rows = list(conn.execute(query).mappings())
        if not rows:
            return []
        conn.execute(
            outbox.update()
            .where(outbox.c.id.in_([r["id"] for r in rows]))
            .values(available_at=now + lease, attempts=outbox.c.attempts + 1)
        )
        return [
            OutboxItem(
                id=r["id"],
                organization_id=r["organization_id"],
                execution_id=r["execution_id"],
                step_execution_id=r["step_execution_id"],
                idempotency_key=r["idempotency_key"],
                kind=r["kind"],
                payload=dict(r["payload"]),
                attempts=r["attempts"] + 1,
            )
            for r in rows
        ]

    def finish_outbox(
        self, conn: Connection, item_id: int, now: datetime, *, error: str | None = None
    ) -> None:
        conn.execute(
            outbox.update()
            .where(outbox.c.id == item_id)
            .values(status="failed" if error else "done", done_at=now, last_error=error)
        )

    def retry_outbox(self, conn: Connection, item_id: int, at: datetime, error: str) -> None:
        conn.execute(
            outbox.update().where(outbox.c.id == item_id).values(available_at=at, last_error=error)
        )

    def outbox_status(self, conn: Connection, idempotency_key: str) -> str | None:
        value = conn.execute(
            sa.select(outbox.c.status).where(outbox.c.idempotency_key == idempotency_key)
        ).scalar_one_or_none()
        return str(value) if value is not None else None

    def next_outbox_at(self, conn: Connection) -> datetime | None:
        return earliest(conn, outbox.c.available_at, outbox.c.status == "pending")

    def put_inbox(
        self,
        conn: Connection,
        *,
        organization_id: str,
        execution_id: str,
        kind: str,
        payload: dict[str, Any],
        dedupe_key: str,
        due_at: datetime,
        now: datetime,
    ) -> bool:
        """Record an event once; a second event with the same key is dropped (returns False)."""
        exists = conn.execute(sa.select(inbox.c.id).where(inbox.c.dedupe_key == dedupe_key)).first()
        if exists is not None:
            return False
        conn.execute(
            inbox.insert().values(
                organization_id=organization_id,
                execution_id=execution_id,
                kind=kind,
                payload=payload,
                dedupe_key=dedupe_key,
                due_at=due_at,
                created_at=now,
            )
        )
        return True

    def claim_inbox(
        self, conn: Connection, now: datetime, limit: int, *, skip_locked: bool
    ) -> list[InboxItem]:
        query = (
            sa.select(inbox)
            .where(inbox.c.due_at <= now)
            .order_by(inbox.c.due_at, inbox.c.id)
            .limit(limit)
        )
        if skip_locked:
            query = query.with_for_update(skip_locked=True)
        return [
            InboxItem(
                id=r["id"],
                organization_id=r["organization_id"],
                execution_id=r["execution_id"],
                kind=r["kind"],
                payload=dict(r["payload"]),
                due_at=r["due_at"],
            )
            for r in conn.execute(query).mappings()
        ]

    def mark_inbox_done(self, conn: Connection, item_id: int) -> None:
        """A fed event is gone; a replay of it finds no step in flight and changes nothing."""
        conn.execute(inbox.delete().where(inbox.c.id == item_id))

    def next_inbox_at(self, conn: Connection) -> datetime | None:
        return earliest(conn, inbox.c.due_at)
