"""Agent calls: registered when a dispatch is claimed (before any agent is asked), found again
by our call id or the provider's own id when the agent reports later."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reachflow.store.driver_writes import DriverWrite, insert_write
from reachflow.store.tables import agent_calls, webhook_messages

_CALL_IDS = uuid.UUID("6f1d7c52-8f0e-4d7e-9a51-1b0c3c1f7a21")


def call_id_of(idempotency_key: str) -> str:
    """Our id for the call a step attempt places: the same for every retry of it."""
    return str(uuid.uuid5(_CALL_IDS, idempotency_key))


@dataclass(frozen=True, slots=True)
class NewAgentCall:
    organization_id: str
    execution_id: str
    step_execution_id: str
    agent_id: str
    provider: str
    channel: str
    idempotency_key: str

    @property
    def id(self) -> str:
        return call_id_of(self.idempotency_key)


@dataclass(frozen=True, slots=True)
class AgentCallRecord:
    id: str
    organization_id: str
    execution_id: str
    step_execution_id: str
    agent_id: str
    provider: str
    channel: str
    idempotency_key: str
    provider_call_id: str | None
    status: str
    result: dict[str, Any] | None
    created_at: datetime
    reported_at: datetime | None


class AgentCalls:
    def register(self, conn: Connection, calls: Sequence[NewAgentCall], now: datetime) -> None:
        """Record calls about to be handed to agents; a re-send keeps its row."""
        _REGISTER.execute(
            conn,
            [
                {
                    "id": c.id,
                    "organization_id": c.organization_id,
                    "execution_id": c.execution_id,
                    "step_execution_id": c.step_execution_id,
                    "agent_id": c.agent_id,
                    "provider": c.provider,
                    "channel": c.channel,
                    "idempotency_key": c.idempotency_key,
                    "status": "dispatched",
                    "created_at": now,
                }
                for c in calls
            ],
        )

    def accepted(self, conn: Connection, rows: Sequence[tuple[str, str]]) -> None:
        """``(call id, provider call id)``: the agent took the call and will report later."""
        _ACCEPTED.execute(conn, [{"b_id": i, "b_provider_call_id": p} for i, p in rows])

    def reported_at_once(self, conn: Connection, call_ids: Sequence[str], now: datetime) -> None:
        """Calls whose agent answered with the outcome in its reply."""
        _REPORTED.execute(conn, [{"b_id": i, "b_at": now} for i in call_ids])

    def get(
        self, conn: Connection, call_id: str, *, lock: bool = False
    ) -> AgentCallRecord | None:
        query = sa.select(agent_calls).where(agent_calls.c.id == call_id)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        return _record(row) if row else None

    def find_by_provider(
        self, conn: Connection, provider: str, provider_call_id: str, *, lock: bool = False
    ) -> AgentCallRecord | None:
        query = sa.select(agent_calls).where(
            agent_calls.c.provider == provider,
            agent_calls.c.provider_call_id == provider_call_id,
        )
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        return _record(row) if row else None

    def mark_reported(
        self, conn: Connection, call_id: str, result: dict[str, Any], now: datetime
    ) -> None:
        conn.execute(
            agent_calls.update()
            .where(agent_calls.c.id == call_id)
            .values(status="reported", result=result, reported_at=now)
        )

    def in_flight(self, conn: Connection, agent_id: str, since: datetime) -> int:
        """Calls the agent has taken since ``since`` and not reported yet."""
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(
                    agent_calls.c.agent_id == agent_id,
                    agent_calls.c.status.in_(("dispatched", "accepted")),
                    agent_calls.c.created_at >= since,
                )
            ).scalar_one()
        )

    def remember_message(
        self, conn: Connection, message_id: str, organization_id: str, now: datetime
    ) -> bool:
        """Record a signed webhook message's id; False when it was seen before (a replay)."""
        try:
            with conn.begin_nested():
                conn.execute(
                    webhook_messages.insert().values(
                        id=message_id, organization_id=organization_id, received_at=now
                    )
                )
        except sa.exc.IntegrityError:
            return False
        return True


def _record(row: Any) -> AgentCallRecord:
    return AgentCallRecord(
        id=row["id"],
        organization_id=row["organization_id"],
        execution_id=row["execution_id"],
        step_execution_id=row["step_execution_id"],
        agent_id=row["agent_id"],
        provider=row["provider"],
        channel=row["channel"],
        idempotency_key=row["idempotency_key"],
        provider_call_id=row["provider_call_id"],
        status=row["status"],
        result=dict(row["result"]) if row["result"] is not None else None,
        created_at=row["created_at"],
        reported_at=row["reported_at"],
    )


_REGISTER = insert_write(
    "agent_calls",
    [
        "id",
        "organization_id",
        "execution_id",
        "step_execution_id",
        "agent_id",
        "provider",
        "channel",
        "idempotency_key",
        "status",
        "created_at",
    ],
    " ON CONFLICT (idempotency_key) DO NOTHING",
)
_REPORTED = DriverWrite(
    "UPDATE agent_calls SET status = 'reported', reported_at = :b_at WHERE id = :b_id"
)
_ACCEPTED = DriverWrite(
    "UPDATE agent_calls SET provider_call_id = :b_provider_call_id, status = 'accepted'"
    " WHERE id = :b_id AND status = 'dispatched'"
)
