"""Agent results that arrive after the dispatch: an agent (or a provider adapter) reports the
outcome of a call it accepted. A report is applied once: a duplicate is acknowledged and
changes nothing; a report for an unknown call, or one that contradicts the report already
taken, is refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reachflow.agents.port import AgentCall, AgentResult
from reachflow.domain.enums import Disposition
from reachflow.domain.errors import Conflict, NotFound, ProblemCollector
from reachflow.domain.instants import BadInstant, parse_iso_instant
from reachflow.runtime.clock import Clock
from reachflow.runtime.embedded.engine import Engine
from reachflow.store.agent_calls import AgentCallRecord
from reachflow.store.queue import NewEvent
from reachflow.store.store import Store

RESULT_FIELDS = frozenset({"disposition", "agentCall", "reply", "extra"})
CALL_FIELDS = frozenset(
    {
        "id",
        "status",
        "callStartedAt",
        "callEndedAt",
        "callDuration",
        "callEndedReason",
        "recordingUrl",
        "summary",
    }
)


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
                        },
                        dedupe_key=f"report:{call.id}",
                        due_at=now,
                    )
                ],
                now,
            )
        self.engine.wakeup.set()
        return Reported(call.id, applied=True)


def result_json(result: AgentResult) -> dict[str, Any]:
    return {
        "disposition": result.disposition.value,
        "agentCall": result.call.to_json(),
        "reply": result.reply,
    }


def _same(stored: dict[str, Any], new: dict[str, Any]) -> bool:
    return stored.get("disposition") == new["disposition"] and stored.get("reply") == new["reply"]


def parse_result(body: dict[str, Any], call_id: str, now: datetime) -> AgentResult:
    """A report body: ``disposition``, seed 000's ``agentCall`` fields, for texts ``reply``."""
    problems = ProblemCollector()
    for key in body:
        if key not in RESULT_FIELDS:
            problems.add(key, f"unknown field; expected one of {sorted(RESULT_FIELDS)}")
    disposition = _disposition(body.get("disposition"), "disposition", problems)
    raw_call = body.get("agentCall") or {}
    if not isinstance(raw_call, dict):
        problems.add("agentCall", "must be an object")
        raw_call = {}
    for key in raw_call:
        if key not in CALL_FIELDS:
            problems.add(f"agentCall.{key}", "unknown field")
    started = _instant(raw_call.get("callStartedAt"), "agentCall.callStartedAt", problems)
    ended = _instant(raw_call.get("callEndedAt"), "agentCall.callEndedAt", problems)
    duration = raw_call.get("callDuration")
    if duration is None:
        duration = int((ended - started).total_seconds()) if started and ended else 0
    elif isinstance(duration, bool) or not isinstance(duration, int) or not 0 <= duration <= 86_400:
        problems.add("agentCall.callDuration", "must be whole seconds from 0 to 86400")
        duration = 0
    texts: dict[str, str | None] = {}
    for key, limit in (("id", 200), ("status", 64), ("recordingUrl", 2048), ("summary", 20_000)):
        value = raw_call.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            problems.add(f"agentCall.{key}", f"must be a string of at most {limit} characters")
            value = None
        texts[key] = value
    reply = body.get("reply")
    if reply is not None and (not isinstance(reply, str) or len(reply) > 2000):
        problems.add("reply", "must be a string of at most 2000 characters")
    ended_reason = (
        _disposition(raw_call["callEndedReason"], "agentCall.callEndedReason", problems)
        if raw_call.get("callEndedReason") is not None
        else disposition
    )
    problems.raise_if_any()
    assert disposition is not None
    assert ended_reason is not None
    start = started or now
    return AgentResult(
        disposition=disposition,
        call=AgentCall(
            id=texts["id"] or call_id,
            status=texts["status"] or "completed",
            call_started_at=start,
            call_ended_at=ended or start + timedelta(seconds=duration),
            call_duration=duration,
            call_ended_reason=ended_reason,
            recording_url=texts["recordingUrl"],
            summary=texts["summary"],
        ),
        reported_at=now,
        reply=reply,
    )


def _disposition(raw: object, field: str, problems: ProblemCollector) -> Disposition | None:
    try:
        return Disposition(raw) if isinstance(raw, str) else _bad(field, problems)
    except ValueError:
        return _bad(field, problems)


def _bad(field: str, problems: ProblemCollector) -> None:
    problems.add(field, f"must be one of {', '.join(d.value for d in Disposition)}")


def _instant(raw: object, field: str, problems: ProblemCollector) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        problems.add(field, "must be an ISO 8601 date-time string")
        return None
    try:
        return parse_iso_instant(raw)
    except BadInstant as exc:
        problems.add(field, str(exc))
        return None

