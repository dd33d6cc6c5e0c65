"""Public execution sessions, their own events, their client tokens (by hash), and the
organizations' payment webhook secrets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reachflow.store.records import EventRecord
from reachflow.store.tables import (
    client_tokens,
    execution_events,
    executions,
    payment_secrets,
    public_session_events,
    public_sessions,
)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    organization_id: str
    workflow_id: str
    run_id: str | None
    source_system: str
    source_entity_type: str
    source_entity_id: str | None
    external_ref: str | None
    idempotency_key: str | None
    client_safe_metadata: dict[str, Any]
    request_payload: dict[str, Any]
    initiated_by_type: str
    initiated_by_id: str
    price_amount: int | None
    price_currency: str | None
    payment_status: str
    checkout_session_id: str | None
    order_id: str | None
    payment_due_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SessionEventRecord:
    id: int
    kind: str
    at: datetime
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TokenRecord:
    session_id: str
    organization_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class RunRecord:
    """The few columns of a session's run (its execution) the public view shows."""

    id: str
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    disposition: str | None
    outcome: dict[str, Any]


class PublicSessions:
    def insert_session(self, conn: Connection, record: SessionRecord) -> None:
        conn.execute(
            public_sessions.insert().values(
                {name: getattr(record, name) for name in SessionRecord.__slots__}  # type: ignore[attr-defined]
            )
        )

    def get_session(
        self, conn: Connection, session_id: str, *, lock: bool = False
    ) -> SessionRecord | None:
        query = sa.select(public_sessions).where(public_sessions.c.id == session_id)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        return _session(row) if row else None

    def find_by_checkout(
        self, conn: Connection, checkout_session_id: str, *, lock: bool = False
    ) -> SessionRecord | None:
        query = sa.select(public_sessions).where(
            public_sessions.c.checkout_session_id == checkout_session_id
        )
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        return _session(row) if row else None

    def update_session(self, conn: Connection, session_id: str, values: dict[str, Any]) -> None:
        conn.execute(
            public_sessions.update().where(public_sessions.c.id == session_id).values(**values)
        )

    def log_session_event(
        self,
        conn: Connection,
        record: SessionRecord,
        kind: str,
        at: datetime,
        data: dict[str, Any] | None = None,
    ) -> None:
        conn.execute(
            public_session_events.insert().values(
                organization_id=record.organization_id,
                session_id=record.id,
                kind=kind,
                at=at,
                data=data or {},
            )
        )

    def session_events(self, conn: Connection, session_id: str) -> list[SessionEventRecord]:
        rows = conn.execute(
            sa.select(public_session_events)
            .where(public_session_events.c.session_id == session_id)
            .order_by(public_session_events.c.id)
        ).mappings()
        return [SessionEventRecord(r["id"], r["kind"], r["at"], dict(r["data"])) for r in rows]

    def run_of(self, conn: Connection, run_id: str) -> RunRecord | None:
        row = (
            conn.execute(
                sa.select(
                    executions.c.id,
                    executions.c.status,
                    executions.c.started_at,
                    executions.c.completed_at,
                    executions.c.updated_at,
                    executions.c.disposition,
                    executions.c.engine_state,
                ).where(executions.c.id == run_id)
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        state = dict(row["engine_state"] or {})
        outcome = {k: state.get(k) for k in ("outcome", "reason") if state.get(k) is not None}
        return RunRecord(
            id=row["id"],
            status=row["status"],
            started_at=row["started_at"],
            completed_at=row["completed_at"],
            updated_at=row["updated_at"],
            disposition=row["disposition"],
            outcome=outcome,
        )

    def run_events(self, conn: Connection, run_id: str, after: int = 0) -> list[EventRecord]:
        """The run's execution events after event id ``after``, in order."""
        rows = conn.execute(
            sa.select(execution_events)
            .where(execution_events.c.execution_id == run_id, execution_events.c.id > after)
            .order_by(execution_events.c.id)
        ).mappings()
        return [
            EventRecord(r["id"], r["execution_id"], r["kind"], r["at"], dict(r["data"]))
            for r in rows
        ]

    # -- client tokens ----------------------------------------------------------------------

    def insert_token(
        self,
        conn: Connection,
        *,
        token_hash: str,
        record: SessionRecord,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        conn.execute(
            client_tokens.insert().values(
                token_hash=token_hash,
                organization_id=record.organization_id,
                session_id=record.id,
                created_at=now,
                expires_at=expires_at,
            )
        )

    def find_token(self, conn: Connection, token_hash: str) -> tuple[TokenRecord, str] | None:
        """The token with this hash, and the hash as stored."""
        row = (
            conn.execute(sa.select(client_tokens).where(client_tokens.c.token_hash == token_hash))
            .mappings()
            .first()
        )
        if row is None:
            return None
        token = TokenRecord(row["session_id"], row["organization_id"], row["expires_at"])
        return token, str(row["token_hash"])

    # -- payment webhook secrets ------------------------------------------------------------

    def payment_secret(self, conn: Connection, organization_id: str) -> str | None:
        found = conn.execute(
            sa.select(payment_secrets.c.secret).where(
                payment_secrets.c.organization_id == organization_id
            )
        ).scalar_one_or_none()
        return str(found) if found is not None else None

    def set_payment_secret(
        self, conn: Connection, organization_id: str, secret: str, now: datetime
    ) -> None:
        conn.execute(
            payment_secrets.delete().where(payment_secrets.c.organization_id == organization_id)
        )
        conn.execute(
            payment_secrets.insert().values(
                organization_id=organization_id, secret=secret, created_at=now
            )
        )


def _session(row: Any) -> SessionRecord:
    values = {name: row[name] for name in SessionRecord.__slots__}  # type: ignore[attr-defined]
    values["client_safe_metadata"] = dict(values["client_safe_metadata"] or {})
    values["request_payload"] = dict(values["request_payload"] or {})
    return SessionRecord(**values)
