"""The one place that maps errors to HTTP: Feather's body ``{status, message, code, success}``
plus ``field`` (the offending field path), ``errors`` (every problem found) and ``requestId``
(the request's ``X-Request-Id``)."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg.errors
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from reachflow.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ReachflowError,
    Refused,
    Unauthorized,
    ValidationFailed,
)
from reachflow.domain.graph_definition import GraphInvalid
from reachflow.logs import request_id_var
from reachflow.services.leads import RowsInvalid

STATUS_BY_ERROR: list[tuple[type[ReachflowError], int]] = [
    (ValidationFailed, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (Refused, 422),
]


def status_of(exc: ReachflowError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return status
    return 400


def error_body(
    status: int,
    message: str,
    code: str,
    field: str | None = None,
    errors: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "message": message,
        "code": code,
        "success": False,
        "field": field,
        "errors": errors or ([{"field": field, "message": message}] if field else []),
        "requestId": request_id_var.get(),
    }


#: PostgreSQL's answers to contention: a serialization failure, a deadlock, a lock not
#: available within ``lock_timeout`` (or ``NOWAIT``). Retrying later can succeed.
_PG_BUSY = (
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.LockNotAvailable,
)
#: SQLite's messages when the busy timeout passed before the lock came free.
_SQLITE_BUSY = ("database is locked", "database is busy", "database table is locked")


def is_busy(exc: BaseException) -> bool:
    """Is ``exc`` (or what it wraps) database contention, worth a 503 and a retry, not a 500?"""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _PG_BUSY):
            return True
        if isinstance(current, sqlite3.OperationalError) and any(
            text in str(current).lower() for text in _SQLITE_BUSY
        ):
            return True
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.orig is not None:
            orig: BaseException = current.orig
            if orig is not current and is_busy(orig):
                return True
        current = current.__cause__ or current.__context__
    return False


def error_items(exc: ReachflowError) -> list[dict[str, Any]]:
    """The ``errors`` of an error body: every problem, each under its field."""
    if isinstance(exc, GraphInvalid):  # each problem also names its machine code
        return [p.to_json() for p in exc.graph_problems]
    if isinstance(exc, RowsInvalid):  # lead rows grouped by reason, with their rows
        return list(exc.items)
    return [{"field": e.field, "message": e.message} for e in exc.errors]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ReachflowError)
    async def _domain(_request: Request, exc: ReachflowError) -> JSONResponse:
        status = status_of(exc)
        errors = error_items(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(
            error_body(status, exc.message, exc.code, exc.field, errors), status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for item in exc.errors():
            loc = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path")]
            field = ".".join(loc) or "body"
            message = (
                "malformed JSON" if item.get("type") == "json_invalid" else item.get("msg", "")
            )
            errors.append({"field": field, "message": message})
        first = errors[0] if errors else {"field": "body", "message": "bad request"}
        code = "INVALID_JSON" if first["message"] == "malformed JSON" else "VALIDATION_ERROR"
        return JSONResponse(
            error_body(400, f"{first['field']}: {first['message']}", code, first["field"], errors),
            400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        return JSONResponse(error_body(exc.status_code, str(exc.detail), code), exc.status_code)
