"""Request bodies: parsed defensively (``json_body``), then validated by their model.

``body_of(Model)`` is the dependency a route takes its body from. The model is the first pass:
a body it refuses is a 400 (``ValidationFailed``) naming every problem under its dotted field
path (``leads[0].primaryPhone``, ``definition.steps[1].order``). A body it accepts reaches the
service as the raw JSON object, so the service's deeper checks and messages stay. The same
model describes the body in the OpenAPI document (``api/openapi.py`` finds it on the
dependency), so the contract and the validation cannot drift.

A body that carries a graph ``definition`` keeps the graph's own error reporting: when the
model refuses something inside the graph, the graph parser's coded problems (``code``, and
``field`` naming the node or edge) are reported, with the rest of the body's problems as
``invalid`` (``docs/workflows.md``, "Validation and activation").
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from reachflow.api.deps import json_object
from reachflow.api.schemas.common import PATTERN_MESSAGES
from reachflow.domain.errors import FieldError, ValidationFailed
from reachflow.domain.graph_definition import (
    GraphInvalid,
    GraphProblem,
    GraphProblems,
    ProblemCode,
    is_graph,
    parse_graph_definition,
    with_ids,
)

BODY_MODEL_ATTR = "__body_model__"
#: ``graph_form`` of a model whose ``definition`` field may hold a graph.
GRAPH_FIELD = "definition"


def body_of(model: type[BaseModel]) -> Callable[[Request], Awaitable[dict[str, Any]]]:
    """A dependency: the request's JSON object, checked against ``model``."""

    async def body(request: Request) -> dict[str, Any]:
        raw = await json_object(request)
        check_body(model, raw)
        return raw

    setattr(body, BODY_MODEL_ATTR, model)
    body.__name__ = f"body_of_{model.__name__}"
    return body


def check_body(model: type[BaseModel], raw: Any) -> None:
    """Validate ``raw`` with ``model``; a refusal raises ``ValidationFailed``."""
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        raise refusal(model, raw, exc) from None


def refusal(model: type[BaseModel], raw: Any, exc: ValidationError) -> ValidationFailed:
    legacy: dict[str, str] = getattr(model, "legacy_fields", {})
    problems = field_errors(raw, exc.errors(include_url=False, include_input=False), legacy)
    form = getattr(model, "graph_form", None)
    graph = raw.get(GRAPH_FIELD) if isinstance(raw, dict) else None
    inside = any(_under(p.field, GRAPH_FIELD) for p in problems)
    if form == GRAPH_FIELD and is_graph(graph) and inside:
        found = _parsed(with_ids(graph), GRAPH_FIELD)
        return _coded(found, problems, lambda f: _under(f, GRAPH_FIELD))
    if form == "node" and isinstance(raw, dict):
        node = raw if "id" in raw else {**raw, "id": "node"}
        found = _parsed({"nodes": [node]}, "")
        relative = [replace(p, field=_NODE_PREFIX.sub("", p.field)) for p in found]
        return _coded(relative, problems, lambda _f: True)
    return ValidationFailed(problems)


def _parsed(graph: Any, root: str) -> list[GraphProblem]:
    """The graph parser's problems with a body the model refused. Such a body may be hostile
    (the model exists to stop it), so a parser that fails on it explains nothing: the model's
    own problems are reported then."""
    found = GraphProblems(root)
    try:
        parse_graph_definition(graph, found)
    except Exception:  # any failure only means no better explanation
        return []
    return found.items


_NODE_PREFIX = re.compile(r"^nodes\[[^\]]*\]\.?")


def _coded(
    graph_problems: list[GraphProblem], problems: list[FieldError], covered: Callable[[str], bool]
) -> GraphInvalid:
    """The graph parser's coded problems, then the body's other problems as ``invalid``
    (all of them if the parser found nothing the model refused)."""
    if graph_problems:
        problems = [p for p in problems if not covered(p.field)]
    others = [GraphProblem(ProblemCode.INVALID, p.field, p.message) for p in problems]
    return GraphInvalid(graph_problems + others)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith((f"{root}.", f"{root}["))


# -- pydantic errors as field errors -----------------------------------------------------


def field_errors(
    raw: Any, errors: list[ErrorDetails], legacy: dict[str, str] | None = None
) -> list[FieldError]:
    """One ``FieldError`` per problem and path (a union's alternatives collapse into one)."""
    out: list[FieldError] = []
    seen: set[str] = set()
    for error in errors:
        path = error_path(raw, error)
        if path in seen:
            continue
        seen.add(path)
        message = error_message(error)
        if error["type"] == "extra_forbidden" and legacy and path in legacy:
            message = legacy[path]
        out.append(FieldError(path or "body", message))
    return out or [FieldError("body", "is invalid")]


def error_path(raw: Any, error: ErrorDetails) -> str:
    """The error's location as the services write it: ``a.b[0].c``.

    The location is walked through the raw input, so the tags pydantic adds for a union's
    alternatives (``definition.linear.steps``) drop out: only keys and indexes that exist
    are kept, and the last step of a missing field.
    """
    loc = list(error["loc"])
    parts: list[str | int] = []
    node: Any = raw
    for i, step in enumerate(loc):
        last = i == len(loc) - 1
        in_dict = isinstance(node, dict) and isinstance(step, str) and step in node
        in_list = isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)
        if in_dict or in_list:
            parts.append(step)
            node = node[step]
        elif last and error["type"] == "missing" and isinstance(step, str):
            parts.append(step)
    ctx = error.get("ctx") or {}
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        name = str(ctx.get("discriminator", ""))
        if name.startswith("'") and name.endswith("'"):
            parts.append(name.strip("'"))
    at = ctx.get("at")
    if isinstance(at, str) and at:
        parts.append(at)
    return _dotted(parts)


def _dotted(parts: list[str | int]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.startswith("["):
            text += part
        else:
            text += f".{part}" if text else part
    return text


_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be a boolean",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
    "finite_number": "must be a finite number",
    "union_tag_not_found": "is required",
}


def error_message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected', '')}"
    if kind == "union_tag_invalid":
        return f"unknown value {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "string_too_short":
        return "must be a non-empty string"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return PATTERN_MESSAGES.get(pattern, f"must match {pattern}")
    if kind == "too_short":
        wanted = ctx.get("min_length", 1)
        return "must not be empty" if wanted == 1 else f"must have at least {wanted} items"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        sign, key = bounds[kind]
        return f"must be {sign} {ctx.get(key)}"
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ")
