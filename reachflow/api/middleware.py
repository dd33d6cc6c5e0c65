"""Pure ASGI middleware around the application: request ids, the last word on errors (500 and
503 BUSY, always our JSON error body) and request body size limits.

Order, outermost first (``install_middleware``): request id, errors, rate limits
(``reachflow.api.ratelimit``), body size. The request id is set before anything else can
answer, so every response, even a 413 or a 429, carries it; the error layer sits outside the
rate and body layers, so whatever goes wrong inside them is still our JSON body.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterable
from urllib.parse import parse_qsl

import anyio
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reachflow.api.errors import error_body, is_busy
from reachflow.api.ratelimit import RateLimiter
from reachflow.logs import request_id_var
from reachflow.settings import Settings
from reachflow.web import session_rate_key

log = logging.getLogger("reachflow.api")

REQUEST_ID_HEADER = b"x-request-id"
_GOOD_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
#: Lead uploads (``POST /v1/workflows/{id}/leads``) have their own, larger body limit.
_LEAD_UPLOAD = re.compile(r"/v1/workflows/[^/]+/leads/?")
_CONTENT_LENGTH = re.compile(r"[0-9]+")
#: Never rate limited: the health check and the API documentation with its assets.
_UNLIMITED_PATHS = frozenset({"/healthz", "/openapi.json"})
_UNLIMITED_PREFIXES = ("/docs", "/redoc", "/static", "/console/static")


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), decoded as latin-1."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def send_error(
    send: Send,
    status: int,
    message: str,
    code: str,
    *,
    field: str | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Answer with our JSON error body (``error_body``, so it carries ``requestId``)."""
    body = json.dumps(error_body(status, message, code, field)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestIdMiddleware:
    """Every response carries ``X-Request-Id``: the client's own if well formed (1-128 of
    ``[A-Za-z0-9._-]``), else a new uuid4 hex. It is ``request_id_var`` while the request runs,
    so error bodies and log records carry it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = header(scope, REQUEST_ID_HEADER)
        request_id = given if given and _GOOD_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        raw = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k != REQUEST_ID_HEADER]
                headers.append((REQUEST_ID_HEADER, raw))
                message = {**message, "headers": headers}
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class ErrorMiddleware:
    """The last word on an exception nothing else handled: database contention (SQLite's
    ``database is locked`` past the busy timeout, PostgreSQL's serialization failure, deadlock
    or lock timeout) is a 503 ``BUSY`` with ``Retry-After: 1``; anything else is logged with its
    request id and answered 500 ``INTERNAL``. The exception goes no further, so the server
    keeps the connection alive (it closes a connection whose application raised)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            request_id = request_id_var.get()
            method, path = scope.get("method", ""), scope.get("path", "")
            if started:  # half a response is out: nothing to do but let the server close
                log.exception("error after the response started: %s %s", method, path)
                raise
            if is_busy(exc):
                # No exception text: SQLAlchemy's message holds the statement's parameters.
                log.warning(
                    "database busy (%s), answered 503: %s %s request_id=%s",
                    type(exc).__name__,
                    method,
                    path,
                    request_id,
                )
                await send_error(
                    send,
                    503,
                    "the database is busy; retry shortly",
                    "BUSY",
                    headers=[(b"retry-after", b"1")],
                )
                return
            log.exception("unexpected error: %s %s request_id=%s", method, path, request_id)
            await send_error(send, 500, "internal error", "INTERNAL")


class PayloadTooLarge(Exception):
    """Raised from ``receive`` once a body passes its limit; ``BodySizeMiddleware`` answers."""


class BodySizeMiddleware:
    """Request bodies above ``max_body`` bytes (``max_upload`` for lead uploads) are a 413
    ``PAYLOAD_TOO_LARGE``: refused from ``Content-Length`` before any byte is read, and counted
    while a chunked body streams in (the application reads nothing past the limit).

    The 413 closes the connection, and a connection closed while the client is still sending
    reaches the client as a reset that can erase the answer. So, as HTTP's "lingering close"
    advises, the whole answer is written, then up to ``LINGER_BYTES`` more of the body (at
    most the limit) are read and thrown away for at most ``LINGER_SECONDS``, then the
    response ends and the server closes."""

    LINGER_SECONDS = 1.0

    def __init__(self, app: ASGIApp, *, max_body: int, max_upload: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload

    def limit_for(self, scope: Scope) -> int:
        if scope.get("method") == "POST" and _LEAD_UPLOAD.fullmatch(scope.get("path", "")):
            return self.max_upload
        return self.max_body

    async def refuse(
        self, scope: Scope, receive: Receive, send: Send, limit: int, *, body_left: bool
    ) -> None:
        body = json.dumps(
            error_body(
                413,
                f"the request body is larger than {limit} bytes",
                "PAYLOAD_TOO_LARGE",
                "body",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": True})
        expecting = (header(scope, b"expect") or "").lower() == "100-continue"
        if body_left and not expecting:  # a client waiting for 100 Continue sends no body
            with anyio.move_on_after(self.LINGER_SECONDS):
                await _discard(receive, limit)
        await send({"type": "http.response.body", "body": b""})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = header(scope, b"content-length")
        if declared and _CONTENT_LENGTH.fullmatch(declared.strip()) and int(declared) > limit:
            await self.refuse(scope, receive, send, limit, body_left=True)
            return
        received = 0
        too_large = False
        body_left = True
        started = False

        async def counting_receive() -> Message:
            nonlocal received, too_large, body_left
            if too_large:
                raise PayloadTooLarge
            message = await receive()
            if message["type"] == "http.request":
                body_left = bool(message.get("more_body", False))
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise PayloadTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return  # whatever the application makes of the cut body, the answer is 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except PayloadTooLarge:
            if started:
                raise
        if too_large and not started:
            await self.refuse(scope, receive, send, limit, body_left=body_left)


async def _discard(receive: Receive, most: int) -> None:
    """Read and drop up to ``most`` bytes of the request body (nothing is kept)."""
    dropped = 0
    while dropped <= most:
        message = await receive()
        if message["type"] != "http.request":
            return
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def api_key(scope: Scope) -> str | None:
    """The key a request presents, as ``deps.get_organization`` reads it: ``X-API-Key``, else
    ``Authorization: Bearer``; for a public execution read, its ``?token=`` client token."""
    key = header(scope, b"x-api-key")
    if not key:
        authorization = header(scope, b"authorization") or ""
        if authorization[:7].lower() == "bearer ":
            key = authorization[7:].strip()
    if not key and scope.get("path", "").startswith(_PUBLIC_READS):
        for name, value in parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1")):
            if name == "token" and value:
                return value
    return key or None


class RateLimitMiddleware:
    """429 ``RATE_LIMITED`` with ``Retry-After`` past a limit (``reachflow.api.ratelimit``).
    A keyed request counts against its key; one without a key counts against the client
    address, and so does every 401 the application answers (this layer sees the status)."""

    def __init__(self, app: ASGIApp, *, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path in _UNLIMITED_PATHS
            or path.startswith(_UNLIMITED_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        # A console page with a signed session counts against its key, as an API call does.
        key = api_key(scope) or session_rate_key(scope)
        signed = _is_signed_callback(scope, path)
        if signed:
            # A provider's or agent's signed callback: its signature is its credential, so it
            # is not limited as anonymous traffic; a refused signature (401) counts against
            # the address like a wrong key.
            wait = self.limiter.address_blocked(address)
        elif key is None:
            wait = self.limiter.hit_address(address)
        else:
            wait = self.limiter.address_blocked(address) or self.limiter.hit_key(key)
        if wait is not None:
            await send_error(
                send,
                429,
                f"too many requests; retry in {wait} s",
                "RATE_LIMITED",
                headers=[(b"retry-after", str(wait).encode())],
            )
            return
        if key is None and not signed:  # already counted against the address, 401 or not
            await self.app(scope, receive, send)
            return
        status = 0

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            if status == 401:
                self.limiter.count_failure(address)


def _is_signed_callback(scope: Scope, path: str) -> bool:
    """A provider webhook (``/api/v1/providers/...``, signed by the provider) or an agent's
    signed result report."""
    if path.startswith(_PROVIDER_WEBHOOKS) or path == _PAYMENT_WEBHOOK:
        return True
    return path.startswith(_AGENT_CALLS) and header(scope, b"webhook-signature") is not None


_PROVIDER_WEBHOOKS = "/api/v1/providers/"
_AGENT_CALLS = "/api/v1/agent-calls/"
#: Signed by the organization's payment system (``docs/public-sessions.md``).
_PAYMENT_WEBHOOK = "/v1/public/payments/webhook"
#: Reads of a public execution with its client token (``?token=``).
_PUBLIC_READS = "/v1/public/executions/"


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Wire the layers on ``app``, outermost first as the module says, and keep the rate
    limiter (``None`` when rate limiting is off) on ``app.state.rate_limiter``."""
    limiter = RateLimiter.from_settings(settings)
    app.state.rate_limiter = limiter
    # ``add_middleware`` puts each new layer outside the ones before it: innermost first.
    app.add_middleware(
        BodySizeMiddleware,
        max_body=settings.max_body_bytes,
        max_upload=settings.max_upload_bytes,
    )
    if limiter is not None:
        app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(ErrorMiddleware)
    app.add_middleware(RequestIdMiddleware)
