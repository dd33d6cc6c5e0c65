"""Request JSON, parsed defensively: whatever the bytes, the answer is a value or a 400 naming
the field, never an exception from deep inside the parser.

Refused before any service sees the value:

- malformed JSON, and text that is not UTF-8;
- nesting deeper than ``MAX_DEPTH`` (a recursion bomb such as ``[[[[...]]]]``);
- integers with more than ``MAX_INT_DIGITS`` digits (Python's int conversion limit) and
  non-finite numbers (``NaN``, ``Infinity``, ``1e999``);
- NUL characters and lone UTF-16 surrogates in any string or key (PostgreSQL cannot store the
  first, no encoder can write the second).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from reachflow.domain.errors import FieldError, ValidationFailed

MAX_DEPTH = 32
MAX_INT_DIGITS = 20
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
_INT_TOO_LONG = re.compile(rb"\d{%d}" % (MAX_INT_DIGITS + 1))


class InvalidJson(ValidationFailed):
    """The body is not JSON (``INVALID_JSON``, as ``docs/workflows.md`` promises)."""

    code = "INVALID_JSON"


def parse_json(raw: bytes, *, field: str = "body", content_type: str = "") -> Any:
    """The JSON value ``raw`` holds, checked as the module says. A body sent with another
    ``content_type`` (a form, say) is told to send JSON when it does not parse."""
    hint = ""
    media = content_type.split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        hint = f"; send a JSON object with Content-Type: application/json (this body is {media})"
    if not raw.strip():
        raise InvalidJson(FieldError(field, f"a JSON body is required{hint}"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJson(FieldError(field, f"malformed JSON: not UTF-8{hint}")) from exc
    # A cheap pre-scan: the deepest bracket run bounds the nesting before the parser recurses.
    if _depth_exceeds(text, MAX_DEPTH):
        raise ValidationFailed(FieldError(field, f"nested deeper than {MAX_DEPTH} levels"))
    if _INT_TOO_LONG.search(raw) and _has_long_int(text):
        raise ValidationFailed(FieldError(field, f"a number has more than {MAX_INT_DIGITS} digits"))
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NotFinite as exc:
        raise InvalidJson(FieldError(field, str(exc))) from exc
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise InvalidJson(FieldError(field, f"malformed JSON: {exc}{hint}")) from exc
    _check_strings(value, field)
    return value


def parse_json_object(raw: bytes, content_type: str = "") -> dict[str, Any]:
    value = parse_json(raw, content_type=content_type)
    if not isinstance(value, dict):
        raise ValidationFailed(FieldError("body", "must be a JSON object"))
    return value


def check_text(value: str, field: str) -> None:
    """A NUL or a lone surrogate in ``value`` is a 400 naming ``field``."""
    match = _BAD_CHARS.search(value)
    if match is not None:
        what = "a NUL character" if match.group() == "\x00" else "a lone surrogate"
        raise ValidationFailed(FieldError(field, f"contains {what}"))


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    raise _NotFinite(f"{name} is not a JSON number we accept")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"number {text[:30]} is out of range")
    return value


def _depth_exceeds(text: str, limit: int) -> bool:
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _has_long_int(text: str) -> bool:
    """A run of more than MAX_INT_DIGITS digits outside a string (a long digit string inside
    quotes, such as an id, is fine)."""
    in_string = False
    escaped = False
    run = 0
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
            run = 0
        elif ch.isdigit():
            run += 1
            if run > MAX_INT_DIGITS:
                return True
        else:
            run = 0
    return False


def _check_strings(value: Any, path: str) -> None:
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            check_text(item, where)
        elif isinstance(item, dict):
            for key, child in item.items():
                if _BAD_CHARS.search(key):  # the field is named by its parent: the key itself
                    check_text(key, f"{where} (a key)")  # could not be written back
                child_path = key if where == "body" else f"{where}.{key}"
                stack.append((child, child_path))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
