"""The operator console: server-rendered pages at ``/`` over the same services as the API.

``install_console(app)`` adds its routes and static assets to an API application; routes are
imported only then, so this package imports nothing from ``reachflow.api`` at import time.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import Scope

from reachflow.web.session import SESSION_COOKIE, ConsoleSettings, Signer


def install_console(app: FastAPI, settings: ConsoleSettings | None = None) -> None:
    from reachflow.web.routes import install

    settings = settings or ConsoleSettings()
    app.state.console_signer = Signer(settings.secret, settings.session_seconds)
    install(app)


def session_rate_key(scope: Scope) -> str | None:
    """For the rate limiter: a console request with a well-signed session counts against its
    key (by hash), not against the client address as anonymous traffic does."""
    if not str(scope.get("path", "")).startswith("/console"):
        return None
    app: Any = scope.get("app")
    signer = getattr(getattr(app, "state", None), "console_signer", None)
    if signer is None:
        return None
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            for part in bytes(value).decode("latin-1").split(";"):
                key, _, found = part.strip().partition("=")
                if key == SESSION_COOKIE:
                    claims = signer.read(found)
                    return f"console:{claims.key_hash}" if claims else None
    return None
