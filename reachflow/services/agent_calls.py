"""Agent results that arrive after the dispatch: an agent (or a provider adapter) reports the
outcome of a call it accepted. A report is applied once: a duplicate is acknowledged and
changes nothing; a report for an unknown call, one that contradicts the report already
taken, or one for a call whose step already ended without it (the report timeout), is
refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from reachflow.agents.port import AgentResult

# The one result parser lives with the agents (a webhook agent's answer is read the same way).
from reachflow.agents.results import parse_result as parse_result
from reachflow.domain.enums import StepStatus
from reachflow.domain.errors import Conflict, NotFound
from reachflow.runtime.clock import Clock
from reachflow.runtime.embedded.engine import Engine
from reachflow.store.agent_calls import AgentCallRecord
from reachflow.store.queue import NewEvent
from reachflow.store.store import Store


@dataclass(frozen=True, slots=True)
class Reported:
    call_id: str
    #: False when this report repeated one already taken (nothing changed).
    applied: bool


class AgentCallService:
    def __init__(self, store: Store, engine: Engine, clock: Clock) -> None:
        self.store = store
        self.engine = engine
        self.clock = clock

    def find(self, call_id: str) -> AgentCallRecord:
        with self.store.db.read() as conn:
            record = self.store.agent_calls.get(conn, call_id)
        if record is None:
            raise NotFound(f"agent call {call_id} not found", field="callId")
        return record

    def find_by_provider(self, provider: str, provider_call_id: str) -> AgentCallRecord:
        with self.store.db.read() as conn:
            record = self.store.agent_calls.find_by_provider(conn, provider, provider_call_id)
        if record is None:
            raise NotFound(f"no call {provider_call_id} from {provider}", field="callId")
        return record

    def remember_message(self, message_id: str, organization_id: str) -> None:
        """A signed message is taken once: the same ``webhook-id`` again is a replay."""
        with self.store.db.begin() as conn:
            fresh = self.store.agent_calls.remember_message(
                conn, message_id, organization_id, self.clock.now()
            )
        if not fresh:
            raise Conflict(f"webhook message {message_id} was already received", field="webhook-id")

    def report(
        self, call_id: str, result: AgentResult, *, organization_id: str | None = None
    ) -> Reported:
        """Feed ``result`` to the call's execution (``organization_id``: the caller's, when it
        authenticated with a key; a signed report was already checked against the agent)."""
        now = self.clock.now()
        with self.store.db.begin() as conn:
            call = self.store.agent_calls.get(conn, call_id, lock=True)
            if call is None or (
                organization_id is not None and call.organization_id != organization_id
            ):
                raise NotFound(f"agent call {call_id} not found", field="callId")
            body = result_json(result)
            if call.status == "reported":
                if call.result is not None and _same(call.result, body):
                    return Reported(call.id, applied=False)
                raise Conflict(
                    f"agent call {call_id} was already reported with another outcome",
                    field="disposition",
                )
            ended = self._step_ended(conn, call)
            if ended is not None:
                raise Conflict(
                    f"agent call {call_id} is finished: its step ended {ended} before this "
                    "report came",
                    field="callId",
                )
            self.store.agent_calls.mark_reported(conn, call.id, body, now)
            self.store.queue.put_events(
                conn,
                [
                    NewEvent(
                        organization_id=call.organization_id,
                        execution_id=call.execution_id,
                        kind="agent_reported",
                        payload={
                            "stepExecutionId": call.step_execution_id,
                            "disposition": result.disposition.value,
                            "call": result.call.to_json(),
                            "channel": call.channel,
                            "reply": result.reply,
                            "callbackAt": _iso(result.callback_at),
                        },
                        dedupe_key=f"report:{call.id}",
                        due_at=now,
                    )
                ],
                now,
            )
        self.engine.wakeup.set()
        return Reported(call.id, applied=True)

    def _step_ended(self, conn: Connection, call: AgentCallRecord) -> str | None:
        """How the call's step ended without this call's report (the report timeout, a cancel),
        or None while it still waits for it."""
        steps = self.store.executions.steps_of(conn, [call.execution_id])[call.execution_id]
        step = next((s for s in steps if s.id == call.step_execution_id), None)
        if step is None:
            return "(it is gone)"
        if step.status in (StepStatus.PENDING, StepStatus.RUNNING):
            return None
        how = f" with {step.disposition}" if step.disposition else ""
        return f"as {step.status}{how}"


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def result_json(result: AgentResult) -> dict[str, Any]:
    return {
        "disposition": result.disposition.value,
        "agentCall": result.call.to_json(),
        "reply": result.reply,
    }


def _same(stored: dict[str, Any], new: dict[str, Any]) -> bool:
    return stored.get("disposition") == new["disposition"] and stored.get("reply") == new["reply"]
