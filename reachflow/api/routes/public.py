"""Public execution sessions (seed 004): ``/v1/public``.

- ``POST /v1/public/workflows/{id}/executions``: a publishable (or secret) key of the
  organization starts a session of a ``public_execute`` workflow; the answer holds the
  ``clientToken`` that reads that session and nothing else.
- ``GET /v1/public/executions/{id}?token=``: the client-safe view and its event timeline.
- ``GET /v1/public/executions/{id}/stream?token=``: every status change as a server-sent event,
  ending at a terminal status.
- ``POST /v1/public/payments/webhook``: the payment system's signed word on a priced session.

Every answer is ``{code, data, message, requestId}`` (errors: ``api/public_envelope.py``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from reachflow.api.bodies import body_of
from reachflow.api.deps import ID_PATTERN, ApiKeyDep, CleanParameters, ServicesDep
from reachflow.api.openapi import ERROR_DESCRIPTIONS
from reachflow.api.public_json import change_json, client_json, envelope, execution_json
from reachflow.api.schemas.public import (
    ClientExecutionRead,
    PaymentAnswer,
    PaymentWebhook,
    PublicError,
    PublicExecutionCreate,
    PublicExecutionCreated,
)
from reachflow.bootstrap import Services
from reachflow.domain.errors import ReachflowError
from reachflow.services.idempotency import fingerprint
from reachflow.store.accounts import ApiKeyRecord

router = APIRouter(prefix="/v1/public", tags=["public executions"], dependencies=[CleanParameters])

PublicId = Annotated[str, Path(alias="id", pattern=ID_PATTERN, description="The id")]
Token = Annotated[
    str | None,
    Query(max_length=200, description="The client token (or Authorization: Bearer <token>)"),
]
Authorization = Annotated[str | None, Header(include_in_schema=False)]
LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID", description="Resume after this status change (its id)"),
]
CreateBody = Annotated[dict[str, Any], Depends(body_of(PublicExecutionCreate))]
PaymentBody = Annotated[dict[str, Any], Depends(body_of(PaymentWebhook))]

PUBLIC_ERRORS = {
    **ERROR_DESCRIPTIONS,
    401: "No key or client token, or an unknown or revoked key",
    403: "The client token is unknown, altered, expired or another execution's",
    404: "No such public workflow or execution",
    409: "An idempotency key reused with another body; a workflow that is not active",
    422: "A rule refuses it (the contact's number is suppressed)",
}


def public_errors(*statuses: int, body: bool = False) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a public route: 400, 401, 429 and 503 always, 413 with a body, and
    ``statuses``; each answers the seed's envelope (``PublicError``)."""
    codes = {400, 401, 429, 503, *statuses}
    if body:
        codes.add(413)
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted(codes):
        entry: dict[str, Any] = {"model": PublicError, "description": PUBLIC_ERRORS[code]}
        if code in (429, 503):
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds until a request may succeed",
                    "schema": {"type": "integer"},
                }
            }
        out[code] = entry
    return out


def get_publisher(services: ServicesDep, key: ApiKeyDep) -> ApiKeyRecord:
    """The key that starts a session: publishable, or a secret key of the organization."""
    return services.accounts.identify(key)


PublisherDep = Annotated[ApiKeyRecord, Depends(get_publisher)]


@router.post(
    "/workflows/{id}/executions",
    responses={
        200: {"model": PublicExecutionCreated},
        **public_errors(403, 404, 409, 422, body=True),
    },
)
def start_public_execution(
    request: Request,
    services: ServicesDep,
    publisher: PublisherDep,
    workflow_id: PublicId,
    body: CreateBody,
) -> dict[str, Any]:
    """Create a client-trackable execution session for a public_execute workflow."""
    request_fingerprint = fingerprint(request.method, request.url.path, body)
    started, _ = services.public_sessions.start(publisher, workflow_id, body, request_fingerprint)
    return envelope(
        {"clientToken": started.client_token, "execution": execution_json(started.view)}
    )


def _given_token(token: str | None, authorization: str | None) -> str | None:
    if token:
        return token
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return None


@router.get(
    "/executions/{id}",
    responses={200: {"model": ClientExecutionRead}, **public_errors(403, 404)},
)
def read_public_execution(
    services: ServicesDep,
    session_id: PublicId,
    token: Token = None,
    authorization: Authorization = None,
) -> dict[str, Any]:
    """The execution's current status and event timeline, for its client token."""
    record = services.public_sessions.authorize(session_id, _given_token(token, authorization))
    view = services.public_sessions.view_of(record.organization_id, record.id)
    return envelope(client_json(view))


SSE_DESCRIPTION = (
    "Server-sent events: one `status` event per status change (its `id` is the change's "
    "sequence number, `data` its JSON), `: keep-alive` comments; the stream ends after a "
    "terminal status (or after REACHFLOW_PUBLIC_STREAM_MAX_SECONDS: reconnect with "
    "Last-Event-ID)."
)


@router.get(
    "/executions/{id}/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": SSE_DESCRIPTION,
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **public_errors(403, 404),
    },
)
async def stream_public_execution(
    services: ServicesDep,
    session_id: PublicId,
    token: Token = None,
    authorization: Authorization = None,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """The execution's status changes as they happen (text/event-stream)."""
    given = _given_token(token, authorization)
    record = await run_in_threadpool(services.public_sessions.authorize, session_id, given)
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    return StreamingResponse(
        _status_events(services, record.organization_id, session_id, given, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _status_events(
    services: Services, organization_id: str, session_id: str, token: str | None, after: int
) -> AsyncIterator[str]:
    settings = services.settings
    sessions = services.public_sessions
    ends = time.monotonic() + settings.public_stream_max_seconds
    beat = time.monotonic()
    yield f"retry: {int(settings.public_stream_retry_ms)}\n\n"
    while True:
        try:
            await run_in_threadpool(sessions.authorize, session_id, token)
            view = await run_in_threadpool(sessions.view_of, organization_id, session_id)
        except ReachflowError as exc:  # the token expired meanwhile, the session went away
            yield f"event: error\ndata: {json.dumps({'message': exc.message})}\n\n"
            return
        for change in view.changes[after:]:
            data = json.dumps(change_json(change, view))
            yield f"id: {change.sequence}\nevent: status\ndata: {data}\n\n"
            after = change.sequence
        if view.status.is_terminal or time.monotonic() >= ends:
            return
        if time.monotonic() - beat >= settings.public_stream_keepalive_seconds:
            beat = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(settings.public_stream_poll_seconds)


@router.post(
    "/payments/webhook",
    responses={200: {"model": PaymentAnswer}, **public_errors(404, 409, body=True)},
    include_in_schema=False,
)
async def payment_webhook(
    request: Request, services: ServicesDep, body: PaymentBody
) -> dict[str, Any]:
    """A payment system's word on a priced session, signed with Standard Webhooks."""
    raw = await request.body()
    result = await run_in_threadpool(
        services.public_sessions.apply_payment, request.headers, raw, body
    )
    return envelope({"applied": result.applied, "execution": client_json(result.view)})
