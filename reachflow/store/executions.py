"""Executions, their step executions and event history; persisting a decision atomically."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reachflow.domain.codec import state_from_json, state_to_json
from reachflow.domain.decider import (
    Decision,
    ExecutionState,
    History,
    Phase,
    StepOpened,
    StepUpdated,
)
from reachflow.domain.enums import TERMINAL_STATUSES, ExecutionStatus
from reachflow.store.driver_writes import DriverWrite, insert_write
from reachflow.store.records import EventRecord, ExecutionRecord, ExecutionRef, StepRecord
from reachflow.store.tables import (
    execution_events,
    executions,
    inbox,
    outbox,
    step_executions,
)
from reachflow.store.types import UTCDateTime, after_key, earliest

ACTIVE_STATUSES = ("CREATED", "RUNNING", "PAUSED")
#: Due work is taken in priority order among this many of the most overdue executions.
PRIORITY_WINDOW = 2_000


@dataclass(frozen=True, slots=True)
class NewExecution:
    id: str
    organization_id: str
    workflow_id: str
    version_id: str
    customer_lead_id: str | None
    primary_phone: str
    zipcode: str | None
    state: str | None
    forwarding_phone_number: str | None
    variables: dict[str, Any]
    metadata: dict[str, Any]
    priority_date: datetime | None
    start_at: datetime | None
    engine: ExecutionState


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    organization_id: str
    workflow_id: str | None = None
    status: str | None = None
    customer_lead_id: str | None = None
    phone: str | None = None
    statuses: tuple[str, ...] | None = None
    node_id: str | None = None
    disposition: str | None = None
    #: Active executions whose next step is due before this instant.
    due_before: datetime | None = None


#: Told of every batch of new executions, in its transaction (the runtime records
#: ``execution.created`` events so, whichever service created them).
InsertedHook = Callable[[Connection, Sequence[NewExecution], datetime], None]


class Executions:
    def __init__(self) -> None:
        self.inserted_hooks: list[InsertedHook] = []

    def insert_executions(
        self, conn: Connection, rows: Sequence[NewExecution], now: datetime
    ) -> None:
        """One multi-row INSERT per call; callers batch."""
        if not rows:
            return
        self._insert(conn, rows, now)
        for hook in self.inserted_hooks:
            hook(conn, rows, now)

    def _insert(self, conn: Connection, rows: Sequence[NewExecution], now: datetime) -> None:
        _INSERT_EXECUTIONS.execute(
            conn,
            [
                {
                    "id": r.id,
                    "organization_id": r.organization_id,
                    "workflow_id": r.workflow_id,
                    "version_id": r.version_id,
                    "status": r.engine.status.value,
                    "customer_lead_id": r.customer_lead_id,
                    "primary_phone": r.primary_phone,
                    "zipcode": r.zipcode,
                    "state": r.state,
                    "forwarding_phone_number": r.forwarding_phone_number,
                    "variables": r.variables,
                    "metadata": r.metadata,
                    "priority_date": r.priority_date,
                    "priority_key": r.priority_date or now,
                    "start_at": r.start_at,
                    "due_at": r.engine.wake_at,
                    "node_id": r.engine.node_id,
                    "disposition": None,
                    "engine_state": state_to_json(r.engine),
                    "temporal_workflow_id": None,
                    "started_at": None,
                    "completed_at": None,
                    "created_at": now,
                    "updated_at": now,
                }
                for r in rows
            ],
        )

    def get_execution(
        self,
        conn: Connection,
        organization_id: str,
        execution_id: str,
        *,
        workflow_id: str | None = None,
        lock: bool = False,
    ) -> ExecutionRecord | None:
        query = sa.select(executions).where(
            executions.c.organization_id == organization_id, executions.c.id == execution_id
        )
        if workflow_id is not None:
            query = query.where(executions.c.workflow_id == workflow_id)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update(key_share=True)
        row = conn.execute(query).mappings().first()
        return _execution(row) if row else None

    def list_executions(
        self,
        conn: Connection,
        flt: ExecutionFilter,
        *,
        limit: int,
        after: tuple[datetime, str] | None = None,
        newest_first: bool = False,
    ) -> list[ExecutionRecord]:
        query = sa.select(executions).where(*_where(flt))
        created, row_id = executions.c.created_at, executions.c.id
        if newest_first:
            if after is not None:
                at, last_id = after
                query = query.where(
                    sa.or_(created < at, sa.and_(created == at, row_id < last_id))
                )
            query = query.order_by(created.desc(), row_id.desc()).limit(limit)
        else:
            if after is not None:
                query = query.where(after_key(created, row_id, after))
            query = query.order_by(created, row_id).limit(limit)
        return [_execution(r) for r in conn.execute(query).mappings()]

    def count_by_workflow(
        self, conn: Connection, organization_id: str, since: datetime | None = None
    ) -> dict[str, dict[str, int]]:
        """Executions per workflow and status (created at or after ``since``, if given)."""
        query = (
            sa.select(executions.c.workflow_id, executions.c.status, sa.func.count())
            .where(executions.c.organization_id == organization_id)
            .group_by(executions.c.workflow_id, executions.c.status)
        )
        if since is not None:
            query = query.where(executions.c.created_at >= since)
        out: dict[str, dict[str, int]] = {}
        for workflow_id, status, n in conn.execute(query):
            out.setdefault(str(workflow_id), {})[str(status)] = int(n)
        return out

    def count_by_node(
        self, conn: Connection, organization_id: str, workflow_id: str
    ) -> dict[str, int]:
        """Active executions of a workflow per node they stand at now."""
        query = (
            sa.select(executions.c.node_id, sa.func.count())
            .where(
                executions.c.organization_id == organization_id,
                executions.c.workflow_id == workflow_id,
                executions.c.status.in_(ACTIVE_STATUSES),
            )
            .group_by(executions.c.node_id)
        )
        return {str(node): int(n) for node, n in conn.execute(query) if node is not None}

    def page(
        self, conn: Connection, flt: ExecutionFilter, *, limit: int, offset: int
    ) -> tuple[list[ExecutionRecord], int]:
        """One page (oldest first) and the total count."""
        total = conn.execute(
            sa.select(sa.func.count()).select_from(executions).where(*_where(flt))
        ).scalar_one()
        rows = conn.execute(
            sa.select(executions)
            .where(*_where(flt))
            .order_by(executions.c.created_at, executions.c.id)
            .limit(limit)
            .offset(offset)
        ).mappings()
        return [_execution(r) for r in rows], int(total)

    def variable_keys(self, conn: Connection, organization_id: str, workflow_id: str) -> list[str]:
        """The union of the variable names of a workflow's executions (lead upload columns)."""
        rows = conn.execute(
            sa.select(executions.c.variables).where(
                executions.c.organization_id == organization_id,
                executions.c.workflow_id == workflow_id,
            )
        )
        keys: set[str] = set()
        for row in rows:
            keys.update(row.variables or {})
        return sorted(keys)

    def repin(
        self, conn: Connection, record: ExecutionRecord, version_id: str, state: ExecutionState
    ) -> None:
        """Move a not-yet-started execution to a version and set its start timer."""
        conn.execute(
            executions.update()
            .where(executions.c.id == record.id)
            .values(
                version_id=version_id,
                due_at=state.wake_at,
                engine_state=state_to_json(state),
            )
        )

    def lock_active(self, conn: Connection, flt: ExecutionFilter) -> list[ExecutionRecord]:
        """The active executions the filter matches, read under their row locks (in id order,
        as every batch locks them, so two lockers never deadlock)."""
        query = (
            sa.select(executions)
            .where(*_where(flt), executions.c.status.in_(ACTIVE_STATUSES))
            .order_by(executions.c.id)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(key_share=True)
        records = [_execution(r) for r in conn.execute(query).mappings()]
        return [r for r in records if not r.engine.is_finished]

    def refs_of(self, conn: Connection, execution_ids: Sequence[str]) -> dict[str, ExecutionRef]:
        """The dispatch stage's view of executions by id, in one statement."""
        if not execution_ids:
            return {}
        rows = conn.execute(_REFS, {"ids": sorted(set(execution_ids))})
        return {
            r.id: ExecutionRef(
                r.id, r.organization_id, r.version_id, r.status, r.primary_phone, r.zipcode, r.state
            )
            for r in rows
        }

    def get_many(
        self, conn: Connection, execution_ids: Sequence[str], *, lock: bool = False
    ) -> dict[str, ExecutionRecord]:
        """Executions by id in one statement; ``lock`` takes their row locks in id order."""
        if not execution_ids:
            return {}
        query = (
            sa.select(executions)
            .where(executions.c.id.in_(sa.bindparam("ids", expanding=True)))
            .order_by(executions.c.id)
        )
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update(key_share=True)
        rows = conn.execute(query, {"ids": sorted(set(execution_ids))}).mappings()
        return {r["id"]: _execution(r) for r in rows}

    def claim_due(
        self, conn: Connection, now: datetime, limit: int, *, skip_locked: bool
    ) -> list[ExecutionRecord]:
        """Due executions in ``priorityDate`` (else creation) order, then due time.

        The order holds among the ``PRIORITY_WINDOW`` most overdue executions, read through the
        partial index on ``due_at``: a claim then costs the same whether 10 or 1,000,000
        executions wait on timers (an index led by the priority would make every claim walk
        past the waiting ones)."""
        overdue = (
            sa.select(executions.c.id)
            .where(executions.c.due_at.is_not(None), executions.c.due_at <= now)
            .order_by(executions.c.due_at)
            .limit(PRIORITY_WINDOW)
        )
        query = (
            sa.select(executions)
            .where(executions.c.id.in_(overdue.scalar_subquery()))
            .order_by(executions.c.priority_key, executions.c.due_at, executions.c.id)
            .limit(limit)
        )
        if skip_locked:
            query = query.with_for_update(skip_locked=True, key_share=True)
        return [_execution(r) for r in conn.execute(query).mappings()]

    def next_due_at(self, conn: Connection) -> datetime | None:
        return earliest(conn, executions.c.due_at, executions.c.due_at.is_not(None))

    def save_decision(
        self,
        conn: Connection,
        record: ExecutionRecord,
        decision: Decision,
        now: datetime,
    ) -> None:
        """State, step executions, history and outbox commands: all in the caller's transaction."""
        self.save_decisions(conn, [(record, decision)], now)

    def save_decisions(
        self,
        conn: Connection,
        decided: Sequence[tuple[ExecutionRecord, Decision]],
        now: datetime,
    ) -> None:
        """A batch of decisions in a fixed number of multi-row statements (at most five),
        whatever the batch size: the last state of each execution, the steps opened (with the
        updates made to them in the same batch folded in), the other step updates, the history
        and the outbox commands."""
        if not decided:
            return
        states: dict[str, dict[str, Any]] = {}
        opened: dict[str, dict[str, Any]] = {}
        updates: dict[str, dict[str, Any]] = {}
        history: list[dict[str, Any]] = []
        commands: list[dict[str, Any]] = []
        for record, decision in decided:
            states[record.id] = _state_row(record.id, decision.state, now)
            for change in decision.steps:
                if isinstance(change, StepOpened):
                    opened[change.id] = _opened(record, change, now)
                elif change.id in opened:
                    opened[change.id].update(_updated(change))
                elif change.id in updates:
                    updates[change.id] = _fold(updates[change.id], _update_row(change))
                else:
                    updates[change.id] = _update_row(change)
            history.extend(
                {
                    "organization_id": record.organization_id,
                    "execution_id": record.id,
                    "kind": h.kind,
                    "at": h.at,
                    "data": dict(h.data),
                }
                for h in decision.history
            )
            commands.extend(_outbox_rows(record, decision, now))
        _WRITE_STATE.execute(conn, list(states.values()))
        _INSERT_STEPS.execute(conn, list(opened.values()))
        _WRITE_STEPS.execute(conn, list(updates.values()))
        _INSERT_EVENTS.execute(conn, history)
        _INSERT_COMMANDS.execute(conn, commands)

    def log_events(
        self, conn: Connection, rows: Sequence[tuple[str, str, str, dict[str, Any]]], now: datetime
    ) -> None:
        """``(organization id, execution id, kind, data)`` history rows, in one statement."""
        _INSERT_EVENTS.execute(
            conn,
            [
                {"organization_id": o, "execution_id": e, "kind": k, "at": now, "data": d}
                for o, e, k, d in rows
            ],
        )

    def log_waiting_for_agent(
        self, conn: Connection, agent_id: str, data: dict[str, Any], now: datetime
    ) -> None:
        """A ``dispatch_waiting`` event for every execution whose command waits for
        ``agent_id`` (its breaker opened), in one statement."""
        waiting = sa.select(
            outbox.c.organization_id,
            outbox.c.execution_id,
            sa.literal("dispatch_waiting"),
            sa.literal(now, UTCDateTime()),
            sa.literal(data, sa.JSON()),
        ).where(outbox.c.agent_id == agent_id, outbox.c.status == "pending")
        conn.execute(
            execution_events.insert().from_select(
                ["organization_id", "execution_id", "kind", "at", "data"], waiting
            )
        )

    def mark_broken(
        self, conn: Connection, record: ExecutionRecord, reason: str, now: datetime
    ) -> None:
        """Last resort when deciding raised: fail the execution so it never loops."""
        self.save_decisions(conn, [(record, broken(record, reason, now))], now)

    def steps_of(
        self, conn: Connection, execution_ids: Sequence[str]
    ) -> dict[str, list[StepRecord]]:
        out: dict[str, list[StepRecord]] = {i: [] for i in execution_ids}
        if not execution_ids:
            return out
        rows = conn.execute(
            sa.select(step_executions)
            .where(step_executions.c.execution_id.in_(list(execution_ids)))
            .order_by(
                step_executions.c.created_at, step_executions.c.step_order, step_executions.c.visit
            )
        ).mappings()
        for r in rows:
            out[r["execution_id"]].append(_step(r))
        return out

    def events_of(self, conn: Connection, execution_id: str) -> list[EventRecord]:
        rows = conn.execute(
            sa.select(execution_events)
            .where(execution_events.c.execution_id == execution_id)
            .order_by(execution_events.c.id)
        ).mappings()
        return [
            EventRecord(
                id=r["id"],
                execution_id=r["execution_id"],
                kind=r["kind"],
                at=r["at"],
                data=dict(r["data"]),
            )
            for r in rows
        ]

    def delete_execution(self, conn: Connection, execution_id: str) -> None:
        for table in (execution_events, step_executions, outbox, inbox):
            conn.execute(table.delete().where(table.c.execution_id == execution_id))
        conn.execute(executions.delete().where(executions.c.id == execution_id))

    def count_by_status(
        self, conn: Connection, organization_id: str | None = None
    ) -> dict[str, int]:
        query = sa.select(executions.c.status, sa.func.count()).group_by(executions.c.status)
        if organization_id is not None:
            query = query.where(executions.c.organization_id == organization_id)
        return {str(status): int(n) for status, n in conn.execute(query)}


def broken(record: ExecutionRecord, reason: str, now: datetime) -> Decision:
    """The decision that fails an execution whose decide raised, so it never loops."""
    state = replace(
        record.engine,
        status=ExecutionStatus.FAILED,
        phase=Phase.DONE,
        wake_at=None,
        completed_at=now,
        reason=reason,
    )
    return Decision(state=state, history=(History("failed", now, {"reason": reason}),))


def _state_row(execution_id: str, state: ExecutionState, now: datetime) -> dict[str, Any]:
    return {
        "b_id": execution_id,
        "b_status": state.status.value,
        "b_due_at": state.wake_at,
        "b_node_id": state.node_id,
        "b_disposition": state.disposition.value if state.disposition else None,
        "b_engine_state": state_to_json(state),
        "b_variables": dict(state.variables),
        "b_metadata": dict(state.metadata),
        "b_started_at": state.started_at,
        "b_completed_at": state.completed_at,
        "b_updated_at": now,
    }


def _update_row(change: StepUpdated) -> dict[str, Any]:
    """One row for ``_UPDATE_STEP``: a None leaves the column as it is."""
    clears = change.started_at is not None or change.completed_at is not None
    return {
        "b_id": change.id,
        "b_status": change.status.value,
        "b_started_at": change.started_at,
        "b_completed_at": change.completed_at,
        "b_disposition": change.disposition.value if change.disposition else None,
        "b_agent_call": dict(change.agent_call) if change.agent_call is not None else {},
        "b_has_call": change.agent_call is not None,
        "b_next_allowed_at": change.next_allowed_at,
        "b_clear_next": clears,
        "b_reply": change.reply,
        "b_replied_at": change.replied_at,
    }


def _fold(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """Two updates of one step as one, with the effect of applying both in order (a step is
    written once per batch)."""
    folded = dict(later)
    for name in ("b_started_at", "b_completed_at", "b_disposition", "b_reply", "b_replied_at"):
        if later[name] is None:
            folded[name] = earlier[name]
    if not later["b_has_call"]:
        folded["b_has_call"], folded["b_agent_call"] = (
            earlier["b_has_call"],
            earlier["b_agent_call"],
        )
    if not later["b_clear_next"] and later["b_next_allowed_at"] is None:
        folded["b_clear_next"] = earlier["b_clear_next"]
        folded["b_next_allowed_at"] = earlier["b_next_allowed_at"]
    return folded


def _outbox_rows(
    record: ExecutionRecord, decision: Decision, now: datetime
) -> list[dict[str, Any]]:
    rows = [
        {
            "organization_id": record.organization_id,
            "execution_id": record.id,
            "step_execution_id": d.step_execution_id,
            "idempotency_key": d.idempotency_key,
            "kind": "dispatch",
            "agent_id": d.agent_id,
            "status": "pending",
            "available_at": now,
            "attempts": 0,
            "fence": 0,
            "created_at": now,
            "priority_key": record.priority_date or record.created_at,
            "payload": {
                "agentId": d.agent_id,
                "channel": d.channel.value,
                "phone": d.phone,
                "message": d.message,
                "leaveVoicemail": d.leave_voicemail,
                "variables": dict(d.variables),
                "nodeId": d.node_id,
                "sequence": d.sequence,
                "fromPhoneNumber": d.from_phone_number,
                "forwardingPhoneNumber": record.forwarding_phone_number,
            },
        }
        for d in decision.dispatches
    ]
    rows.extend(
        {
            "organization_id": record.organization_id,
            "execution_id": record.id,
            "step_execution_id": e.step_execution_id,
            "idempotency_key": f"{record.id}:{e.step_execution_id}:effect",
            "kind": "effect",
            "agent_id": None,
            "status": "pending",
            "available_at": now,
            "attempts": 0,
            "fence": 0,
            "created_at": now,
            "priority_key": record.priority_date or record.created_at,
            "payload": {"action": e.action, "params": dict(e.params)},
        }
        for e in decision.effects
    )
    return rows


_REFS = sa.select(
    executions.c.id,
    executions.c.organization_id,
    executions.c.version_id,
    executions.c.status,
    executions.c.primary_phone,
    executions.c.zipcode,
    executions.c.state,
).where(executions.c.id.in_(sa.bindparam("ids", expanding=True)))


#: Written once, run as executemany on the driver (``driver_writes``): the engine's hot writes.
_WRITE_STATE = DriverWrite(
    "UPDATE executions SET status = :b_status, due_at = :b_due_at, node_id = :b_node_id,"
    " disposition = :b_disposition, engine_state = :b_engine_state, variables = :b_variables,"
    " metadata = :b_metadata, started_at = :b_started_at, completed_at = :b_completed_at,"
    " updated_at = :b_updated_at WHERE id = :b_id",
    postgresql_rows="UPDATE executions AS t SET status = v.status,"
    " due_at = CAST(v.due_at AS timestamptz), node_id = v.node_id,"
    " disposition = v.disposition, engine_state = CAST(v.engine_state AS json),"
    " variables = CAST(v.variables AS json), metadata = CAST(v.metadata AS json),"
    " started_at = CAST(v.started_at AS timestamptz),"
    " completed_at = CAST(v.completed_at AS timestamptz),"
    " updated_at = CAST(v.updated_at AS timestamptz)"
    " FROM (VALUES {rows}) AS v(status, due_at, node_id, disposition, engine_state, variables,"
    " metadata, started_at, completed_at, updated_at, id) WHERE t.id = v.id",
)
_STEP_UPDATE = (
    "UPDATE step_executions SET status = :b_status,"
    " started_at = COALESCE(:b_started_at, started_at),"
    " completed_at = COALESCE(:b_completed_at, completed_at),"
    " disposition = COALESCE(:b_disposition, disposition),"
    " agent_call = CASE WHEN :b_has_call THEN {call} ELSE agent_call END,"
    " next_allowed_at = CASE WHEN :b_clear_next THEN NULL"
    " ELSE COALESCE(:b_next_allowed_at, next_allowed_at) END,"
    " reply = COALESCE(:b_reply, reply), replied_at = COALESCE(:b_replied_at, replied_at)"
    " WHERE id = :b_id"
)
_WRITE_STEPS = DriverWrite(
    _STEP_UPDATE.format(call=":b_agent_call"),
    postgresql=_STEP_UPDATE.format(call="CAST(:b_agent_call AS json)")
    .replace("COALESCE(:b_started_at,", "COALESCE(CAST(:b_started_at AS timestamptz),")
    .replace("COALESCE(:b_completed_at,", "COALESCE(CAST(:b_completed_at AS timestamptz),")
    .replace("COALESCE(:b_disposition,", "COALESCE(CAST(:b_disposition AS varchar),")
    .replace("COALESCE(:b_next_allowed_at,", "COALESCE(CAST(:b_next_allowed_at AS timestamptz),")
    .replace("COALESCE(:b_reply,", "COALESCE(CAST(:b_reply AS text),")
    .replace("COALESCE(:b_replied_at,", "COALESCE(CAST(:b_replied_at AS timestamptz),"),
    postgresql_rows="UPDATE step_executions AS t SET status = v.status,"
    " started_at = COALESCE(CAST(v.started_at AS timestamptz), t.started_at),"
    " completed_at = COALESCE(CAST(v.completed_at AS timestamptz), t.completed_at),"
    " disposition = COALESCE(CAST(v.disposition AS varchar), t.disposition),"
    " agent_call = CASE WHEN CAST(v.has_call AS boolean) THEN CAST(v.agent_call AS json)"
    " ELSE t.agent_call END,"
    " next_allowed_at = CASE WHEN CAST(v.clear_next AS boolean) THEN NULL"
    " ELSE COALESCE(CAST(v.next_allowed_at AS timestamptz), t.next_allowed_at) END,"
    " reply = COALESCE(CAST(v.reply AS text), t.reply),"
    " replied_at = COALESCE(CAST(v.replied_at AS timestamptz), t.replied_at)"
    " FROM (VALUES {rows}) AS v(status, started_at, completed_at, disposition, has_call,"
    " agent_call, clear_next, next_allowed_at, reply, replied_at, id) WHERE t.id = v.id",
)
_INSERT_EXECUTIONS = insert_write("executions", [c.name for c in executions.c])
_INSERT_STEPS = insert_write("step_executions", [c.name for c in step_executions.c])
_INSERT_EVENTS = insert_write(
    "execution_events", ["organization_id", "execution_id", "kind", "at", "data"]
)
_COMMAND_COLUMNS = [c.name for c in outbox.c if c.name not in ("id", "last_error", "done_at")]
_INSERT_COMMANDS = insert_write("outbox", _COMMAND_COLUMNS)


def is_terminal(status: str) -> bool:
    return status in {s.value for s in TERMINAL_STATUSES}


def _where(flt: ExecutionFilter) -> list[Any]:
    where: list[Any] = [executions.c.organization_id == flt.organization_id]
    if flt.workflow_id is not None:
        where.append(executions.c.workflow_id == flt.workflow_id)
    if flt.status is not None:
        where.append(executions.c.status == flt.status)
    if flt.customer_lead_id is not None:
        where.append(executions.c.customer_lead_id == flt.customer_lead_id)
    if flt.phone is not None:
        where.append(executions.c.primary_phone == flt.phone)
    if flt.statuses is not None:
        where.append(executions.c.status.in_(flt.statuses))
    if flt.node_id is not None:
        where.append(executions.c.node_id == flt.node_id)
    if flt.disposition is not None:
        where.append(executions.c.disposition == flt.disposition)
    if flt.due_before is not None:
        where.append(executions.c.due_at < flt.due_before)
        where.append(executions.c.status.in_(ACTIVE_STATUSES))
    return where


def _opened(record: ExecutionRecord, change: StepOpened, now: datetime) -> dict[str, Any]:
    return {
        "id": change.id,
        "organization_id": record.organization_id,
        "execution_id": record.id,
        "node_id": change.node_id,
        "visit": change.visit,
        "kind": change.kind.value,
        "type": change.channel.value if change.channel else None,
        "step_order": change.order,
        "delay_in_secs": change.delay_secs,
        "needs_tcpa": change.needs_tcpa,
        "finish_on": [d.value for d in change.finish_on],
        "leave_voicemail": change.leave_voicemail,
        "agent_id": change.agent_id,
        "status": "PENDING",
        "scheduled_at": change.scheduled_at,
        "next_allowed_at": None,
        "started_at": None,
        "completed_at": None,
        "disposition": None,
        "agent_call": None,
        "created_at": now,
        "reply": None,
        "replied_at": None,
    }


def _updated(change: StepUpdated) -> dict[str, Any]:
    values: dict[str, Any] = {"status": change.status.value}
    if change.started_at is not None:
        values["started_at"] = change.started_at
    if change.completed_at is not None:
        values["completed_at"] = change.completed_at
        values["next_allowed_at"] = None
    if change.disposition is not None:
        values["disposition"] = change.disposition.value
    if change.agent_call is not None:
        values["agent_call"] = dict(change.agent_call)
    if change.next_allowed_at is not None:
        values["next_allowed_at"] = change.next_allowed_at
    if change.started_at is not None:
        values["next_allowed_at"] = None
    if change.reply is not None:
        values["reply"] = change.reply
        values["replied_at"] = change.replied_at
    return values


def _execution(row: Any) -> ExecutionRecord:
    return ExecutionRecord(
        id=row["id"],
        organization_id=row["organization_id"],
        workflow_id=row["workflow_id"],
        version_id=row["version_id"],
        status=row["status"],
        customer_lead_id=row["customer_lead_id"],
        primary_phone=row["primary_phone"],
        zipcode=row["zipcode"],
        state=row["state"],
        forwarding_phone_number=row["forwarding_phone_number"],
        variables=dict(row["variables"] or {}),
        metadata=dict(row["metadata"] or {}),
        priority_date=row["priority_date"],
        start_at=row["start_at"],
        due_at=row["due_at"],
        node_id=row["node_id"],
        disposition=row["disposition"],
        engine=state_from_json(row["engine_state"]),
        temporal_workflow_id=row["temporal_workflow_id"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _step(r: Any) -> StepRecord:
    return StepRecord(
        id=r["id"],
        execution_id=r["execution_id"],
        node_id=r["node_id"],
        visit=r["visit"],
        kind=r["kind"],
        type=r["type"],
        order=r["step_order"],
        delay_in_secs=r["delay_in_secs"],
        needs_tcpa=r["needs_tcpa"],
        finish_on=list(r["finish_on"] or []),
        leave_voicemail=r["leave_voicemail"],
        agent_id=r["agent_id"],
        status=r["status"],
        scheduled_at=r["scheduled_at"],
        next_allowed_at=r["next_allowed_at"],
        started_at=r["started_at"],
        completed_at=r["completed_at"],
        disposition=r["disposition"],
        agent_call=r["agent_call"],
        created_at=r["created_at"],
        reply=r["reply"],
        replied_at=r["replied_at"],
    )
