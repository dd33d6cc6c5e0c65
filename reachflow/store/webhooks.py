"""Event webhooks: subscriptions, the events recorded for them, their deliveries (the webhook
outbox) and the log of every attempt.

A delivery moves ``pending -> in_flight -> delivered | failed``. Like the outbox, a claim
raises the row's ``fence`` and leases it until ``available_at``; only the holder of the
current token records its result. Deliveries that share a subscription and an ``order_key``
(the execution, or the contact) form a chain: only the chain's oldest open delivery may be
claimed, so they reach the subscriber one after another, in order.

Retention (``prune``): finished deliveries (delivered, or given up) that finished before a
cutoff are deleted with their attempts, a bounded batch at a time, and then each of their
events that has no delivery left. An open delivery is never deleted, so neither is its event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reachflow.store.driver_writes import DriverWrite, insert_write
from reachflow.store.tables import (
    webhook_attempts,
    webhook_deliveries,
    webhook_events,
    webhook_subscriptions,
)

_OPEN = ("pending", "in_flight")
_FINISHED = ("delivered", "failed")
ENABLED = "enabled"
DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    id: str
    organization_id: str
    url: str
    description: str | None
    event_types: list[str]
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None
    status: str
    disabled_reason: str | None
    disabled_at: datetime | None
    consecutive_failures: int
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def enabled(self) -> bool:
        return self.status == ENABLED


@dataclass(frozen=True, slots=True)
class Subscriber:
    """What recording an event needs of a subscription."""

    id: str
    organization_id: str
    event_types: tuple[str, ...]
    enabled: bool


@dataclass(frozen=True, slots=True)
class NewWebhookEvent:
    id: str
    organization_id: str
    type: str
    execution_id: str | None
    order_key: str
    payload: dict[str, Any]
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    organization_id: str
    subscription_id: str
    event_id: str
    event_type: str
    order_key: str
    attempts: int
    fence: int
    first_attempt_at: datetime
    payload: dict[str, Any]
    url: str
    secrets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AttemptRow:
    organization_id: str
    subscription_id: str
    delivery_id: int
    event_id: str
    event_type: str
    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: int
    ok: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    id: int
    delivery_id: int
    event_id: str
    event_type: str
    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: int
    ok: bool
    error: str | None
    delivery_status: str


@dataclass(frozen=True, slots=True)
class Pruned:
    """Rows one ``prune`` call deleted."""

    deliveries: int = 0
    attempts: int = 0
    events: int = 0


@dataclass(frozen=True, slots=True)
class FailureStreak:
    subscription_id: str
    consecutive_failures: int
    failing_since: datetime | None
    status: str


class Webhooks:
    # -- subscriptions --------------------------------------------------------------------

    def insert_subscription(self, conn: Connection, values: Mapping[str, Any]) -> None:
        conn.execute(webhook_subscriptions.insert().values(**values))

    def get_subscription(
        self, conn: Connection, organization_id: str, subscription_id: str, *, lock: bool = False
    ) -> SubscriptionRecord | None:
        query = sa.select(webhook_subscriptions).where(
            webhook_subscriptions.c.organization_id == organization_id,
            webhook_subscriptions.c.id == subscription_id,
            webhook_subscriptions.c.deleted_at.is_(None),
        )
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        return _subscription(row) if row else None

    def list_subscriptions(
        self, conn: Connection, organization_id: str, *, limit: int, offset: int
    ) -> tuple[list[SubscriptionRecord], int]:
        where = (
            webhook_subscriptions.c.organization_id == organization_id,
            webhook_subscriptions.c.deleted_at.is_(None),
        )
        total = conn.execute(
            sa.select(sa.func.count()).select_from(webhook_subscriptions).where(*where)
        ).scalar_one()
        rows = conn.execute(
            sa.select(webhook_subscriptions)
            .where(*where)
            .order_by(webhook_subscriptions.c.created_at, webhook_subscriptions.c.id)
            .limit(limit)
            .offset(offset)
        ).mappings()
        return [_subscription(r) for r in rows], int(total)

    def update_subscription(
        self, conn: Connection, subscription_id: str, values: Mapping[str, Any]
    ) -> None:
        conn.execute(
            webhook_subscriptions.update()
            .where(webhook_subscriptions.c.id == subscription_id)
            .values(**values)
        )

    def subscribers(self, conn: Connection, organization_ids: Iterable[str]) -> list[Subscriber]:
        """The subscriptions (enabled or not, never deleted) of these organizations, in one
        statement: what recording a batch's events needs."""
        ids = sorted(set(organization_ids))
        if not ids:
            return []
        rows = conn.execute(_SUBSCRIBERS, {"ids": ids})
        return [
            Subscriber(r.id, r.organization_id, tuple(r.event_types or ()), r.status == ENABLED)
            for r in rows
        ]

    # -- events and deliveries --------------------------------------------------------------

    def record(
        self,
        conn: Connection,
        events: Sequence[NewWebhookEvent],
        deliveries: Sequence[tuple[str, NewWebhookEvent]],
        now: datetime,
    ) -> None:
        """The events, then one pending delivery per ``(subscription id, event)``, in order:
        a chain's deliveries get increasing ids."""
        _INSERT_EVENTS.execute(
            conn,
            [
                {
                    "id": e.id,
                    "organization_id": e.organization_id,
                    "type": e.type,
                    "execution_id": e.execution_id,
                    "order_key": e.order_key,
                    "payload": e.payload,
                    "occurred_at": e.occurred_at,
                }
                for e in events
            ],
        )
        self.queue(conn, [(s, e.id, e.organization_id, e.order_key) for s, e in deliveries], now)

    def queue(
        self, conn: Connection, rows: Sequence[tuple[str, str, str, str]], now: datetime
    ) -> None:
        """``(subscription id, event id, organization id, order key)``: new pending
        deliveries, due now."""
        _INSERT_DELIVERIES.execute(
            conn,
            [
                {
                    "organization_id": org,
                    "subscription_id": sub,
                    "event_id": event_id,
                    "order_key": key,
                    "status": "pending",
                    "attempts": 0,
                    "fence": 0,
                    "available_at": now,
                    "created_at": now,
                }
                for sub, event_id, org, key in rows
            ],
        )

    def events_between(
        self,
        conn: Connection,
        organization_id: str,
        since: datetime,
        until: datetime,
        limit: int,
    ) -> list[tuple[str, str, str]]:
        """``(event id, type, order key)`` of the organization's events in ``[since, until)``,
        oldest first, at most ``limit``."""
        rows = conn.execute(
            sa.select(webhook_events.c.id, webhook_events.c.type, webhook_events.c.order_key)
            .where(
                webhook_events.c.organization_id == organization_id,
                webhook_events.c.occurred_at >= since,
                webhook_events.c.occurred_at < until,
            )
            .order_by(webhook_events.c.seq)
            .limit(limit)
        )
        return [(r.id, r.type, r.order_key) for r in rows]

    def event(
        self, conn: Connection, organization_id: str, event_id: str
    ) -> tuple[str, str, str] | None:
        row = conn.execute(
            sa.select(webhook_events.c.id, webhook_events.c.type, webhook_events.c.order_key).where(
                webhook_events.c.organization_id == organization_id,
                webhook_events.c.id == event_id,
            )
        ).first()
        return (row.id, row.type, row.order_key) if row else None

    def claim(
        self,
        conn: Connection,
        now: datetime,
        limit: int,
        lease: timedelta,
        *,
        skip_locked: bool,
        exclude: Iterable[str] = (),
        room: Mapping[str, int] | None = None,
        default_room: int = 1_000_000,
    ) -> list[ClaimedDelivery]:
        """Take up to ``limit`` due deliveries of enabled subscriptions, each the head of its
        chain (pending and due, or in flight with a lapsed lease: its worker died), under a new
        fencing token and a lease to ``now + lease``; at most ``room[subscription]`` (else
        ``default_room``) per subscription."""
        d, s, e = webhook_deliveries, webhook_subscriptions, webhook_events
        head = _head(d)
        due = (
            sa.select(d.c.id)
            .join(s, s.c.id == d.c.subscription_id)
            .where(d.c.status.in_(_OPEN), d.c.available_at <= now, s.c.status == ENABLED, head)
        )
        excluded = sorted(set(exclude))
        if excluded:
            due = due.where(d.c.subscription_id.not_in(excluded))
        due = due.order_by(d.c.available_at, d.c.id).limit(limit)
        if skip_locked:
            due = due.with_for_update(of=d, skip_locked=True)
        ids = [r.id for r in conn.execute(due)]
        if not ids:
            return []
        rows = conn.execute(
            sa.select(
                d.c.id,
                d.c.organization_id,
                d.c.subscription_id,
                d.c.event_id,
                d.c.order_key,
                d.c.attempts,
                d.c.fence,
                d.c.first_attempt_at,
                e.c.type,
                e.c.payload,
                s.c.url,
                s.c.secret,
                s.c.previous_secret,
                s.c.previous_secret_until,
            )
            .join(e, e.c.id == d.c.event_id)
            .join(s, s.c.id == d.c.subscription_id)
            .where(d.c.id.in_(ids))
            .order_by(d.c.available_at, d.c.id)
        ).mappings()
        until = now + lease
        items = []
        left = dict(room or {})
        for r in rows:
            sub = r["subscription_id"]
            left.setdefault(sub, default_room)
            if left[sub] <= 0:
                continue
            left[sub] -= 1
            secrets = [r["secret"]]
            if r["previous_secret"] and (
                r["previous_secret_until"] is None or r["previous_secret_until"] > now
            ):
                secrets.append(r["previous_secret"])
            items.append(
                ClaimedDelivery(
                    id=r["id"],
                    organization_id=r["organization_id"],
                    subscription_id=r["subscription_id"],
                    event_id=r["event_id"],
                    event_type=r["type"],
                    order_key=r["order_key"],
                    attempts=r["attempts"] + 1,
                    fence=r["fence"] + 1,
                    first_attempt_at=r["first_attempt_at"] or now,
                    payload=dict(r["payload"]),
                    url=r["url"],
                    secrets=tuple(secrets),
                )
            )
        if not items:
            return []
        _CLAIM.execute(
            conn,
            [
                {
                    "b_id": i.id,
                    "b_fence": i.fence,
                    "b_attempts": i.attempts,
                    "b_until": until,
                    "b_first": i.first_attempt_at,
                }
                for i in items
            ],
        )
        return items

    def held(self, conn: Connection, held: Sequence[tuple[int, int]]) -> set[int]:
        """Which ``(id, fence)`` deliveries are still in flight under that very token."""
        if not held:
            return set()
        query = sa.select(
            webhook_deliveries.c.id, webhook_deliveries.c.fence, webhook_deliveries.c.status
        ).where(webhook_deliveries.c.id.in_(sa.bindparam("ids", expanding=True)))
        if conn.dialect.name == "postgresql":
            query = query.order_by(webhook_deliveries.c.id).with_for_update()
        tokens = dict(held)
        return {
            r.id
            for r in conn.execute(query, {"ids": sorted(tokens)})
            if r.status == "in_flight" and r.fence == tokens.get(r.id)
        }

    def finish(
        self,
        conn: Connection,
        rows: Sequence[tuple[int, str, int | None, str | None]],
        now: datetime,
    ) -> None:
        """``(id, status, status code, error)``: delivered or failed (given up)."""
        _FINISH.execute(
            conn,
            [
                {"b_id": i, "b_status": st, "b_code": code, "b_error": err, "b_done": now}
                for i, st, code, err in rows
            ],
        )

    def retry(
        self, conn: Connection, rows: Sequence[tuple[int, datetime, int | None, str | None]]
    ) -> None:
        """``(id, at, status code, error)``: pending again, due at ``at``."""
        _RETRY.execute(
            conn,
            [{"b_id": i, "b_at": at, "b_code": code, "b_error": err} for i, at, code, err in rows],
        )

    def fail_open(self, conn: Connection, subscription_id: str, reason: str, now: datetime) -> int:
        """Give up every open delivery of a subscription (disabled or deleted)."""
        result = conn.execute(
            webhook_deliveries.update()
            .where(
                webhook_deliveries.c.subscription_id == subscription_id,
                webhook_deliveries.c.status.in_(_OPEN),
            )
            .values(status="failed", last_error=reason, done_at=now)
        )
        return int(result.rowcount or 0)

    def log_attempts(self, conn: Connection, rows: Sequence[AttemptRow]) -> None:
        _INSERT_ATTEMPTS.execute(
            conn,
            [
                {
                    "organization_id": r.organization_id,
                    "subscription_id": r.subscription_id,
                    "delivery_id": r.delivery_id,
                    "event_id": r.event_id,
                    "event_type": r.event_type,
                    "attempt": r.attempt,
                    "at": r.at,
                    "status_code": r.status_code,
                    "latency_ms": r.latency_ms,
                    "ok": r.ok,
                    "error": r.error,
                }
                for r in rows
            ],
        )

    def streaks(self, conn: Connection, subscription_ids: Iterable[str]) -> list[FailureStreak]:
        """The failure streaks of these subscriptions, under their row locks (id order)."""
        ids = sorted(set(subscription_ids))
        if not ids:
            return []
        s = webhook_subscriptions
        query = (
            sa.select(s.c.id, s.c.consecutive_failures, s.c.failing_since, s.c.status)
            .where(s.c.id.in_(ids))
            .order_by(s.c.id)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        return [
            FailureStreak(r.id, r.consecutive_failures, r.failing_since, r.status)
            for r in conn.execute(query)
        ]

    def write_streaks(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        _WRITE_STREAK.execute(conn, rows)

    def next_at(self, conn: Connection, *, exclude: Iterable[str] = ()) -> datetime | None:
        """When the next chain head of an enabled subscription falls due (or its lease ends),
        but for excluded subscriptions. (A delivery behind its chain's head waits for it.)"""
        d = webhook_deliveries
        query = (
            sa.select(sa.func.min(d.c.available_at))
            .join(webhook_subscriptions, webhook_subscriptions.c.id == d.c.subscription_id)
            .where(d.c.status.in_(_OPEN), webhook_subscriptions.c.status == ENABLED, _head(d))
        )
        excluded = sorted(set(exclude))
        if excluded:
            query = query.where(d.c.subscription_id.not_in(excluded))
        value = conn.execute(query).scalar_one_or_none()
        if value is None:
            return None
        decoded: datetime | None = d.c.available_at.type.process_result_value(value, conn.dialect)
        return decoded

    def attempts_of(
        self,
        conn: Connection,
        subscription_id: str,
        *,
        limit: int,
        before: int | None = None,
        event_id: str | None = None,
    ) -> list[AttemptRecord]:
        """The subscription's delivery log, newest first."""
        a, d = webhook_attempts, webhook_deliveries
        query = (
            sa.select(a, d.c.status.label("delivery_status"))
            .join(d, d.c.id == a.c.delivery_id)
            .where(a.c.subscription_id == subscription_id)
        )
        if before is not None:
            query = query.where(a.c.id < before)
        if event_id is not None:
            query = query.where(a.c.event_id == event_id)
        rows = conn.execute(query.order_by(a.c.id.desc()).limit(limit)).mappings()
        return [
            AttemptRecord(
                id=r["id"],
                delivery_id=r["delivery_id"],
                event_id=r["event_id"],
                event_type=r["event_type"],
                attempt=r["attempt"],
                at=r["at"],
                status_code=r["status_code"],
                latency_ms=r["latency_ms"],
                ok=bool(r["ok"]),
                error=r["error"],
                delivery_status=r["delivery_status"],
            )
            for r in rows
        ]

    def prune(self, conn: Connection, before: datetime, limit: int, *, skip_locked: bool) -> Pruned:
        """Delete up to ``limit`` deliveries that finished before ``before`` (the oldest
        first, by the ``done_at`` index), their attempts, and those of their events no
        delivery refers to any more. Rows another transaction holds are skipped (PostgreSQL),
        not waited for. Never an open delivery, nor an event one still refers to."""
        d, a, e = webhook_deliveries, webhook_attempts, webhook_events
        query = (
            sa.select(d.c.id, d.c.event_id)
            .where(d.c.done_at < before, d.c.status.in_(_FINISHED))
            .order_by(d.c.done_at)
            .limit(limit)
        )
        if skip_locked:
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        if not rows:
            return Pruned()
        ids = [r.id for r in rows]
        events = sorted({r.event_id for r in rows})
        attempts = conn.execute(
            a.delete().where(a.c.delivery_id.in_(sa.bindparam("ids", expanding=True))),
            {"ids": ids},
        ).rowcount
        deliveries = conn.execute(
            d.delete().where(d.c.id.in_(sa.bindparam("ids", expanding=True))), {"ids": ids}
        ).rowcount
        left = sa.select(d.c.id).where(d.c.event_id == e.c.id)
        gone = conn.execute(
            e.delete().where(e.c.id.in_(sa.bindparam("ids", expanding=True)), ~sa.exists(left)),
            {"ids": events},
        ).rowcount
        return Pruned(int(deliveries or 0), int(attempts or 0), int(gone or 0))

    def open_count(self, conn: Connection, subscription_id: str) -> int:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(webhook_deliveries)
                .where(
                    webhook_deliveries.c.subscription_id == subscription_id,
                    webhook_deliveries.c.status.in_(_OPEN),
                )
            ).scalar_one()
        )


def _head(d: sa.Table) -> Any:
    """The delivery is its chain's oldest open one."""
    earlier = d.alias("earlier")
    return ~sa.exists(
        sa.select(earlier.c.id).where(
            earlier.c.subscription_id == d.c.subscription_id,
            earlier.c.order_key == d.c.order_key,
            earlier.c.status.in_(_OPEN),
            earlier.c.id < d.c.id,
        )
    )


def _subscription(row: Any) -> SubscriptionRecord:
    return SubscriptionRecord(
        id=row["id"],
        organization_id=row["organization_id"],
        url=row["url"],
        description=row["description"],
        event_types=list(row["event_types"] or []),
        secret=row["secret"],
        previous_secret=row["previous_secret"],
        previous_secret_until=row["previous_secret_until"],
        status=row["status"],
        disabled_reason=row["disabled_reason"],
        disabled_at=row["disabled_at"],
        consecutive_failures=row["consecutive_failures"],
        failing_since=row["failing_since"],
        last_success_at=row["last_success_at"],
        last_failure_at=row["last_failure_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


_SUBSCRIBERS = sa.select(
    webhook_subscriptions.c.id,
    webhook_subscriptions.c.organization_id,
    webhook_subscriptions.c.event_types,
    webhook_subscriptions.c.status,
).where(
    webhook_subscriptions.c.organization_id.in_(sa.bindparam("ids", expanding=True)),
    webhook_subscriptions.c.deleted_at.is_(None),
)
_INSERT_EVENTS = insert_write(
    "webhook_events",
    ["id", "organization_id", "type", "execution_id", "order_key", "payload", "occurred_at"],
)
_INSERT_DELIVERIES = insert_write(
    "webhook_deliveries",
    [
        "organization_id",
        "subscription_id",
        "event_id",
        "order_key",
        "status",
        "attempts",
        "fence",
        "available_at",
        "created_at",
    ],
)
_INSERT_ATTEMPTS = insert_write(
    "webhook_attempts",
    [
        "organization_id",
        "subscription_id",
        "delivery_id",
        "event_id",
        "event_type",
        "attempt",
        "at",
        "status_code",
        "latency_ms",
        "ok",
        "error",
    ],
)
_CLAIM = DriverWrite(
    "UPDATE webhook_deliveries SET status = 'in_flight', fence = :b_fence,"
    " attempts = :b_attempts, available_at = :b_until, first_attempt_at = :b_first"
    " WHERE id = :b_id"
)
_FINISH = DriverWrite(
    "UPDATE webhook_deliveries SET status = :b_status, last_status_code = :b_code,"
    " last_error = :b_error, done_at = :b_done WHERE id = :b_id"
)
_RETRY = DriverWrite(
    "UPDATE webhook_deliveries SET status = 'pending', available_at = :b_at,"
    " last_status_code = :b_code, last_error = :b_error WHERE id = :b_id"
)
_WRITE_STREAK = DriverWrite(
    "UPDATE webhook_subscriptions SET consecutive_failures = :b_failures,"
    " failing_since = :b_since, last_success_at = COALESCE(:b_success, last_success_at),"
    " last_failure_at = COALESCE(:b_failure, last_failure_at), status = :b_status,"
    " disabled_reason = COALESCE(:b_reason, disabled_reason),"
    " disabled_at = COALESCE(:b_disabled_at, disabled_at) WHERE id = :b_id",
    postgresql="UPDATE webhook_subscriptions SET consecutive_failures = :b_failures,"
    " failing_since = :b_since,"
    " last_success_at = COALESCE(CAST(:b_success AS timestamptz), last_success_at),"
    " last_failure_at = COALESCE(CAST(:b_failure AS timestamptz), last_failure_at),"
    " status = :b_status, disabled_reason = COALESCE(CAST(:b_reason AS text), disabled_reason),"
    " disabled_at = COALESCE(CAST(:b_disabled_at AS timestamptz), disabled_at) WHERE id = :b_id",
)
