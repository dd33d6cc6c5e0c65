"""The outbox (commands to perform) and the inbox (events to feed back to ``decide``).

Outbox rows move ``pending -> in_flight -> done | failed``. A claim raises the row's ``fence``
(the fencing token) and sets its lease end in ``available_at``; renewing, finishing, retrying
or failing a row requires the token the claimer was given, so a worker whose lease lapsed and
whose row was taken over cannot finish it. Every statement the engine runs per batch is built
once, here, and executed with many parameter sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reachflow.store.driver_writes import DriverWrite, insert_write
from reachflow.store.records import InboxItem, OutboxItem
from reachflow.store.tables import inbox, outbox
from reachflow.store.types import earliest

_OPEN = ("pending", "in_flight")
#: Due commands are taken in priority order among this many of the most overdue.
PRIORITY_WINDOW = 2_000


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An inbox row: an event for ``decide``, recorded once per ``dedupe_key``."""

    organization_id: str
    execution_id: str
    kind: str
    payload: dict[str, Any]
    dedupe_key: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class WithdrawnDispatch:
    id: int
    execution_id: str
    step_execution_id: str
    idempotency_key: str
    fence: int


@dataclass(frozen=True, slots=True)
class Withdrawn:
    #: Pending dispatches taken back: they will never be sent.
    taken: list[WithdrawnDispatch]
    #: Dispatches already handed to an agent when the state changed.
    in_flight: list[WithdrawnDispatch]


class Queue:
    # -- outbox -------------------------------------------------------------------------

    def claim_outbox(
        self,
        conn: Connection,
        now: datetime,
        limit: int,
        lease: timedelta,
        *,
        skip_locked: bool,
        exclude_agents: Iterable[str] = (),
    ) -> list[OutboxItem]:
        """Take up to ``limit`` rows that are pending and due, or in flight with a lapsed lease
        (their worker died: they are re-sent under the same key). Each is put in flight under a
        new fencing token and a lease ending at ``now + lease``, in this transaction."""
        due = (
            sa.select(outbox.c.id)
            .where(outbox.c.status.in_(_OPEN), outbox.c.available_at <= now)
            .order_by(outbox.c.available_at)
            .limit(PRIORITY_WINDOW)
        )
        excluded = sorted(set(exclude_agents))
        if excluded:
            due = due.where(
                sa.or_(outbox.c.agent_id.is_(None), outbox.c.agent_id.not_in(excluded))
            )
        # Priority order (``priorityDate``, then due time) among the most overdue commands,
        # across the whole queue: a full queue serves the highest priority first, and a
        # command only waits until it is among the most overdue (nothing starves).
        query = (
            sa.select(outbox)
            .where(outbox.c.id.in_(due.scalar_subquery()))
            .order_by(outbox.c.priority_key, outbox.c.available_at, outbox.c.id)
            .limit(limit)
        )
        if skip_locked:
            query = query.with_for_update(skip_locked=True)
        rows = list(conn.execute(query).mappings())
        if not rows:
            return []
        until = now + lease
        items = [
            OutboxItem(
                id=r["id"],
                organization_id=r["organization_id"],
                execution_id=r["execution_id"],
                step_execution_id=r["step_execution_id"],
                idempotency_key=r["idempotency_key"],
                kind=r["kind"],
                payload=dict(r["payload"]),
                attempts=r["attempts"] + 1,
                fence=r["fence"] + 1,
                agent_id=r["agent_id"],
                resent=r["status"] == "in_flight",
                lease_until=until,
            )
            for r in rows
        ]
        _CLAIM.execute(
            conn,
            [
                {"b_id": i.id, "b_fence": i.fence, "b_attempts": i.attempts, "b_until": until}
                for i in items
            ],
        )
        return items

    def renew(self, conn: Connection, held: Sequence[tuple[int, int]], until: datetime) -> None:
        """Extend the leases of ``(id, fence)`` rows still held under that token."""
        if held:
            _RENEW.execute(conn, [{"b_id": i, "b_fence": f, "b_until": until} for i, f in held])

    def held(self, conn: Connection, held: Sequence[tuple[int, int]]) -> set[int]:
        """Which of the ``(id, fence)`` rows are still in flight under that very token (read
        under their row locks on PostgreSQL)."""
        if not held:
            return set()
        query = sa.select(outbox.c.id, outbox.c.fence, outbox.c.status).where(
            outbox.c.id.in_(sa.bindparam("ids", expanding=True))
        )
        if conn.dialect.name == "postgresql":
            query = query.order_by(outbox.c.id).with_for_update()
        tokens = dict(held)
        return {
            r.id
            for r in conn.execute(query, {"ids": sorted(tokens)})
            if r.status == "in_flight" and r.fence == tokens.get(r.id)
        }

    def finish_many(
        self, conn: Connection, rows: Sequence[tuple[int, str | None]], now: datetime
    ) -> None:
        """``(id, error)``: done when error is None, else failed with it."""
        if rows:
            _FINISH.execute(
                conn,
                [
                    {
                        "b_id": i,
                        "b_status": "failed" if error else "done",
                        "b_done_at": now,
                        "b_error": error,
                    }
                    for i, error in rows
                ],
            )

    def retry_many(self, conn: Connection, rows: Sequence[tuple[int, datetime, str]]) -> None:
        """``(id, at, error)``: back to pending, to be taken again at ``at`` (same key)."""
        if rows:
            _RETRY.execute(
                conn, [{"b_id": i, "b_at": at, "b_error": error} for i, at, error in rows]
            )

    def release(self, conn: Connection, rows: Sequence[tuple[int, datetime]]) -> None:
        """``(id, at)``: hand claimed rows back untouched (their agent or organization has no
        capacity now): pending again, to be taken at ``at``."""
        if rows:
            _RELEASE.execute(conn, [{"b_id": i, "b_at": at} for i, at in rows])

    def withdraw_dispatches(
        self, conn: Connection, execution_ids: Sequence[str], reason: str, now: datetime
    ) -> Withdrawn:
        """Take back the pending dispatches of these executions (they were paused or
        cancelled): finished as failed with ``reason``, never sent. Rows a claimer holds right
        now are skipped (PostgreSQL, ``SKIP LOCKED``): the caller holds the contacts' locks, so
        that claimer reads the new execution status after this transaction and holds them
        itself. Also returns the dispatches already in flight (handed to an agent)."""
        if not execution_ids:
            return Withdrawn([], [])
        ids = {"ids": sorted(set(execution_ids))}
        pending = _OPEN_DISPATCHES.where(outbox.c.status == "pending")
        if conn.dialect.name == "postgresql":
            pending = pending.with_for_update(skip_locked=True)
        taken = [_withdrawn(r) for r in conn.execute(pending, ids).mappings()]
        self.finish_many(conn, [(i.id, reason) for i in taken], now)
        flying = _OPEN_DISPATCHES.where(outbox.c.status == "in_flight")
        in_flight = [_withdrawn(r) for r in conn.execute(flying, ids).mappings()]
        return Withdrawn(taken, in_flight)

    def outbox_status(self, conn: Connection, idempotency_key: str) -> str | None:
        value = conn.execute(
            sa.select(outbox.c.status).where(outbox.c.idempotency_key == idempotency_key)
        ).scalar_one_or_none()
        return str(value) if value is not None else None

    def next_outbox_at(
        self, conn: Connection, *, exclude_agents: Iterable[str] = ()
    ) -> datetime | None:
        """The next pending row's time or in-flight row's lease end (``ix_outbox_open``), but
        for rows of agents at their bound (their freed slot wakes the worker)."""
        excluded = sorted(set(exclude_agents))
        where = [outbox.c.status.in_(_OPEN)]
        if excluded:
            where.append(sa.or_(outbox.c.agent_id.is_(None), outbox.c.agent_id.not_in(excluded)))
        return earliest(conn, outbox.c.available_at, *where)

    # -- inbox --------------------------------------------------------------------------

    def put_events(self, conn: Connection, events: Sequence[NewEvent], now: datetime) -> None:
        """Record events in one statement; an event whose key is already there is dropped."""
        _INSERT_EVENTS.execute(
            conn,
            [
                {
                    "organization_id": e.organization_id,
                    "execution_id": e.execution_id,
                    "kind": e.kind,
                    "payload": e.payload,
                    "dedupe_key": e.dedupe_key,
                    "due_at": e.due_at,
                    "created_at": now,
                }
                for e in events
            ],
        )

    def claim_inbox(
        self, conn: Connection, now: datetime, limit: int, *, skip_locked: bool
    ) -> list[InboxItem]:
        """Take due events, oldest first, and delete them in this transaction: a fed event is
        gone, and a replay of it finds no step in flight and changes nothing."""
        query = (
            sa.select(inbox)
            .where(inbox.c.due_at <= now)
            .order_by(inbox.c.due_at, inbox.c.id)
            .limit(limit)
        )
        if skip_locked:
            query = query.with_for_update(skip_locked=True)
        items = [
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
        if items:
            conn.execute(_DELETE_INBOX, {"ids": [i.id for i in items]})
        return items

    def next_inbox_at(self, conn: Connection) -> datetime | None:
        return earliest(conn, inbox.c.due_at)


_OPEN_DISPATCHES = (
    sa.select(
        outbox.c.id,
        outbox.c.execution_id,
        outbox.c.step_execution_id,
        outbox.c.idempotency_key,
        outbox.c.fence,
    )
    .where(
        outbox.c.execution_id.in_(sa.bindparam("ids", expanding=True)),
        outbox.c.kind == "dispatch",
    )
    .order_by(outbox.c.id)
)


def _withdrawn(row: Any) -> WithdrawnDispatch:
    return WithdrawnDispatch(
        row["id"],
        row["execution_id"],
        row["step_execution_id"],
        row["idempotency_key"],
        row["fence"],
    )


#: Written once, run as executemany on the driver (``driver_writes``).
_CLAIM = DriverWrite(
    "UPDATE outbox SET status = 'in_flight', fence = :b_fence, attempts = :b_attempts,"
    " available_at = :b_until WHERE id = :b_id",
    postgresql_rows="UPDATE outbox AS t SET status = 'in_flight', fence = CAST(v.fence AS int),"
    " attempts = CAST(v.attempts AS int), available_at = CAST(v.until AS timestamptz)"
    " FROM (VALUES {rows}) AS v(fence, attempts, until, id) WHERE t.id = CAST(v.id AS bigint)",
)
_RENEW = DriverWrite(
    "UPDATE outbox SET available_at = :b_until"
    " WHERE id = :b_id AND fence = :b_fence AND status = 'in_flight'"
)
_FINISH = DriverWrite(
    "UPDATE outbox SET status = :b_status, done_at = :b_done_at, last_error = :b_error"
    " WHERE id = :b_id",
    postgresql_rows="UPDATE outbox AS t SET status = v.status,"
    " done_at = CAST(v.done_at AS timestamptz), last_error = v.error"
    " FROM (VALUES {rows}) AS v(status, done_at, error, id) WHERE t.id = CAST(v.id AS bigint)",
)
_RETRY = DriverWrite(
    "UPDATE outbox SET status = 'pending', available_at = :b_at, last_error = :b_error"
    " WHERE id = :b_id"
)
_RELEASE = DriverWrite(
    "UPDATE outbox SET status = 'pending', attempts = attempts - 1, available_at = :b_at"
    " WHERE id = :b_id"
)
_INSERT_EVENTS = insert_write(
    "inbox",
    [
        "organization_id",
        "execution_id",
        "kind",
        "payload",
        "dedupe_key",
        "due_at",
        "created_at",
    ],
    " ON CONFLICT (dedupe_key) DO NOTHING",
)
_DELETE_INBOX = inbox.delete().where(inbox.c.id.in_(sa.bindparam("ids", expanding=True)))
