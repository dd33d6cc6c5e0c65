"""``POST /api/v1/providers/retell/webhook/{agentId}``: Retell reports a call it placed for a
``retell`` agent (``agents.retell``; the customer's guide is ``docs/agents-retell.md``).

1. The agent in the path (any organization's: Retell sends no key of ours) must exist and be a
   ``retell`` agent, else 404. The ``x-retell-signature`` must verify with its
   ``config.apiKey`` over the raw body, within 5 minutes of now, else 401.
2. The call is ours by ``call.metadata.callId`` (sent with every call we place), else by
   Retell's ``call.call_id``; it must belong to the agent's organization and to a ``retell``
   agent, else 404 (a call placed outside reachflow, such as an inbound call).
3. ``agents.retell_mapping`` decides whether this event finishes the step (``call_ended`` or
   ``call_analyzed``, by the call's agent's ``waitForAnalysis``) and with which disposition;
   the report goes through ``AgentCallService.report``, once. An event that finishes nothing,
   a duplicate, and an event about a call already reported are a 200 with ``applied: false``.

The route is left out of the OpenAPI document: its body is Retell's, and it is authenticated
by Retell's signature rather than by one of our keys.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from reachflow.agents.retell import (
    PROVIDER,
    SIGNATURE_HEADER,
    BadSignature,
    verify_signature,
    wait_for_analysis,
)
from reachflow.agents.retell_mapping import read_event
from reachflow.api.deps import ID_PATTERN, CleanParameters, ServicesDep
from reachflow.api.json_body import parse_json_object
from reachflow.bootstrap import Services
from reachflow.domain.errors import (
    Conflict,
    FieldError,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from reachflow.store.agent_calls import AgentCallRecord
from reachflow.store.records import AgentRecord

router = APIRouter(
    prefix="/api/v1/providers/retell",
    tags=["providers"],
    dependencies=[CleanParameters],
    include_in_schema=False,
)
AgentId = Annotated[
    str, Path(alias="agentId", pattern=ID_PATTERN, description="Our retell agent's id")
]


async def raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


@router.post("/webhook/{agentId}")
def retell_webhook(
    request: Request, services: ServicesDep, agent_id: AgentId, raw: RawBody
) -> dict[str, Any]:
    agent = services.agents.find(agent_id)
    if agent.provider != PROVIDER:
        raise NotFound(f"agent {agent_id} is not a retell agent", field="agentId")
    try:
        verify_signature(
            str(agent.config.get("apiKey") or ""),
            request.headers.get(SIGNATURE_HEADER),
            raw,
            now_ms=int(time.time() * 1000),  # Retell signs with the real time
        )
    except BadSignature as exc:
        raise Unauthorized(f"Retell signature refused: {exc}", field=SIGNATURE_HEADER) from exc
    body = parse_json_object(raw)
    event, call = body.get("event"), body.get("call")
    if not isinstance(call, dict):
        raise ValidationFailed(FieldError("call", "must be Retell's call object"))
    record = _our_call(services, agent, call)
    call_agent = _agent_of(services, record, agent)
    result = read_event(
        event,
        call,
        wait_for_analysis=wait_for_analysis(call_agent.config),
        now=services.clock.now(),
        our_call_id=record.id,
    )
    answer: dict[str, Any] = {"success": True, "call_id": record.id, "event": str(event)[:40]}
    if result is None:
        return {**answer, "applied": False, "detail": "this event does not finish the step"}
    try:
        reported = services.agent_calls.report(record.id, result)
    except Conflict:
        # Reported before with another outcome (an earlier event, or a second call placed by
        # a retry): the first report stands.
        return {**answer, "applied": False, "detail": "the call was already reported"}
    return {**answer, "applied": reported.applied, "disposition": result.disposition.value}


def _our_call(services: Services, agent: AgentRecord, call: dict[str, Any]) -> AgentCallRecord:
    calls = services.agent_calls
    record: AgentCallRecord | None = None
    metadata = call.get("metadata")
    ours = metadata.get("callId") if isinstance(metadata, dict) else None
    if isinstance(ours, str) and ours:
        try:
            record = calls.find(ours)
        except NotFound:
            record = None
    theirs = call.get("call_id")
    if record is None and isinstance(theirs, str) and theirs:
        try:
            record = calls.find_by_provider(PROVIDER, theirs)
        except NotFound:
            record = None
    if (
        record is None
        or record.organization_id != agent.organization_id
        or record.provider != PROVIDER
    ):
        raise NotFound("no call of this organization's retell agents matches", field="callId")
    return record


def _agent_of(services: Services, record: AgentCallRecord, agent: AgentRecord) -> AgentRecord:
    """The agent that placed the call (its ``waitForAnalysis`` applies); the path's agent when
    that is the same one or no longer exists."""
    if record.agent_id == agent.id:
        return agent
    try:
        return services.agents.get(record.organization_id, record.agent_id)
    except NotFound:
        return agent
