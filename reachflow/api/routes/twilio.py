"""Twilio's webhooks for ``provider: "twilio"`` agents (``agents/twilio.py``,
``docs/agents-twilio.md``).

* ``POST /api/v1/providers/twilio/status?callId=...``: a message's status callback. A final
  status is reported to the engine as the call's result (once; a repeat changes nothing); a
  status on the way (``queued``, ``sent``, ...) is acknowledged and ignored.
* ``POST /api/v1/providers/twilio/inbound/{agentId}``: a contact's text to the agent's number.
  It is taken as ``POST /api/v1/inbound-texts`` takes a reply (an opt-out word suppresses the
  number) and answered with empty TwiML.

Both are form-encoded, as Twilio posts them, and carry no API key: each must carry
``X-Twilio-Signature``, Twilio's signature with the agent's auth token over the URL Twilio
requested (this server's ``REACHFLOW_PUBLIC_URL`` with the path and query) and the form
fields. A missing or wrong signature is a 401. They are left out of the OpenAPI document: they
are Twilio's to call, not an API client's.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import ImmutableMultiDict

from reachflow.agents.twilio import (
    PROVIDER,
    signature_valid,
    status_result,
)
from reachflow.api.deps import ID_PATTERN, AgentId, CleanParameters, ServicesDep
from reachflow.api.json_body import check_text
from reachflow.bootstrap import Services
from reachflow.domain.errors import FieldError, NotFound, Unauthorized, ValidationFailed
from reachflow.store.records import AgentRecord

#: A form's fields (a name may repeat).
Form = ImmutableMultiDict[str, str]
router = APIRouter(
    prefix="/api/v1/providers/twilio",
    tags=["providers"],
    dependencies=[CleanParameters],
    include_in_schema=False,
)
CallId = Annotated[str, Query(alias="callId", pattern=ID_PATTERN, description="Our call id")]
#: Twilio's forms have a few dozen fields.
MAX_FIELDS = 200
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@router.post("/status")
async def message_status(
    request: Request, services: ServicesDep, call_id: CallId
) -> dict[str, Any]:
    form = await _form(request)
    call = services.agent_calls.find(call_id)
    agent = services.agents.get(call.organization_id, call.agent_id)
    if agent.provider != PROVIDER:
        raise NotFound(f"agent call {call_id} is not a twilio message", field="callId")
    _check_signature(request, services, agent, form)
    status = str(form.get("MessageStatus") or form.get("SmsStatus") or "")
    result = status_result(
        form,
        sent_at=call.created_at,
        now=services.clock.now(),
        success_on=str(agent.config.get("successOn") or "delivered"),
    )
    if result is None:  # not final yet
        return {"callId": call.id, "status": status, "final": False, "success": True}
    reported = services.agent_calls.report(call.id, result)
    return {
        "callId": reported.call_id,
        "status": status,
        "final": True,
        "disposition": result.disposition.value,
        "applied": reported.applied,
        "success": True,
    }


@router.post("/inbound/{agentId}")
async def inbound_message(request: Request, services: ServicesDep, agent_id: AgentId) -> Response:
    form = await _form(request)
    agent = services.agents.find(agent_id)
    if agent.provider != PROVIDER:
        raise NotFound(f"agent {agent_id} is not a twilio agent", field="agentId")
    _check_signature(request, services, agent, form)
    sender, text = form.get("From"), form.get("Body")
    if not isinstance(sender, str) or not isinstance(text, str):
        raise ValidationFailed(FieldError("From", "Twilio's From and Body are required"))
    services.contacts.inbound_text(agent.organization_id, {"phoneNumber": sender, "body": text})
    return Response(EMPTY_TWIML, media_type="text/xml")


async def _form(request: Request) -> Form:
    """The form-encoded body, every name and value text a database can store."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ValidationFailed(
            FieldError("body", "must be form-encoded (application/x-www-form-urlencoded)")
        )
    try:
        text = (await request.body()).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailed(FieldError("body", f"not a form: {type(exc).__name__}")) from exc
    for name, value in pairs:
        check_text(name, name)
        check_text(value, name)
    return ImmutableMultiDict(pairs)


def _check_signature(request: Request, services: Services, agent: AgentRecord, form: Form) -> None:
    """Twilio signs the URL it requested: this server's public URL with the path and query;
    the URL as it arrived is tried too (a server reached directly, without a proxy)."""
    path_and_query = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    public = services.engine.config.callback_base.rstrip("/") + path_and_query
    token = str(agent.config.get("authToken") or "")
    signature = request.headers.get("x-twilio-signature")
    if not signature_valid(token, [public, str(request.url)], form, signature):
        raise Unauthorized(
            "missing or wrong X-Twilio-Signature for this agent", field="X-Twilio-Signature"
        )
