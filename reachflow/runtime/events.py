"""Recording outbound events in the transaction that makes them true (the webhook outbox).

Whatever writes a change that some subscription wants to hear about (a batch of decisions,
new executions, a contact's suppression or consent) hands it here in its own transaction:
one read of the organizations' subscriptions, then the events and one delivery per
subscription that takes them. The events commit with the change or not at all, and
``embedded/webhooks.py`` delivers them later. An organization without subscriptions costs
that one read, and nothing is stored for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from reachflow.domain.decider import Decision
from reachflow.domain.events import (
    CONTACT_CONSENTED,
    CONTACT_SUPPRESSED,
    EXECUTION_CREATED,
    events_of,
    matches,
)
from reachflow.store.records import ExecutionRecord
from reachflow.store.store import Store
from reachflow.store.webhooks import NewWebhookEvent


@dataclass(frozen=True, slots=True)
class PendingEvent:
    organization_id: str
    type: str
    at: datetime
    data: Mapping[str, Any]
    #: Deliveries with the same key go out in order: ``execution:<id>`` or ``contact:<phone>``.
    order_key: str
    execution_id: str | None = None


@dataclass(frozen=True, slots=True)
class CreatedExecution:
    """What ``execution.created`` tells of a new execution."""

    id: str
    organization_id: str
    workflow_id: str
    customer_lead_id: str | None
    phone: str
    status: str
    start_at: datetime | None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class EventPublisher:
    def __init__(self, store: Store) -> None:
        self.store = store

    def publish(self, conn: Connection, events: Sequence[PendingEvent], now: datetime) -> int:
        """Record the events some subscription takes, with their deliveries; returns how many
        events were recorded."""
        if not events:
            return 0
        subscribers = self.store.webhooks.subscribers(conn, {e.organization_id for e in events})
        return self._record(conn, events, subscribers, now)

    def _record(
        self,
        conn: Connection,
        events: Sequence[PendingEvent],
        subscribers: Sequence[Any],
        now: datetime,
    ) -> int:
        if not subscribers:
            return 0
        by_org: dict[str, list[Any]] = {}
        for sub in subscribers:
            by_org.setdefault(sub.organization_id, []).append(sub)
        recorded: list[NewWebhookEvent] = []
        deliveries: list[tuple[str, NewWebhookEvent]] = []
        for event in events:
            takers = [
                s
                for s in by_org.get(event.organization_id, ())
                if matches(s.event_types, event.type)
            ]
            if not takers:
                continue
            event_id = f"evt_{uuid.uuid4().hex}"
            new = NewWebhookEvent(
                id=event_id,
                organization_id=event.organization_id,
                type=event.type,
                execution_id=event.execution_id,
                order_key=event.order_key[:80],
                payload=body(event_id, event.type, event.at, event.data),
                occurred_at=event.at,
            )
            recorded.append(new)
            # A disabled subscription keeps its events (for a redelivery once it is enabled
            # again) but gets no delivery.
            deliveries.extend((s.id, new) for s in takers if s.enabled)
        if recorded:
            self.store.webhooks.record(conn, recorded, deliveries, now)
        return len(recorded)

    def publish_decisions(
        self,
        conn: Connection,
        decided: Sequence[tuple[ExecutionRecord, Decision]],
        now: datetime,
    ) -> int:
        """The events a batch of decisions tells (``domain.events.events_of``)."""
        if not decided:
            return 0
        subscribers = self.store.webhooks.subscribers(conn, {r.organization_id for r, _ in decided})
        if not subscribers:
            return 0
        listening = {s.organization_id for s in subscribers}
        pending: list[PendingEvent] = []
        for record, decision in decided:
            if record.organization_id not in listening:
                continue
            base = execution_data(record, decision.state.status.value)
            for event in events_of(decision.history, decision.steps):
                pending.append(
                    PendingEvent(
                        organization_id=record.organization_id,
                        type=event.type,
                        at=event.at,
                        data={**base, **event.data},
                        order_key=f"execution:{record.id}",
                        execution_id=record.id,
                    )
                )
        return self._record(conn, pending, subscribers, now)

    def executions_created(
        self, conn: Connection, created: Sequence[CreatedExecution], now: datetime
    ) -> int:
        return self.publish(
            conn,
            [
                PendingEvent(
                    organization_id=c.organization_id,
                    type=EXECUTION_CREATED,
                    at=now,
                    data={
                        "executionId": c.id,
                        "workflowId": c.workflow_id,
                        "customerLeadId": c.customer_lead_id,
                        "phoneNumber": c.phone,
                        "status": c.status,
                        "startAt": _iso(c.start_at),
                        "metadata": dict(c.metadata),
                    },
                    order_key=f"execution:{c.id}",
                    execution_id=c.id,
                )
                for c in created
            ],
            now,
        )

    def contact_suppressed(
        self,
        conn: Connection,
        organization_id: str,
        phone: str,
        channels: Sequence[str],
        reason: str,
        source: str,
        now: datetime,
        *,
        execution_id: str | None = None,
    ) -> int:
        return self.publish(
            conn,
            [
                PendingEvent(
                    organization_id=organization_id,
                    type=CONTACT_SUPPRESSED,
                    at=now,
                    data={
                        "phoneNumber": phone,
                        "channel": channel,
                        "reason": reason,
                        "source": source,
                        "executionId": execution_id,
                    },
                    order_key=f"contact:{phone}",
                    execution_id=execution_id,
                )
                for channel in channels
            ],
            now,
        )

    def contacts_consented(
        self,
        conn: Connection,
        grants: Sequence[tuple[str, str, str, str, str | None]],
        now: datetime,
    ) -> int:
        """``(organization id, phone, channel, source, execution id)`` per consent recorded."""
        return self.publish(
            conn,
            [
                PendingEvent(
                    organization_id=org,
                    type=CONTACT_CONSENTED,
                    at=now,
                    data={
                        "phoneNumber": phone,
                        "channel": channel,
                        "source": source,
                        "executionId": execution_id,
                    },
                    order_key=f"contact:{phone}",
                    execution_id=execution_id,
                )
                for org, phone, channel, source, execution_id in grants
            ],
            now,
        )


def execution_data(record: ExecutionRecord, status: str) -> dict[str, Any]:
    return {
        "executionId": record.id,
        "workflowId": record.workflow_id,
        "customerLeadId": record.customer_lead_id,
        "phoneNumber": record.primary_phone,
        "status": status,
    }


def body(event_id: str, event_type: str, at: datetime, data: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body every delivery of the event sends (Standard Webhooks' recommended
    ``type``, ``timestamp``, ``data``, plus the event's ``id``)."""
    return {"id": event_id, "type": event_type, "timestamp": _iso(at), "data": dict(data)}


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
