"""``POST /api/v1/agent-calls/{callId}/result``: an agent reports a call it accepted.

The report is authenticated either by the Standard Webhooks signature made with the agent's
``config.secret`` (its ``webhook-id`` is taken once: a replay is a 409), or by an API key of
the call's organization. A duplicate report is a 200 that changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from reachflow.agents.signing import BadSignature, verify
from reachflow.api.bodies import body_of
from reachflow.api.deps import ID_PATTERN, ApiKeyDep, CleanParameters, ServicesDep
from reachflow.api.openapi import errors
from reachflow.api.schemas.agent_calls import AgentCallReport
from reachflow.domain.errors import Unauthorized
from reachflow.services.agent_calls import parse_result

router = APIRouter(
    prefix="/api/v1/agent-calls", tags=["agent calls"], dependencies=[CleanParameters]
)
CallId = Annotated[str, Path(alias="callId", pattern=ID_PATTERN, description="Our call id")]


@router.post("/{callId}/result", responses=errors(404, 409, body=True))
async def report_result(
    request: Request,
    services: ServicesDep,
    key: ApiKeyDep,
    body: Annotated[dict[str, Any], Depends(body_of(AgentCallReport))],
    call_id: CallId,
) -> dict[str, Any]:
    calls = services.agent_calls
    if "webhook-signature" in request.headers:
        call = calls.find(call_id)
        agent = services.agents.get(call.organization_id, call.agent_id)
        try:
            message_id = verify(
                str(agent.config.get("secret") or ""), request.headers, await request.body()
            )
        except BadSignature as exc:
            raise Unauthorized(
                f"webhook signature refused: {exc}", field="webhook-signature"
            ) from exc
        calls.remember_message(message_id, call.organization_id)
        organization = None
    else:
        organization = services.accounts.authenticate(key)
    result = parse_result(body, call_id, services.clock.now())
    reported = calls.report(call_id, result, organization_id=organization)
    return {"call_id": reported.call_id, "applied": reported.applied, "success": True}
