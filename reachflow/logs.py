"""Logging context: the id of the request being served, for log records and error bodies."""

from __future__ import annotations

from contextvars import ContextVar

#: The current request's id (``X-Request-Id``); empty outside a request.
request_id_var: ContextVar[str] = ContextVar("request_id", default="")
