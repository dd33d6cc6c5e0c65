"""Seed 004's envelope for every error of the public surface (``/v1/public/...``).

Errors are made in one place for the whole API (``api/errors.py`` and the middleware's
``send_error``: Feather's ``{status, message, code, success, ...}``). On the public surface
this outermost layer rewrites each JSON error answer as ``{code, data, message, requestId}``
(``public_json.error_envelope``), so a 400, 401, 403, 404, 409, 413, 422, 429 or 503 of that
surface, whichever layer answered it, has the seed's shape. Successful answers pass untouched
(the routes build their envelopes themselves); so does the event stream.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reachflow.api.public_json import error_envelope
from reachflow.settings import Settings

PUBLIC_PREFIX = "/v1/public/"


def is_public(path: str) -> bool:
    return path.startswith(PUBLIC_PREFIX)


class PublicEnvelopeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_public(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        held: Message | None = None  # an error's start, until its body is whole
        chunks: list[bytes] = []
        done = False

        async def rewriting_send(message: Message) -> None:
            nonlocal held, done
            if message["type"] == "http.response.start":
                if message["status"] >= 400 and _is_json(message):
                    held = message
                    return
                await send(message)
                return
            if message["type"] != "http.response.body" or held is None or done:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body", False))
            try:
                original = json.loads(b"".join(chunks))
            except ValueError:
                if more:
                    return  # not whole yet
                original = None
            body = (
                json.dumps(error_envelope(original)).encode()
                if isinstance(original, dict)
                else b"".join(chunks)
            )
            headers = [(k, v) for k, v in held.get("headers", ()) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            done = True
            await send({**held, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": more})

        await self.app(scope, receive, rewriting_send)


def _is_json(message: Message) -> bool:
    for key, value in message.get("headers", ()):
        if key.lower() == b"content-type":
            return bytes(value).startswith(b"application/json")
    return False


class PublicCorsMiddleware:
    """CORS for the public surface only (a browser page calls it with a publishable key);
    the secret API sends no CORS headers."""

    def __init__(self, app: ASGIApp, *, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Request-Id"],
            expose_headers=["X-Request-Id", "Retry-After"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_public(scope.get("path", "")):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def install_public_surface(app: FastAPI, settings: Settings) -> None:
    """The envelope outside every other layer, CORS (``public_cors_origins``) outside it."""
    app.add_middleware(PublicEnvelopeMiddleware)
    origins = [o.strip() for o in settings.public_cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(PublicCorsMiddleware, origins=origins)
