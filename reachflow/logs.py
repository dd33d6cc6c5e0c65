"""Logging: one format, the request id on every line, and no phone number, password or API key.

``configure_logging(level)`` installs, on every handler of the root logger (adding one on stderr
when there is none), a :class:`MaskingFilter` and a :class:`MaskingFormatter`:

- an E.164-like phone number keeps all but its last four digits (``+14155550123`` becomes
  ``+1415555****``; the URL-encoded ``%2B14155550123`` likewise);
- the password of a URL (``scheme://user:password@host``) becomes ``***``;
- an API key (``rf_`` and its secret) keeps only its ten-character prefix, the one
  ``reachflow api-key list`` shows;
- each record gets ``request_id``, read from :data:`request_id_var` (``-`` outside a request).

The message, its arguments, the traceback and the stack are all masked. Records reach the root's
handlers from every logger that propagates (``reachflow serve`` runs uvicorn without its own
logging configuration, so its error and access logs propagate too).

This module imports nothing from reachflow: any layer may use it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

#: The current request's id (``X-Request-Id``); the API's middleware sets it while a request
#: runs, and every log line carries it (``-`` outside a request).
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

#: ``+`` (or ``%2B``) and 8 to 15 digits (E.164 allows 15), not followed by another digit.
_PHONE = re.compile(r"(\+|%2[bB])([1-9]\d{3,10})(\d{4})(?!\d)")
#: ``scheme://user:password@``: the password part (up to the last ``@`` before the host).
_URL_PASSWORD = re.compile(r"([a-zA-Z][\w+.-]*://[^\s:/@]*:)[^\s/]+@")
#: ``rf_`` and at least 20 more key characters: a key (its first ten characters are its prefix).
_API_KEY = re.compile(r"\b(rf_[A-Za-z0-9_-]{7})[A-Za-z0-9_-]{13,}")


def mask(text: str) -> str:
    """``text`` without phone numbers (but their first digits), passwords or API keys."""
    if "+" in text or "%2" in text:
        text = _PHONE.sub(lambda m: f"{m[1]}{m[2]}****", text)
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\1***@", text)
    if "rf_" in text:
        text = _API_KEY.sub(r"\1****", text)
    return text


def _mask_arg(value: Any) -> Any:
    return mask(value) if isinstance(value, str) else value


class MaskingFilter(logging.Filter):
    """Masks the record's message and arguments (and a traceback not yet formatted) and sets
    ``request_id``. On a handler it sees every record that handler will write."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        if isinstance(record.msg, str):
            record.msg = mask(record.msg)
        args = record.args
        if isinstance(args, Mapping):
            record.args = {k: _mask_arg(v) for k, v in args.items()}
        elif isinstance(args, tuple):
            record.args = tuple(_mask_arg(a) for a in args)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let logging report it as it does
            return True
        masked = mask(message)
        if masked != message:  # a number split over the format and a non-string argument
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Formatters cache the traceback text on the record: cache the masked one, so a
            # handler with a plain formatter writes it masked too.
            record.exc_text = mask(_PLAIN.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


class MaskingFormatter(logging.Formatter):
    """A formatter whose output, traceback included, is masked, whatever filters ran."""

    def __init__(self, fmt: str = FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)

    def formatException(self, ei: Any) -> str:
        return mask(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return mask(super().formatStack(stack_info))

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        return mask(super().format(record))


_PLAIN = logging.Formatter()


def configure_logging(level: str | int = "INFO") -> None:
    """Masked, request-id-carrying logs on every root handler; the root at ``level``.

    Idempotent: calling it again adds no second filter or handler."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    formatter = MaskingFormatter()
    for handler in root.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
        handler.setFormatter(formatter)
    root.setLevel(level.upper() if isinstance(level, str) else level)
