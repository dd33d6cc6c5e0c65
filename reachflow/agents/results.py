"""Reading an agent's result: the one parser of a result body, whether it arrives in the
agent's answer to a dispatch (``agents.webhook``) or later through the result callback
(``POST /api/v1/agent-calls/{callId}/result``, ``services.agent_calls``).

A body is ``disposition``, seed 000's ``agentCall`` fields and, for texts, ``reply``; every
problem is reported at once (``ValidationFailed`` naming each field)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from reachflow.agents.port import AgentCall, AgentResult
from reachflow.domain.enums import Disposition
from reachflow.domain.errors import ProblemCollector
from reachflow.domain.instants import read_instant

RESULT_FIELDS = frozenset({"disposition", "agentCall", "reply", "callbackAt", "extra"})
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
    started = read_instant(raw_call.get("callStartedAt"), "agentCall.callStartedAt", problems)
    ended = read_instant(raw_call.get("callEndedAt"), "agentCall.callEndedAt", problems)
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
    callback_at = read_instant(body.get("callbackAt"), "callbackAt", problems)
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
        callback_at=callback_at,
    )


def _disposition(raw: object, field: str, problems: ProblemCollector) -> Disposition | None:
    try:
        return Disposition(raw) if isinstance(raw, str) else _bad(field, problems)
    except ValueError:
        return _bad(field, problems)


def _bad(field: str, problems: ProblemCollector) -> None:
    problems.add(field, f"must be one of {', '.join(d.value for d in Disposition)}")
